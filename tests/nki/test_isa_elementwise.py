"""tensor_scalar, scalar_tensor_tensor, reciprocal and tensor_copy_predicated vs numpy."""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import (
    BufferKindError,
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

BF16 = ml_dtypes.bfloat16
from nki_harness import run_single, tiles_kernel  # noqa: E402

RNG = np.random.default_rng(7)


def rand(shape: tuple[int, ...], dtype: object = np.float32, lo: float = -2.0,
         hi: float = 2.0) -> np.ndarray:
    return RNG.uniform(lo, hi, size=shape).astype(np.float32).astype(dtype)


run = run_single



def instructions(body: Callable[..., None], inputs: tuple[np.ndarray, ...],
                 out_shape: tuple[int, ...], out_dtype: object, chip: str = "trn2") -> tuple:
    kernel = tiles_kernel(body, [(out_shape, out_dtype)], pass_lists=False)
    return nki.trace(kernel, chip=chip)(*inputs).instructions


def as_dtype(ref: np.ndarray, dtype: object) -> np.ndarray:
    """The numpy reference (float32 math) cast the way the engine casts on write."""
    return ref.astype(np.float32).astype(dtype)


# ------------------------------------------------------------------ tensor_scalar
@pytest.mark.parametrize("chip", ["trn1", "trn2"])
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 127, 129, 1000])
def test_tensor_scalar_two_ops_matches_numpy(chip: str, dtype: object, free: int) -> None:
    x = rand((37, free), dtype)
    vec = rand((37, 1))

    def body(dst, t, v):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.subtract, v, op1=nl.multiply, operand1=1.5)

    got = run(body, (x, vec), x.shape, dtype, chip)
    ref = (x.astype(np.float32) - vec) * np.float32(1.5)
    np.testing.assert_array_equal(got, as_dtype(ref, dtype))


@pytest.mark.parametrize("reverse0", [False, True])
@pytest.mark.parametrize("reverse1", [False, True])
@pytest.mark.parametrize("vector", [False, True], ids=["scalar", "vector"])
def test_tensor_scalar_reverse_flags(reverse0: bool, reverse1: bool, vector: bool) -> None:
    x = rand((8, 33), lo=0.5, hi=2.0)
    v0 = rand((8, 1), lo=0.5, hi=2.0)
    a = v0 if vector else np.float32(3.0)
    b = np.float32(0.25)

    def body(dst, t, v):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.subtract, v if vector else 3.0, reverse0=reverse0,
                           op1=nl.divide, operand1=0.25, reverse1=reverse1)

    got = run(body, (x, v0), x.shape, np.float32)
    tmp = (a - x) if reverse0 else (x - a)
    ref = (b / tmp) if reverse1 else (tmp / b)
    np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-6)


def test_tensor_scalar_unary_then_binary_and_int_arith() -> None:
    x = rand((16, 20))

    def body(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.abs, None, op1=nl.maximum, operand1=0.5)

    np.testing.assert_array_equal(run(body, (x,), x.shape, np.float32),
                                  np.maximum(np.abs(x), np.float32(0.5)))
    ints = RNG.integers(-1000, 1000, size=(16, 20)).astype(np.int32)

    def body_int(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.multiply, 3, op1=nl.add, operand1=-7)

    np.testing.assert_array_equal(run(body_int, (ints,), ints.shape, np.int32), ints * 3 - 7)


def test_tensor_scalar_bitvec_ops_work_on_bits() -> None:
    ints = RNG.integers(-2**31, 2**31 - 1, size=(32, 17)).astype(np.int32)

    def body(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.right_shift, 4, op1=nl.bitwise_and, operand1=0x7FFFFFFF)

    got = run(body, (ints,), ints.shape, np.int32)
    # logical shift: the sign bit is shifted in as zero
    ref = ((ints.view(np.uint32) >> 4) & 0x7FFFFFFF).view(np.int32)
    np.testing.assert_array_equal(got, ref)
    small = RNG.integers(0, 255, size=(8, 9)).astype(np.uint8)

    def body_inv(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.invert, 0, op1=nl.left_shift, operand1=1)

    np.testing.assert_array_equal(run(body_inv, (small,), small.shape, np.uint8),
                                  (~small) << np.uint8(1))


def test_tensor_scalar_vector_operand_bitvec_int() -> None:
    ints = RNG.integers(0, 2**16, size=(8, 12)).astype(np.int32)
    masks = RNG.integers(0, 2**16, size=(8, 1)).astype(np.int32)

    def body(dst, t, m):  # noqa: ANN001
        nisa.tensor_scalar(dst, t, nl.bitwise_xor, m)

    np.testing.assert_array_equal(run(body, (ints, masks), ints.shape, np.int32), ints ^ masks)


