"""Reductions and scans (tensor_reduce ... tensor_partition_reduce) against numpy."""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import (
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

BF16 = ml_dtypes.bfloat16
from nki_harness import run_single, tiles_kernel  # noqa: E402

RNG = np.random.default_rng(11)


def rand(shape: tuple, dtype: object = np.float32, lo: float = -2, hi: float = 2) -> np.ndarray:
    return RNG.uniform(lo, hi, size=shape).astype(np.float32).astype(dtype)


run = run_single



def trace(body: Callable[..., None], inputs: tuple[np.ndarray, ...],
          out_shape: tuple[int, ...]) -> tuple:
    kernel = tiles_kernel(body, [(out_shape, np.float32)], pass_lists=False)
    return nki.trace(kernel)(*inputs).instructions


def expect(err: type[Exception], body: Callable[..., None], inputs: tuple[np.ndarray, ...],
           out_shape: tuple[int, ...], out_dtype: object = np.float32) -> None:
    with pytest.raises(err):
        run(body, inputs, out_shape, out_dtype)


def to_psum(t: object) -> object:
    ps = nl.ndarray(t.shape, nl.float32, buffer=nl.psum)  # type: ignore[attr-defined]
    nisa.tensor_copy(ps, t)
    return ps


def close(got: np.ndarray, ref: np.ndarray, dtype: object) -> None:
    """float32: near-exact; bf16: the float32 reference rounded once more (1 ulp slack)."""
    got = np.asarray(got, dtype=np.float32)
    if dtype is BF16:
        np.testing.assert_allclose(got, ref.astype(BF16).astype(np.float32), rtol=8e-3,
                                   atol=1e-6)
    else:
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 127, 129, 1000])
@pytest.mark.parametrize("op", ["add", "maximum", "minimum"])
def test_tensor_reduce_free_axis(chip: str, dtype: object, free: int, op: str) -> None:
    x = rand((37, free), dtype)

    def body(dst, t):  # noqa: ANN001
        nisa.tensor_reduce(dst, getattr(nl, op), t, axis=1)

    got = run(body, (x,), (37, 1), dtype, chip)
    ref = getattr(np, op).reduce(x.astype(np.float64), axis=1, keepdims=True)
    close(got, ref.astype(np.float32), dtype)


def test_tensor_reduce_multiply_subtract_negate() -> None:
    x = rand((16, 9), lo=0.5, hi=1.5)
    got = run(lambda d, t: nisa.tensor_reduce(d, nl.multiply, t, 1, negate=True), (x,), (16, 1))
    close(got, -np.prod(x.astype(np.float64), axis=1, keepdims=True), np.float32)
    got = run(lambda d, t: nisa.tensor_reduce(d, nl.subtract, t, axis=(1,)), (x,), (16, 1))
    # subtract folds left: x0 - x1 - x2 - ...
    close(got, (x[:, :1] - x[:, 1:].sum(axis=1, keepdims=True)), np.float32)


def test_tensor_reduce_3d_axes_and_views() -> None:
    x = rand((37, 4, 6))
    inner = run(lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=2), (x,), (37, 4))
    close(inner, x.sum(axis=2), np.float32)
    neg = run(lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=-1, keepdims=True), (x,),
              (37, 4, 1))
    close(neg, x.sum(axis=2, keepdims=True), np.float32)
    both = run(lambda d, t: nisa.tensor_reduce(d, nl.maximum, t, axis=(1, 2)), (x,), (37, 1))
    close(both, x.max(axis=(1, 2))[:, None], np.float32)
    # the earlier page numbers free axes from the most minor: axis=1 on a 3-D tile is the
    # last dimension (as the vendor's kernels use it)
    minor = run(lambda d, t: nisa.tensor_reduce(d, nl.maximum, t, axis=1), (x,), (37, 4))
    close(minor, x.max(axis=2), np.float32)
    # reversed and strided input views: the reduction sees the view's elements
    rev = run(lambda d, t: nisa.tensor_reduce(d, nl.subtract, t[:, 0, ::-1], axis=1), (x,),
              (37, 1))
    r = x[:, 0, ::-1]
    close(rev, r[:, :1] - r[:, 1:].sum(axis=1, keepdims=True), np.float32)
    y = rand((64, 4, 6))
    part = run(lambda d, t: nisa.tensor_reduce(d, nl.add, t[32:64, :, ::2], axis=(1, 2)), (y,),
               (32, 1))
    close(part, y[32:64, :, ::2].sum(axis=(1, 2))[:, None], np.float32)


