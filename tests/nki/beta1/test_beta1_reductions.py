"""Beta-1 reductions (tessera/nki/beta1/reductions.py): nl.sum/max/min/prod/mean/all/var
against numpy, with keepdims, dtype=, masks over the input's indices and the errors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from tessera.nki.beta1 import language as nl
from tessera.nki.beta1 import top as nki
from tessera.nki.errors import NkiError
from tessera.nki.launch import trace
from tessera.nki.stream import Opcode

RNG = np.random.default_rng(11)


def _run(body: object, x: np.ndarray, out_shape: tuple[int, ...],
         out_dtype: object = nl.float32) -> tuple[np.ndarray, list[Opcode]]:
    """Load x, apply `body(tile)` (a tile of out_shape), store it; returns it and the
    opcodes issued."""
    @nki.jit
    def kernel(a):
        out = nl.ndarray(out_shape, dtype=out_dtype, buffer=nl.shared_hbm)
        nl.store(out, body(nl.load(a)))
        return out

    res = trace(kernel)(x)
    return res.outputs, [i.opcode for i in res.instructions]


X3 = RNG.standard_normal((16, 4, 8)).astype(np.float32)


@pytest.mark.parametrize(("name", "ref"), [
    ("sum", np.sum), ("max", np.max), ("min", np.min), ("prod", np.prod), ("mean", np.mean)])
def test_reductions_match_numpy_on_trailing_axes(name, ref):
    fn = getattr(nl, name)
    got, ops = _run(lambda t: fn(t, axis=[1, 2]), X3, (16, 1))
    np.testing.assert_allclose(got, ref(X3, axis=(1, 2))[:, None], rtol=1e-4, atol=1e-5)
    assert ops.count(Opcode.TENSOR_REDUCE) == 1
    got, _ = _run(lambda t: fn(t, axis=2, keepdims=True), X3, (16, 4, 1))
    np.testing.assert_allclose(got, ref(X3, axis=2, keepdims=True), rtol=1e-4, atol=1e-5)


def test_var_and_all():
    got, _ = _run(lambda t: nl.var(t, axis=2), X3, (16, 4))
    np.testing.assert_allclose(got, X3.var(axis=2), rtol=1e-4, atol=1e-6)
    got, _ = _run(lambda t: nl.var(t, axis=(1, 2)), X3, (16, 1))
    np.testing.assert_allclose(got, X3.var(axis=(1, 2))[:, None], rtol=1e-4, atol=1e-6)
    flags = (RNG.random((8, 6)) > 0.2).astype(np.float32)
    got, _ = _run(lambda t: nl.all(t, axis=1), flags, (8, 1), nl.uint8)
    np.testing.assert_array_equal(got[:, 0], flags.all(axis=1))


def test_dtype_and_integer_mean():
    ints = RNG.integers(-50, 50, (8, 7)).astype(np.int32)
    got, _ = _run(lambda t: nl.mean(t, axis=1), ints, (8, 1))
    np.testing.assert_allclose(got[:, 0], ints.mean(axis=1), rtol=1e-6)
    got, _ = _run(lambda t: nl.sum(t, axis=1, dtype=nl.bfloat16), X3[:, 0, :], (16, 1),
                  nl.bfloat16)
    np.testing.assert_allclose(got[:, 0].astype(np.float32), X3[:, 0, :].sum(axis=1),
                               rtol=2e-2, atol=2e-2)


def test_masks_cut_partitions_and_reduced_elements_and_assign_without_copy():
    @nki.jit
    def kernel(a):
        out = nl.ndarray((2, 128, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(32)[None, :]
        t = nl.load(a[i_p, i_f], mask=(i_p < 100))  # ragged: a has 100 rows
        acc = nl.zeros((128, 1), nl.float32)
        acc[...] = nl.sum(t, axis=1, mask=(i_p < 100) & (i_f < 20))
        nl.store(out[0], acc)
        m = nl.zeros((128, 1), nl.float32)
        m[...] = nl.mean(t, axis=1, mask=(i_p < 100))
        nl.store(out[1], m)
        return out

    a = RNG.standard_normal((100, 32)).astype(np.float32)
    res = trace(kernel)(a)
    want = np.zeros((128,), np.float32)
    want[:100] = a[:, :20].sum(axis=1)
    np.testing.assert_allclose(res.outputs[0][:, 0], want, rtol=1e-5, atol=1e-5)
    want[:100] = a.mean(axis=1)
    np.testing.assert_allclose(res.outputs[1][:, 0], want, rtol=1e-5, atol=1e-6)
    ops = [i.opcode for i in res.instructions]
    assert Opcode.TENSOR_COPY not in ops  # the results were issued into acc and m
    reduce_parts = [i.partitions for i in res.instructions if i.opcode is Opcode.TENSOR_REDUCE]
    assert reduce_parts == [100, 100]


def _kernel_line(kernel: object, text: str) -> str:
    lines, start = inspect.getsourcelines(kernel.fn)  # type: ignore[attr-defined]
    k = next(k for k, line in enumerate(lines) if text in line)
    return f"{inspect.getsourcefile(kernel.fn)}:{start + k}"  # type: ignore[attr-defined]


def test_partition_axis_is_refused_at_the_users_line():
    @nki.jit
    def kernel(a):
        s = nl.sum(nl.load(a), axis=0)
        return s

    with pytest.raises(NkiError, match="axis 0 is the partition dimension") as err:
        nki.simulate_kernel(kernel, X3[:, 0, :])
    assert _kernel_line(kernel, "nl.sum(") in str(err.value)


def test_a_mask_that_is_not_a_box_is_refused():
    @nki.jit
    def kernel(a):
        i_p = nl.arange(16)[:, None, None]
        i_f = nl.arange(8)[None, None, :]
        return nl.max(nl.load(a), axis=2, mask=(i_p >= i_f))

    with pytest.raises(NkiError, match="must bound each axis"):
        nki.simulate_kernel(kernel, X3)


def test_free_axes_that_are_not_the_last_reduce_through_a_permuted_view():
    # the vendor's average-pool example reduces axes [2, 4] of a 5-D pooling view
    @nki.jit
    def kernel(a):
        out = nl.ndarray((a.shape[0], a.shape[2]), dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.sum(nl.load(a), axis=[1]))
        return out

    np.testing.assert_allclose(nki.simulate_kernel(kernel, X3), X3.sum(axis=1), rtol=1e-5)