def test_tensor_scalar_strided_and_negative_stride_views() -> None:
    x = rand((37, 40))

    def body(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst[:, 0:20], t[:, ::-2], nl.multiply, 2.0)
        nisa.tensor_scalar(dst[:, 20:40], t[:, 1::2], nl.add, 1.0)

    got = run(body, (x,), x.shape, np.float32)
    np.testing.assert_array_equal(got[:, :20], x[:, ::-2] * 2)
    np.testing.assert_array_equal(got[:, 20:], x[:, 1::2] + 1)


def test_tensor_scalar_partition_offsets() -> None:
    x = rand((128, 8))

    def body(dst, t):  # noqa: ANN001
        nisa.memset(dst, 0.0)
        nisa.tensor_scalar(dst[32:64], t[32:64], nl.add, 1.0)
        nisa.tensor_scalar(dst[64:128], t[64:128], nl.add, 2.0)

    got = run(body, (x,), x.shape, np.float32)
    np.testing.assert_array_equal(got[32:64], x[32:64] + 1)
    np.testing.assert_array_equal(got[64:], x[64:] + 2)
    np.testing.assert_array_equal(got[:32], 0)

    def bad(dst, t):  # noqa: ANN001
        nisa.tensor_scalar(dst[16:48], t[16:48], nl.add, 1.0)

    with pytest.raises(PartitionError):
        run(bad, (x,), x.shape, np.float32)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_tensor_scalar_engines_recorded(chip: str) -> None:
    x = rand((37, 5))
    for engine, expected in ((None, Engine.VECTOR), (nisa.scalar_engine, Engine.SCALAR),
                             (nisa.gpsimd_engine, Engine.GPSIMD)):
        def body(dst, t, e=engine):  # noqa: ANN001
            nisa.tensor_scalar(dst, t, nl.multiply, 2.0, op1=nl.add, operand1=1.0, engine=e)

        insts = [i for i in instructions(body, (x,), x.shape, np.float32, chip)
                 if i.opcode is Opcode.TENSOR_SCALAR]
        assert len(insts) == 1
        inst = insts[0]
        assert inst.engine is expected
        assert inst.attrs.op0 == "multiply" and inst.attrs.op1 == "add"
        assert inst.attrs.operand0 == 2.0 and inst.attrs.reverse0 is False
        assert (inst.partitions, inst.free_elements) == (37, 5)


def _expect(err: type[Exception], body: Callable[..., None], inputs: tuple[np.ndarray, ...],
            out_shape: tuple[int, ...], out_dtype: object = np.float32) -> None:
    with pytest.raises(err):
        run(body, inputs, out_shape, out_dtype)


def test_tensor_scalar_errors() -> None:
    x = rand((8, 6))
    ints = np.arange(48, dtype=np.int32).reshape(8, 6)
    v16 = rand((8, 1), BF16)
    v2 = rand((8, 2))
    _expect(EngineAccessError, lambda d, t: nisa.tensor_scalar(
        d, t, nl.subtract, 1.0, engine=nisa.scalar_engine), (x,), x.shape)
    _expect(EngineAccessError, lambda d, t: nisa.tensor_scalar(
        d, t, nl.bitwise_and, 1, engine=nisa.gpsimd_engine), (ints,), ints.shape, np.int32)
    _expect(EngineAccessError, lambda d, t: nisa.tensor_scalar(
        d, t, nl.bitwise_and, 1, op1=nl.add, operand1=1.0), (ints,), ints.shape, np.int32)
    _expect(EngineAccessError, lambda d, t: nisa.tensor_scalar(d, t, nl.exp, 0), (x,), x.shape)
    _expect(DTypeError, lambda d, t: nisa.tensor_scalar(d, t, nl.bitwise_or, 1), (x,), x.shape)
    _expect(DTypeError, lambda d, t: nisa.tensor_scalar(d, t, nl.left_shift, 1.5), (ints,),
            ints.shape, np.int32)
    _expect(DTypeError, lambda d, t, v: nisa.tensor_scalar(d, t, nl.add, v), (x, v16), x.shape)
    _expect(ShapeMismatchError, lambda d, t, v: nisa.tensor_scalar(d, t, nl.add, v), (x, v2),
            x.shape)
    _expect(ShapeMismatchError, lambda d, t: nisa.tensor_scalar(d, t, nl.add, 1.0), (x,),
            (8, 5))
    _expect(KernelUsageError, lambda d, t: nisa.tensor_scalar(d, t, nl.add, 1.0, operand1=2.0),
            (x,), x.shape)
    _expect(KernelUsageError, lambda d, t: nisa.tensor_scalar(d, t, nl.abs, 3.0), (x,), x.shape)
    _expect(KernelUsageError, lambda d, t: nisa.tensor_scalar(d, t, nl.add, None), (x,),
            x.shape)