def test_tensor_reduce_bitwise_and_logical_ints() -> None:
    ints = RNG.integers(-2**31, 2**31 - 1, size=(37, 33)).astype(np.int32)
    for op, ufunc in (("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
                      ("bitwise_xor", np.bitwise_xor)):
        got = run(lambda d, t, o=op: nisa.tensor_reduce(d, getattr(nl, o), t, axis=1),
                  (ints,), (37, 1), np.int32)
        np.testing.assert_array_equal(got, ufunc.reduce(ints, axis=1, keepdims=True))
    flags = np.vstack([np.ones((1, 5)), RNG.integers(0, 2, size=(7, 5))]).astype(np.int32)
    got = run(lambda d, t: nisa.tensor_reduce(d, nl.logical_and, t, axis=1), (flags,),
              (8, 1), np.int32)
    np.testing.assert_array_equal(got[:, 0], np.all(flags != 0, axis=1))
    got = run(lambda d, t: nisa.tensor_reduce(d, nl.logical_xor, t, axis=1), (flags,),
              (8, 1), np.int32)
    np.testing.assert_array_equal(got[:, 0], flags.sum(axis=1) % 2)
    # arithmetic reductions on ints go through float32 and cast back
    small = RNG.integers(-100, 100, size=(8, 20)).astype(np.int16)
    got = run(lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=1), (small,), (8, 1), np.int32)
    np.testing.assert_array_equal(got, small.sum(axis=1, keepdims=True))


def test_tensor_reduce_errors_and_record() -> None:
    x = rand((8, 3, 4))
    expect(PartitionError, lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=(0, 1, 2)), (x,),
           (1, 1))
    x4 = rand((8, 2, 3, 4))  # neither trailing (2, 3) nor 1..k from the most minor
    expect(KernelUsageError, lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=(1, 3)), (x4,),
           (8, 3))
    expect(KernelUsageError, lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=3), (x,), (8, 1))
    expect(KernelUsageError, lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=(2, 2)), (x,),
           (8, 3))
    expect(KernelUsageError, lambda d, t: nisa.tensor_reduce(d, nl.bitwise_or, t, axis=1,
                                                             negate=True),
           (np.ones((8, 4), np.int32),), (8, 1), np.int32)
    expect(EngineAccessError, lambda d, t: nisa.tensor_reduce(d, nl.divide, t, axis=2), (x,),
           (8, 3))
    expect(DTypeError, lambda d, t: nisa.tensor_reduce(d, nl.bitwise_or, t, axis=2), (x,),
           (8, 3))
    expect(ShapeMismatchError, lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=2), (x,),
           (8, 4))
    expect(ShapeMismatchError, lambda d, t: nisa.tensor_reduce(d, nl.add, t[0:4], axis=2),
           (x,), (8, 3))
    insts = [i for i in trace(lambda d, t: nisa.tensor_reduce(d, nl.add, t, axis=(1, 2),
                                                               negate=True), (x,), (8, 1))
             if i.opcode is Opcode.TENSOR_REDUCE]
    assert len(insts) == 1 and insts[0].engine is Engine.VECTOR
    assert insts[0].attrs.op == "add" and insts[0].attrs.negate is True
    assert insts[0].attrs.reduced_axes == 2 and insts[0].free_elements == 12


