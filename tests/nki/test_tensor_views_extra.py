"""NkiTensor.rearrange, NkiTensor.vector_select and ap(dtype=), against numpy; the names that
stay refused (NkiTensor.indirect, nl.average, nl.prelu, nl.bypass)."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki

RNG = np.random.default_rng(11)


def through_sbuf(view_fn, x: np.ndarray, out_shape: tuple[int, ...], on_chip: bool = True,
                 out_dtype: object = None):
    """Copy x to SBUF (or keep it in HBM), take view_fn(tensor), copy it out."""

    def kernel(src):
        t = src
        if on_chip:
            t = nl.ndarray(src.shape, src.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=src)
        dtype = src.dtype if out_dtype is None else out_dtype
        tile = nl.ndarray(out_shape, dtype, buffer=nl.sbuf)
        view = view_fn(t)
        if on_chip:
            nisa.tensor_copy(dst=tile, src=view)
        else:
            nisa.dma_copy(dst=tile, src=view)
        out = nl.ndarray(out_shape, dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=tile)
        return out

    return nki.simulate(kernel)(x)


def test_rearrange_tuple_pattern_splits_and_permutes() -> None:
    # the form kernels use: (src pattern, dst pattern, sizes of split axes)
    x = np.arange(8 * 24, dtype=np.float32).reshape(8, 24)
    out = through_sbuf(lambda t: t.rearrange(("p", ("h", "b")), ("p", "b", "h"), {"h": 4}),
                       x, (8, 6, 4))
    np.testing.assert_array_equal(out, x.reshape(8, 4, 6).transpose(0, 2, 1))


def test_rearrange_string_pattern_merges_in_hbm() -> None:
    x = RNG.standard_normal((4, 3, 16)).astype(np.float32)
    out = through_sbuf(lambda t: t.rearrange("a b c -> c (a b)"), x, (16, 12), on_chip=False)
    np.testing.assert_array_equal(out, x.reshape(12, 16).T)


def test_rearrange_split_with_every_size_given_and_unit_axes() -> None:
    x = RNG.standard_normal((2, 12)).astype(np.float32)
    out = through_sbuf(lambda t: t.rearrange("p (a b c) one -> p c (a one b)",
                                             {"a": 2, "b": 3}), x[:, :, None], (2, 2, 6))
    np.testing.assert_array_equal(out, x.reshape(2, 2, 3, 2).transpose(0, 3, 1, 2)
                                  .reshape(2, 2, 6))


@pytest.mark.parametrize(("args", "match"), [
    ((("p", "a"), ("a", "p")), "partition dimension"),
    ((("p",), ("p",)), "names 1 dimensions"),
    ((("p", "a"), ("p", "a", "a")), "repeated"),
    ((("p", "a"), ("p", "b")), "same axes"),
    ((("p", ("a", "b")), ("p", "a", "b")), "cannot infer"),
    ((("p", ("a", "b")), ("p", "a", "b"), {"a": 5}), "cannot split"),
    ((("p", ("a", "b")), ("p", "a", "b"), {"a": 2, "b": 2}), "has 4 elements"),
    ((("p", "a"), ("p", "a"), {"z": 2}), "not in the pattern"),
    ((("p", "a"), ("p", "a"), {"a": 0}), "positive ints"),
    ((("p", ("a", "b")), ("p", ("b", "a")), {"a": 2}), "would need a copy"),
    (("p ((a) b) -> p a b",), "nested parentheses"),
    (("p a) -> p a",), "unbalanced"),
    (("p a",), "destination pattern"),
    ((("p", 3), ("p", 3)), "not a name"),
])
def test_rearrange_errors(args, match) -> None:
    def kernel(src):
        t = nl.ndarray((4, 8), src.dtype, buffer=nl.sbuf)
        t.rearrange(*args)
        return src

    with pytest.raises(nki.KernelUsageError, match=match) as info:
        nki.simulate(kernel)(np.zeros((4, 8), np.float32))
    assert "test_tensor_views_extra.py" in str(info.value)


def gather_kernel(dim: int, then_permute: bool = False):
    def kernel(table, ids):
        idx = nl.ndarray(ids.shape, ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=idx, src=ids)
        view = table.vector_select(dim, idx)
        if then_permute:
            view = view.permute((0, 2, 1))
        rows = nl.ndarray(view.shape, table.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=rows, src=view)
        out = nl.ndarray(view.shape, table.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=rows)
        return out

    return kernel


def test_vector_select_gathers_rows_of_any_dimension() -> None:
    table = RNG.standard_normal((3, 10, 4)).astype(np.float32)
    ids = np.array([[2], [7], [0], [9], [2]], np.int32)  # repeats allowed
    out = nki.simulate(gather_kernel(1))(table, ids)
    np.testing.assert_array_equal(out, table[:, ids[:, 0], :].transpose(1, 0, 2))
    out = nki.simulate(gather_kernel(0, then_permute=True))(table, ids[:3] % 3)
    np.testing.assert_array_equal(out, table[ids[:3, 0] % 3].transpose(0, 2, 1))
    result = nki.trace(gather_kernel(1))(table, ids)
    dma = [i for i in result.instructions if i.opcode is nki.Opcode.DMA_COPY][1]
    assert dma.attrs.indirect == "src"


def test_vector_select_out_of_range_row_is_an_error() -> None:
    table = RNG.standard_normal((6, 4)).astype(np.float32)
    with pytest.raises(nki.OutOfBoundsError, match="offset 6"):
        nki.simulate(gather_kernel(0))(table, np.array([[1], [6]], np.int32))


@pytest.mark.parametrize(("make", "match"), [
    (lambda t, i: nl.ndarray((4, 8), nl.float32, buffer=nl.sbuf).vector_select(0, i),
     "HBM"),
    (lambda t, i: t.vector_select(0, nl.ndarray((2, 1), nl.float32, buffer=nl.sbuf)),
     "integer"),
    (lambda t, i: t.vector_select(2, i), "out of range"),
    (lambda t, i: t.vector_select(0, i)[0:1], "first"),
    (lambda t, i: t.vector_select(0, i).vector_select(0, i), "plain view"),
])
def test_vector_select_errors(make, match) -> None:
    def kernel(table, ids):
        idx = nl.ndarray(ids.shape, ids.dtype, buffer=nl.sbuf)
        make(table, idx)
        return table

    with pytest.raises(nki.NkiError, match=match):
        nki.simulate(kernel)(np.zeros((6, 4), np.float32), np.zeros((2, 1), np.int32))


def test_ap_dtype_reads_the_bytes_as_another_dtype() -> None:
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    # cross-size: 16 uint16 per row of 8 floats, counted from the view's first byte
    out = through_sbuf(lambda t: t[1:].ap([[16, 3], [1, 16]], dtype=nl.uint16), x, (3, 16),
                       on_chip=False, out_dtype=nl.uint16)
    np.testing.assert_array_equal(out, x[1:].view(np.uint16))
    same = through_sbuf(lambda t: t.ap([[8, 4], [1, 8]], dtype=nl.int32), x, (4, 8),
                        on_chip=False, out_dtype=nl.int32)
    np.testing.assert_array_equal(same, x.view(np.int32))


@pytest.mark.parametrize(("make", "match"), [
    (lambda t: t[:, 1:].ap([[8, 4], [1, 2]], dtype=nl.float8_e4m3), None),
    (lambda t: t.ap([[4, 4], [1, 4]], dtype=nl.uint8)[:, 1:].ap([[1, 1]], dtype=nl.int32),
     "boundary"),
    (lambda t: t.ap([[8, 2], [1, 8]], vector_offset=nl.ndarray((2, 1), nl.int32,
                                                              buffer=nl.sbuf),
                    dtype=nl.uint16), "same itemsize"),
])
def test_ap_dtype_rules(make, match) -> None:
    def kernel(src):
        make(src)
        return src

    if match is None:  # byte-aligned cross-size start: accepted
        nki.simulate(kernel)(np.zeros((4, 8), np.float32))
        return
    with pytest.raises(nki.KernelUsageError, match=match):
        nki.simulate(kernel)(np.zeros((4, 8), np.float32))


@pytest.mark.parametrize(("use", "match"), [
    (lambda t: t.indirect(0), "Tensor Indirection"),
    (lambda t: nl.prelu(t), "alpha"),
    (lambda t: nl.average(t), "no documented meaning"),
    (lambda t: nl.bypass.name, "no documented meaning"),
])
def test_names_that_stay_refused(use, match) -> None:
    def kernel(src):
        use(src)
        return src

    with pytest.raises(nki.KernelUsageError, match=match):
        nki.simulate(kernel)(np.zeros((4, 8), np.float32))