def test_tensor_scalar_memory_rules() -> None:
    x = rand((8, 6))

    def hbm_input(a):  # noqa: ANN001, ANN202
        dst = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst, a, nl.add, 1.0)
        return a

    with pytest.raises(BufferKindError):
        nki.simulate(hbm_input)(x)

    def gpsimd_psum(d, t):  # noqa: ANN001
        ps = nl.ndarray(t.shape, nl.float32, buffer=nl.psum)
        nisa.tensor_copy(ps, t)
        nisa.tensor_scalar(d, ps, nl.add, 1.0, engine=nisa.gpsimd_engine)

    _expect(EngineAccessError, gpsimd_psum, (x,), x.shape)

    def vector_psum(d, t):  # noqa: ANN001
        ps = nl.ndarray(t.shape, nl.float32, buffer=nl.psum)
        nisa.tensor_copy(ps, t)
        nisa.tensor_scalar(d, ps, nl.add, 1.0)

    np.testing.assert_array_equal(run(vector_psum, (x,), x.shape, np.float32), x + 1)


# ------------------------------------------------------------------ scalar_tensor_tensor
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
@pytest.mark.parametrize("free", [1, 129])
@pytest.mark.parametrize("vector", [False, True], ids=["scalar", "vector"])
def test_scalar_tensor_tensor(dtype: object, free: int, vector: bool) -> None:
    x = rand((37, free), dtype)
    y = rand((37, free), dtype)
    v = rand((37, 1), dtype)

    def body(dst, a, b, s):  # noqa: ANN001
        nisa.scalar_tensor_tensor(dst, a, nl.multiply, s if vector else -0.5, nl.add, b)

    got = run(body, (x, y, v), x.shape, dtype)
    s = v.astype(np.float32) if vector else np.float32(-0.5)
    ref = x.astype(np.float32) * s + y.astype(np.float32)
    np.testing.assert_array_equal(got, as_dtype(ref, dtype))


def test_scalar_tensor_tensor_reverse_and_int() -> None:
    x = RNG.integers(-50, 50, size=(12, 10)).astype(np.int32)
    y = RNG.integers(-50, 50, size=(12, 10)).astype(np.int32)

    def body(dst, a, b):  # noqa: ANN001
        nisa.scalar_tensor_tensor(dst, a, nl.subtract, 100, nl.subtract, b, reverse0=True,
                                  reverse1=True)

    np.testing.assert_array_equal(run(body, (x, y), x.shape, np.int32), y - (100 - x))


def test_scalar_tensor_tensor_errors() -> None:
    x = rand((8, 6))
    ints = np.arange(48, dtype=np.int32).reshape(8, 6)

    def both_psum(d, a, b):  # noqa: ANN001
        pa = nl.ndarray(a.shape, nl.float32, buffer=nl.psum)
        pb = nl.ndarray(a.shape, nl.float32, buffer=nl.psum)
        nisa.tensor_copy(pa, a)
        nisa.tensor_copy(pb, b)
        nisa.scalar_tensor_tensor(d, pa, nl.add, 1.0, nl.add, pb)

    _expect(EngineAccessError, both_psum, (x, x), x.shape)
    _expect(EngineAccessError, lambda d, a, b: nisa.scalar_tensor_tensor(
        d, a, nl.bitwise_and, 1, nl.add, b), (ints, ints), ints.shape, np.int32)
    _expect(EngineAccessError, lambda d, a, b: nisa.scalar_tensor_tensor(
        d, a, nl.add, 1.0, nl.add, b, engine=nisa.gpsimd_engine), (x, x), x.shape)
    _expect(ShapeMismatchError, lambda d, a, b: nisa.scalar_tensor_tensor(
        d, a, nl.add, 1.0, nl.add, b[:, 0:5]), (x, x), x.shape)
    _expect(KernelUsageError, lambda d, a, b: nisa.scalar_tensor_tensor(
        d, a, nl.add, 1.0, nl.add, 2.0), (x, x), x.shape)


# ------------------------------------------------------------------ reciprocal
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
def test_reciprocal(dtype: object) -> None:
    x = rand((37, 127), dtype, lo=0.1, hi=4.0)
    got = run(lambda d, t: nisa.reciprocal(d, t), (x,), x.shape, dtype)
    np.testing.assert_array_equal(got, as_dtype(np.float32(1.0) / x.astype(np.float32), dtype))
    ints = np.array([[1, 2, 4, -8]], dtype=np.int32)
    np.testing.assert_array_equal(run(lambda d, t: nisa.reciprocal(d, t), (ints,), (1, 4),
                                      np.float32), [[1.0, 0.5, 0.25, -0.125]])
    _expect(EngineAccessError, lambda d, t: nisa.reciprocal(d, t, engine=nisa.scalar_engine),
            (x,), x.shape, dtype)
    insts = instructions(lambda d, t: nisa.reciprocal(d, t), (x,), x.shape, dtype)
    assert [i.opcode for i in insts].count(Opcode.RECIPROCAL) == 1