@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 129])
def test_tensor_scalar_reduce(dtype: object, free: int) -> None:
    x = rand((37, free), dtype)
    v = rand((37, 1))

    def body(dst, t, s):  # noqa: ANN001
        res = nl.ndarray((37, 1), nl.float32, buffer=nl.sbuf)
        prod = nl.ndarray((37, free), t.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(prod, t, nl.multiply, s, nl.add, res)
        nisa.tensor_copy(dst[:, 1:], prod)
        nisa.tensor_copy(dst[:, 0:1], res)

    got = run(body, (x, v), (37, free + 1), np.float32)
    prod = x.astype(np.float32) * v
    close(got[:, 1:], prod, dtype)
    # reduce_res sees the float32 products, not the bf16-rounded dst values
    close(got[:, :1], prod.astype(np.float64).sum(axis=1, keepdims=True), np.float32)


def test_tensor_scalar_reduce_reverse_max_and_errors() -> None:
    x = rand((8, 10))

    def body(dst, t):  # noqa: ANN001
        res = nl.ndarray((8, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(dst[:, 0:10], t, nl.subtract, 1.0, nl.maximum, res,
                                  reverse0=True)
        nisa.tensor_copy(dst[:, 10:11], res)

    got = run(body, (x,), (8, 11))
    np.testing.assert_array_equal(got[:, :10], 1 - x)
    np.testing.assert_array_equal(got[:, 10], (1 - x).max(axis=1))

    def with_res(shape, **kw):  # noqa: ANN001, ANN003, ANN202
        def body2(dst, t):  # noqa: ANN001
            res = nl.ndarray(shape, nl.float32, buffer=nl.sbuf)
            nisa.tensor_scalar_reduce(dst, t, kw.get("op0", nl.add), 1.0,
                                      kw.get("red", nl.add), res,
                                      reduce_cmd=kw.get("cmd", nisa.reduce_cmd.reset_reduce))
        return body2

    expect(ShapeMismatchError, with_res((8, 2)), (x,), x.shape)
    expect(ShapeMismatchError, with_res((4, 1)), (x,), x.shape)
    expect(KernelUsageError, with_res((8, 1), cmd=nisa.reduce_cmd.reduce), (x,), x.shape)
    expect(EngineAccessError, with_res((8, 1), red=nl.subtract), (x,), x.shape)
    ints = np.ones((8, 10), dtype=np.int32)
    expect(EngineAccessError, with_res((8, 1), op0=nl.bitwise_and), (ints,), ints.shape,
           np.int32)


def _scan_ref(a: np.ndarray, b: np.ndarray, init: np.ndarray, op0: Callable, op1: Callable,
              reverse0: bool, reverse1: bool) -> np.ndarray:
    state = init.astype(np.float32).reshape(-1)
    out = np.empty(a.shape, np.float32)
    for i in range(a.shape[1]):
        t = op0(state, a[:, i]) if reverse0 else op0(a[:, i], state)
        state = (op1(b[:, i], t) if reverse1 else op1(t, b[:, i])).astype(np.float32)
        out[:, i] = state
    return out


@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 127, 129])
@pytest.mark.parametrize("vector_init", [False, True], ids=["scalar", "vector"])
def test_tensor_tensor_scan_linear_recurrence(dtype: object, free: int,
                                              vector_init: bool) -> None:
    decay = rand((37, free), dtype, lo=0.5, hi=1.0)
    drive = rand((37, free), dtype)
    init = rand((37, 1)) if vector_init else np.full((37, 1), 0.5, np.float32)

    def body(dst, a, b, i):  # noqa: ANN001
        nisa.tensor_tensor_scan(dst, a, b, i if vector_init else 0.5, nl.multiply, nl.add)

    got = run(body, (decay, drive, init), decay.shape, dtype)
    ref = _scan_ref(decay.astype(np.float32), drive.astype(np.float32), init, np.multiply,
                    np.add, False, False)
    close(got, ref, dtype)


@pytest.mark.parametrize("reverse0", [False, True])
@pytest.mark.parametrize("reverse1", [False, True])
def test_tensor_tensor_scan_reverse_flags(reverse0: bool, reverse1: bool) -> None:
    a = rand((8, 12))
    b = rand((8, 12))

    def body(dst, x, y):  # noqa: ANN001
        nisa.tensor_tensor_scan(dst, x[:, ::-1], y, 1.0, nl.subtract, nl.subtract,
                                reverse0=reverse0, reverse1=reverse1)

    got = run(body, (a, b), a.shape)
    ref = _scan_ref(a[:, ::-1], b, np.ones((8, 1)), np.subtract, np.subtract, reverse0,
                    reverse1)
    close(got, ref, np.float32)


def test_tensor_tensor_scan_errors() -> None:
    a = rand((8, 6))

    expect(EngineAccessError, lambda d, x, y: nisa.tensor_tensor_scan(
        d, to_psum(x), to_psum(y), 0.0, nl.add, nl.add), (a, a), a.shape)
    expect(ShapeMismatchError, lambda d, x, y: nisa.tensor_tensor_scan(
        d, x, y[:, 0:5], 0.0, nl.add, nl.add), (a, a), a.shape)
    expect(EngineAccessError, lambda d, x, y: nisa.tensor_tensor_scan(
        d, x, y, 0.0, nl.exp, nl.add), (a, a), a.shape)
    ints = np.ones((8, 6), dtype=np.int32)
    expect(EngineAccessError, lambda d, x, y: nisa.tensor_tensor_scan(
        d, x, y, 0, nl.bitwise_and, nl.add), (ints, ints), ints.shape, np.int32)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 127, 512])