# ------------------------------------------------------------------ tensor_copy_predicated
@pytest.mark.parametrize("dtype", [np.float32, BF16, np.int32], ids=["f32", "bf16", "i32"])
@pytest.mark.parametrize("reverse", [False, True])
def test_tensor_copy_predicated(dtype: object, reverse: bool) -> None:
    src = rand((37, 129), dtype, lo=-100, hi=100)
    old = rand((37, 129), dtype, lo=-100, hi=100)
    pred = RNG.integers(0, 3, size=(37, 129)).astype(np.uint8)

    def body(dst, s, o, p):  # noqa: ANN001
        nisa.tensor_copy(dst, o)
        nisa.tensor_copy_predicated(dst, s, p, reverse_pred=reverse)

    got = run(body, (src, old, pred), src.shape, dtype)
    take = (pred != 0) != reverse
    np.testing.assert_array_equal(got, np.where(take, src, old))


def test_tensor_copy_predicated_scalar_src_and_errors() -> None:
    old = rand((8, 6))
    pred = np.tile(np.array([0, 1, 0, 2, 0, 7], dtype=np.uint16), (8, 1))

    def body(dst, o, p):  # noqa: ANN001
        nisa.tensor_copy(dst, o)
        nisa.tensor_copy_predicated(dst, -3.0, p)

    np.testing.assert_array_equal(run(body, (old, pred), old.shape, np.float32),
                                  np.where(pred != 0, np.float32(-3.0), old))
    fpred = pred.astype(np.float32)
    _expect(DTypeError, lambda d, o, p: nisa.tensor_copy_predicated(d, o, p), (old, fpred),
            old.shape)
    _expect(DTypeError, lambda d, o, p: nisa.tensor_copy_predicated(d, o, p), (old, pred),
            old.shape, BF16)
    _expect(ShapeMismatchError, lambda d, o, p: nisa.tensor_copy_predicated(d, o, p[:, 0:5]),
            (old, pred), old.shape)
    _expect(KernelUsageError, lambda d, o, p: nisa.tensor_copy_predicated(d, "x", p),
            (old, pred), old.shape)


# ------------------------------------------------------------------ functional == symbolic
def test_functional_and_symbolic_streams_match() -> None:
    x = rand((37, 33))
    v = rand((37, 1))
    pred = (RNG.integers(0, 2, size=(37, 33))).astype(np.uint8)

    @nki.jit
    def kernel(a, vec, p):  # noqa: ANN001, ANN202
        ta = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        tv = nl.ndarray(vec.shape, vec.dtype, buffer=nl.sbuf)
        tp = nl.ndarray(p.shape, p.dtype, buffer=nl.sbuf)
        nisa.dma_copy(ta, a)
        nisa.dma_copy(tv, vec)
        nisa.dma_copy(tp, p)
        r = nl.ndarray(a.shape, nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_scalar(r, ta[:, ::-1], nl.multiply, tv, op1=nl.add, operand1=1.0)
        nisa.scalar_tensor_tensor(ta, r, nl.subtract, 2.0, nl.maximum, ta, reverse0=True)
        nisa.reciprocal(r, ta)
        nisa.tensor_copy_predicated(r, 0.0, tp, reverse_pred=True)
        out = nl.ndarray(a.shape, nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_copy(out, r)
        return out

    functional = nki.trace(kernel)(x, v, pred)
    symbolic = nki.trace(kernel, symbolic=True)(nki.TensorSpec(x.shape, nl.float32),
                                                nki.TensorSpec(v.shape, nl.float32),
                                                nki.TensorSpec(pred.shape, nl.uint8))
    assert functional.instructions == symbolic.instructions
    ops = [i.opcode for i in functional.instructions]
    assert ops.count(Opcode.TENSOR_SCALAR) == ops.count(Opcode.RECIPROCAL) == 1
    assert isinstance(symbolic.outputs, nki.TensorSpec)
    # functional values: the same pipeline in numpy
    r = as_dtype(x[:, ::-1] * v + 1, BF16).astype(np.float32)
    ta = np.maximum(2.0 - r, x)
    r = as_dtype(1.0 / ta, BF16)
    np.testing.assert_array_equal(functional.outputs, np.where(pred == 0, BF16(0), r))