def test_bn_stats_layout_and_aggr(chip: str, dtype: object, free: int) -> None:
    x = rand((37, free), dtype, lo=-3, hi=5)

    def body(dst, t):  # noqa: ANN001
        stats = nl.ndarray((37, 6), nl.float32, buffer=nl.sbuf)
        nisa.bn_stats(stats, t)
        nisa.tensor_copy(dst[:, 0:6], stats)
        nisa.bn_aggr(dst[:, 6:8], stats)

    got = run(body, (x,), (37, 8), np.float32, chip)
    xf = x.astype(np.float64)
    even, odd = xf[:, 0::2], xf[:, 1::2]
    np.testing.assert_array_equal(got[:, 0], even.shape[1])
    np.testing.assert_array_equal(got[:, 3], odd.shape[1])
    close(got[:, 1], even.mean(axis=1), np.float32)
    close(got[:, 2], even.var(axis=1) * even.shape[1], np.float32)
    if odd.shape[1]:
        close(got[:, 4], odd.mean(axis=1), np.float32)
        close(got[:, 5], odd.var(axis=1) * odd.shape[1], np.float32)
    else:
        np.testing.assert_array_equal(got[:, 4:6], 0)
    close(got[:, 6], xf.mean(axis=1), np.float32)
    np.testing.assert_allclose(got[:, 7], xf.var(axis=1), rtol=1e-4, atol=1e-5)


def test_bn_stats_chunks_aggregate_over_1000_elements() -> None:
    x = rand((37, 1000), lo=-1, hi=3)

    def body(dst, t):  # noqa: ANN001
        stats = nl.ndarray((37, 2, 6), nl.float32, buffer=nl.sbuf)
        nisa.bn_stats(stats[:, 0, :], t[:, 0:512])
        nisa.bn_stats(stats[:, 1, :], t[:, 512:1000])
        nisa.bn_aggr(dst, stats)

    got = run(body, (x,), (37, 2), BF16)
    close(got[:, 0], x.astype(np.float64).mean(axis=1), BF16)
    close(got[:, 1], x.astype(np.float64).var(axis=1), BF16)


def test_bn_errors_and_record() -> None:
    x = rand((8, 600))
    expect(ShapeMismatchError, lambda d, t: nisa.bn_stats(d, t), (x,), (8, 6))
    expect(ShapeMismatchError, lambda d, t: nisa.bn_stats(d, t[:, 0:100]), (x,), (8, 5))
    expect(ShapeMismatchError, lambda d, t: nisa.bn_aggr(d, t[:, 0:7]), (x,), (8, 2))
    expect(ShapeMismatchError, lambda d, t: nisa.bn_aggr(d, t[:, 0:6]), (x,), (8, 3))
    insts = trace(lambda d, t: nisa.bn_stats(d, t[:, 0:512]), (x,), (8, 6))
    bn = [i for i in insts if i.opcode is Opcode.BN_STATS]
    assert len(bn) == 1 and bn[0].engine is Engine.VECTOR and bn[0].free_elements == 512


@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("op", ["add", "maximum"])
def test_tensor_partition_reduce(dtype: object, op: str) -> None:
    x = rand((37, 4, 33), dtype)
    got = run(lambda d, t: nisa.tensor_partition_reduce(d, getattr(nl, op), t), (x,),
              (1, 4, 33), dtype)
    close(got, getattr(np, op).reduce(x.astype(np.float64), axis=0, keepdims=True), dtype)


def test_tensor_partition_reduce_ints_errors_and_record() -> None:
    ints = RNG.integers(0, 2**31 - 1, size=(128, 9)).astype(np.int32)
    got = run(lambda d, t: nisa.tensor_partition_reduce(d, nl.bitwise_or, t), (ints,), (1, 9),
              np.int32)
    np.testing.assert_array_equal(got, np.bitwise_or.reduce(ints, axis=0, keepdims=True))
    x = rand((16, 9))

    expect(EngineAccessError, lambda d, t: nisa.tensor_partition_reduce(d, nl.add, to_psum(t)),
           (x,), (1, 9))
    expect(EngineAccessError, lambda d, t: nisa.tensor_partition_reduce(d, nl.minimum, t), (x,),
           (1, 9))
    expect(ShapeMismatchError, lambda d, t: nisa.tensor_partition_reduce(d, nl.add, t), (x,),
           (2, 9))
    expect(ShapeMismatchError, lambda d, t: nisa.tensor_partition_reduce(d, nl.add, t), (x,),
           (1, 8))
    expect(DTypeError, lambda d, t: nisa.tensor_partition_reduce(d, nl.bitwise_and, t), (x,),
           (1, 9))
    expect(PartitionError, lambda d, t: nisa.tensor_partition_reduce(d, nl.add, t[8:16]), (x,),
           (1, 9))
    insts = [i for i in trace(lambda d, t: nisa.tensor_partition_reduce(d, nl.add, t), (x,),
                              (1, 9)) if i.opcode is Opcode.TENSOR_PARTITION_REDUCE]
    assert len(insts) == 1 and insts[0].engine is Engine.GPSIMD and insts[0].partitions == 16


def test_functional_and_symbolic_streams_match() -> None:
    x = rand((37, 40))

    @nki.jit
    def kernel(a):  # noqa: ANN001, ANN202
        t = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, a)
        s = nl.ndarray((37, 8), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(s[:, 0:1], nl.add, t[:, ::-1], axis=1, negate=True)
        scaled = nl.ndarray(a.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(scaled, t, nl.multiply, 2.0, nl.maximum, s[:, 1:2])
        nisa.tensor_tensor_scan(scaled, t, scaled, s[:, 0:1], nl.multiply, nl.add)
        stats = nl.ndarray((37, 6), nl.float32, buffer=nl.sbuf)
        nisa.bn_stats(stats, t)
        nisa.bn_aggr(s[:, 2:4], stats)
        nisa.memset(s[:, 4:8], 0.0)
        total = nl.ndarray((1, 8), nl.float32, buffer=nl.sbuf)
        nisa.tensor_partition_reduce(total, nl.add, s)
        out = nl.ndarray((1, 8), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, total)
        return out

    functional = nki.trace(kernel, chip="trn1")(x)
    symbolic = nki.trace(kernel, symbolic=True, chip="trn1")(nki.TensorSpec(x.shape,
                                                                            nl.float32))
    assert functional.instructions == symbolic.instructions
    assert len(functional.instructions) == 9
    xf = x.astype(np.float64)
    ref = [-xf.sum(), (2 * xf).max(axis=1).sum(), xf.mean(axis=1).sum(), xf.var(axis=1).sum()]
    np.testing.assert_allclose(functional.outputs[0, :4], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(functional.outputs[0, 4:], 0)
