"""Core ISA instructions against numpy: nc_matmul, nc_transpose, dma_copy, tensor_tensor,
tensor_copy and memset."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import dtypes as dt
from tessera.nki.errors import EngineAccessError, MatmulShapeError, ShapeMismatchError
from tessera.nki.ops import to_op

RNG = np.random.default_rng(1234)


def randn(shape: tuple[int, ...], dtype: object = np.float32, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32).astype(dtype)


def load(src: nki.language.NkiTensor) -> nki.language.NkiTensor:
    """DMA an HBM tensor into a fresh SBUF tile of the same shape and dtype."""
    tile = nl.ndarray(src.shape, src.dtype, buffer=nl.sbuf)
    nisa.dma_copy(tile, src)
    return tile


def store(tile: nki.language.NkiTensor) -> nki.language.NkiTensor:
    """Copy an on-chip tile to a new shared_hbm output (through SBUF if it is in PSUM)."""
    if tile.buffer is nl.psum:
        sb = nl.ndarray(tile.shape, tile.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(sb, tile)
        return store(sb)
    out = nl.ndarray(tile.shape, tile.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(out, tile)
    return out


def matmul_reference(st: np.ndarray, mv: np.ndarray) -> np.ndarray:
    return st.astype(np.float64).T @ mv.astype(np.float64)


def assert_matmul_close(out: np.ndarray, st: np.ndarray, mv: np.ndarray) -> None:
    """fp32 accumulation: error bounded by a few ulps of the sum of |terms|."""
    scale = np.abs(st.astype(np.float64)).T @ np.abs(mv.astype(np.float64))
    err = np.abs(out.astype(np.float64) - matmul_reference(st, mv))
    assert np.all(err <= 1e-6 * scale + 1e-30), float(np.max(err / (scale + 1e-30)))


# ------------------------------------------------------------------ nc_matmul
def matmul_kernel(st_h, mv_h):
    ps = nl.ndarray((st_h.shape[1], mv_h.shape[1]), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, load(st_h), load(mv_h))
    return store(ps)


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.float16,
                                   ml_dtypes.float8_e4m3])
def test_matmul_input_dtypes(dtype: object) -> None:
    st, mv = randn((128, 96), dtype), randn((128, 200), dtype)
    out = nki.simulate(matmul_kernel)(st, mv)
    assert out.dtype == np.float32 and out.shape == (96, 200)
    assert_matmul_close(out, st, mv)


@pytest.mark.parametrize(("k", "m", "n"), [(1, 1, 1), (1, 127, 500), (37, 127, 500),
                                           (37, 1, 1), (128, 128, 512), (128, 1, 37), (5, 127, 1)])
def test_matmul_ragged_shapes(k: int, m: int, n: int) -> None:
    st, mv = randn((k, m)), randn((k, n))
    assert_matmul_close(nki.simulate(matmul_kernel)(st, mv), st, mv)


def test_matmul_negative_stride_inputs() -> None:
    def kernel(st_h, mv_h):
        st, mv = load(st_h), load(mv_h)
        ps = nl.ndarray((64, 48), nl.float32, buffer=nl.psum)
        # partitions reversed on both sides (same contraction), free dims reversed/strided
        nisa.nc_matmul(ps, st[::-1, ::-1], mv[::-1, 95::-2])
        return store(ps)

    st, mv = randn((100, 64)), randn((100, 96))
    out = nki.simulate(kernel)(st, mv)
    assert_matmul_close(out, st[:, ::-1], mv[:, 95::-2])


def test_matmul_implicit_accumulation_groups() -> None:
    def kernel(st_h, mv_h):
        st, mv = load(st_h), load(mv_h)
        ps = nl.ndarray((32, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, st, mv)      # first: overwrites the NaN poison
        nisa.nc_matmul(ps, st, mv)      # second: adds
        twice = store(ps)
        nisa.memset(ps, 5.0)            # a non-matmul write ends the group
        nisa.nc_matmul(ps, st, mv)      # overwrites the 5.0
        after_memset = store(ps)
        nisa.nc_matmul(ps, st, mv)
        sb = nl.ndarray((32, 64), nl.float32, buffer=nl.sbuf)
        nisa.memset(sb, 1.0)
        nisa.tensor_copy(ps, sb)        # tensor_copy into PSUM also ends it
        nisa.nc_matmul(ps, st, mv)
        after_copy = store(ps)
        fresh = nl.ndarray((32, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(fresh, st, mv)   # a new allocation starts a new group
        return twice, after_memset, after_copy, store(fresh)

    st, mv = randn((16, 32)), randn((16, 64))
    twice, after_memset, after_copy, fresh = nki.simulate(kernel)(st, mv)
    once = matmul_reference(st, mv)
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-5, atol=1e-5)
    for out in (after_memset, after_copy, fresh):
        np.testing.assert_allclose(out, once, rtol=1e-5, atol=1e-5)


def test_matmul_accumulation_is_tracked_per_element() -> None:
    def kernel(st_h, mv_h):
        st, mv = load(st_h), load(mv_h)
        ps = nl.ndarray((32, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, 0:32], st, mv[:, 0:32])
        nisa.nc_matmul(ps, st, mv)  # left half accumulates, right half starts fresh
        return store(ps)

    st, mv = randn((16, 32)), randn((16, 64))
    out = nki.simulate(kernel)(st, mv)
    once = matmul_reference(st, mv)
    expected = once.copy()
    expected[:, :32] *= 2
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_matmul_explicit_accumulate_flag() -> None:
    def kernel(st_h, mv_h):
        st, mv = load(st_h), load(mv_h)
        ps = nl.ndarray((32, 64), nl.float32, buffer=nl.psum)
        nisa.memset(ps, 3.0)
        nisa.nc_matmul(ps, st, mv, accumulate=True)   # adds onto the memset value
        added = store(ps)
        nisa.nc_matmul(ps, st, mv)
        nisa.nc_matmul(ps, st, mv, accumulate=False)  # overwrites a running group
        return added, store(ps)

    st, mv = randn((16, 32)), randn((16, 64))
    added, overwritten = nki.simulate(kernel)(st, mv)
    once = matmul_reference(st, mv)
    np.testing.assert_allclose(added, once + 3.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(overwritten, once, rtol=1e-5, atol=1e-5)


def test_matmul_into_a_dtype_view_of_psum() -> None:
    def kernel(st_h, mv_h):
        st, mv = load(st_h), load(mv_h)
        raw = nl.ndarray((32, 64), nl.int32, buffer=nl.psum)
        ps = raw.view(nl.float32)
        nisa.nc_matmul(ps, st, mv)
        nisa.nc_matmul(ps, st, mv)
        return store(ps)

    st, mv = randn((16, 32)), randn((16, 64))
    out = nki.simulate(kernel)(st, mv)
    np.testing.assert_allclose(out, 2 * matmul_reference(st, mv), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ nc_transpose
def _random_bits(shape: tuple[int, ...], dtype: object) -> np.ndarray:
    raw = RNG.integers(0, 2 ** 16, size=shape, dtype=np.uint16)
    if np.dtype(dtype).itemsize == 4:
        raw = RNG.integers(0, 2 ** 32, size=shape, dtype=np.uint32)
    return raw.view(dtype)


@pytest.mark.parametrize(("engine", "buffer", "shape", "dtype"), [
    (nisa.tensor_engine, nl.psum, (128, 100), np.float32),
    (nisa.tensor_engine, nl.psum, (128, 128), ml_dtypes.bfloat16),
    (nisa.vector_engine, nl.sbuf, (32, 20), np.float32),
    (nisa.vector_engine, nl.psum, (17, 32), ml_dtypes.bfloat16),
])
def test_transpose_is_bit_exact(engine: object, buffer: object, shape: tuple[int, int],
                                dtype: object) -> None:
    def kernel(a):
        dst = nl.ndarray((a.shape[1], a.shape[0]), a.dtype, buffer=buffer)
        nisa.nc_transpose(dst, load(a), engine=engine)
        return store(dst)

    a = _random_bits(shape, dtype)  # NaN payloads included: no value may be altered
    out = nki.simulate(kernel)(a)
    assert out.dtype == a.dtype
    np.testing.assert_array_equal(out.view(np.uint8), np.ascontiguousarray(a.T).view(np.uint8))


def test_transpose_limits_and_flattened_free_dims() -> None:
    def vector(a):
        sb = nl.ndarray((32, 33), a.dtype, buffer=nl.sbuf)
        nisa.nc_transpose(sb, load(a), engine=nisa.vector_engine)

    with pytest.raises(MatmulShapeError, match="32x32"):
        nki.simulate(vector)(randn((33, 32)))

    def flattened(a):
        ps = nl.ndarray((96, 64), a.dtype, buffer=nl.psum)
        nisa.nc_transpose(ps, load(a))
        return store(ps)

    a = randn((64, 8, 12))
    np.testing.assert_array_equal(nki.simulate(flattened)(a), a.reshape(64, 96).T)


# ------------------------------------------------------------------ dma_copy
def test_dma_paths_are_bit_exact_and_reshape_in_c_order() -> None:
    def kernel(a):
        t1 = load(a)                                           # HBM -> SBUF
        t2 = nl.ndarray((128, 7, 11), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t2, t1)                                  # SBUF -> SBUF, new shape
        direct = nl.ndarray((77, 128), a.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(direct, a)                               # HBM -> HBM, new shape
        return store(t2), direct

    a = _random_bits((128, 77), np.float32)
    via_sbuf, direct = nki.simulate(kernel)(a)
    np.testing.assert_array_equal(via_sbuf.view(np.uint32), a.view(np.uint32).reshape(128, 7, 11))
    np.testing.assert_array_equal(direct.view(np.uint32), a.view(np.uint32).reshape(77, 128))

    def bad(a):
        sb = nl.ndarray((3, 4), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(sb, a[:3, :5])

    with pytest.raises(ShapeMismatchError, match="15"):
        nki.simulate(bad)(a)


@pytest.mark.parametrize("target", [nl.bfloat16, nl.float16, nl.float8_e5m2, nl.int32])
def test_dma_casts_like_the_dtype_rules(target: dt.DType) -> None:
    def kernel(a):
        sb = nl.ndarray(a.shape, target, buffer=nl.sbuf)
        nisa.dma_copy(sb, a)
        out = nl.ndarray(a.shape, target, buffer=nl.shared_hbm)
        nisa.dma_copy(out, sb)
        return out

    a = randn((16, 64), scale=100.0)
    out = nki.simulate(kernel)(a)
    assert out.dtype == target.storage
    np.testing.assert_array_equal(out, dt.cast(a, target))


def test_dma_integer_to_integer_is_exact_and_saturates() -> None:
    def kernel(a):
        wide = nl.ndarray(a.shape, nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(wide, a)
        narrow = nl.ndarray(a.shape, nl.int16, buffer=nl.sbuf)
        nisa.dma_copy(narrow, a)
        return store(wide), store(narrow)

    a = np.array([[2 ** 24 + 1, -7, 40000, 2 ** 31 - 1]], dtype=np.int32)
    wide, narrow = nki.simulate(kernel)(a)
    assert wide.tolist() == [[2 ** 24 + 1, 0, 40000, 2 ** 31 - 1]]  # no float32 detour
    assert narrow.tolist() == [[32767, -7, 32767, 32767]]


def test_dma_strided_and_negative_stride_views() -> None:
    def kernel(a):
        sb = nl.ndarray((50, 20), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(sb, a[::-2, 39::-2])
        out = nl.ndarray((100, 40), a.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, a)
        nisa.dma_copy(out[1::2, ::2], sb[::-1, :])
        return out

    a = randn((100, 40))
    expected = a.copy()
    expected[1::2, ::2] = a[::-2, 39::-2][::-1, :]
    np.testing.assert_array_equal(nki.simulate(kernel)(a), expected)


# ------------------------------------------------------------------ tensor_tensor
ARITH = [nl.add, nl.subtract, nl.multiply, nl.maximum, nl.minimum, nl.divide]
COMPARE = [nl.equal, nl.not_equal, nl.less, nl.less_equal, nl.greater, nl.greater_equal]
LOGICAL = [nl.logical_and, nl.logical_or, nl.logical_xor]


def tt_kernel(x_h, y_h, op, out_dtype, engine=None):
    x, y = load(x_h), load(y_h)
    out = nl.ndarray(x.shape, out_dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(out, x, y, op=op, engine=engine)
    return store(out)


@pytest.mark.parametrize("op", ARITH + COMPARE + LOGICAL, ids=lambda o: o.__name__)
@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16, nl.int32], ids=lambda d: d.name)
def test_tensor_tensor_families(op: object, dtype: dt.DType) -> None:
    shape = (64, 40)
    if dtype is nl.int32:
        x = RNG.integers(-50, 50, shape).astype(np.int32)
        y = RNG.integers(1, 50, shape).astype(np.int32) * RNG.choice([-1, 1], shape)
        y = y.astype(np.int32)
        y[0, :5] = x[0, :5]  # some equal pairs for the comparisons
    else:
        x = randn(shape, dtype.storage)
        y = randn(shape, dtype.storage)
        y[0, :5] = x[0, :5]
        x[1, :5] = 0
    out = nki.simulate(tt_kernel)(x, y, op, dtype)
    expected = dt.cast(to_op(op).apply(x.astype(np.float32), y.astype(np.float32)), dtype)
    assert out.dtype == dtype.storage
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("op", [nl.bitwise_and, nl.bitwise_or, nl.bitwise_xor, nl.left_shift,
                                nl.right_shift], ids=lambda o: o.__name__)
@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.uint32, np.int16])
def test_tensor_tensor_bitvec_ops_on_integers(op: object, dtype: object) -> None:
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, (32, 16), endpoint=True).astype(dtype)
    if op in (nl.left_shift, nl.right_shift):
        y = RNG.integers(0, info.bits, (32, 16)).astype(dtype)
    else:
        y = RNG.integers(info.min, info.max, (32, 16), endpoint=True).astype(dtype)
    out = nki.simulate(tt_kernel)(x, y, op, dt.to_dtype(dtype))
    ufunc = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
             "bitwise_xor": np.bitwise_xor, "left_shift": np.left_shift,
             "right_shift": np.right_shift}[op.__name__]
    if op is nl.right_shift:
        # NKI's right_shift is a logical shift: it acts on the raw (unsigned) bits
        unsigned = np.dtype(f"u{np.dtype(dtype).itemsize}")
        expected = (x.view(unsigned) >> y.view(unsigned)).view(dtype)
    else:
        expected = ufunc(x, y)  # numpy wraps to the dtype's width
    np.testing.assert_array_equal(out, expected)


def test_tensor_tensor_on_gpsimd() -> None:
    x, y = randn((16, 8)), randn((16, 8))
    pool = nki.simulate(tt_kernel)(x, y, nl.multiply, nl.float32, nisa.gpsimd_engine)
    np.testing.assert_array_equal(pool, x * y)


def test_tensor_tensor_psum_inputs() -> None:
    def kernel(x_h, y_h, both):
        x, y = load(x_h), load(y_h)
        ps = nl.ndarray(x.shape, nl.float32, buffer=nl.psum)
        nisa.tensor_copy(ps, x)
        out = nl.ndarray(x.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(out, ps, ps if both else y, op=nl.subtract)
        return store(out)

    x, y = randn((128, 30)), randn((128, 30))
    np.testing.assert_array_equal(nki.simulate(kernel)(x, y, False), x - y)
    with pytest.raises(EngineAccessError, match="at most one input"):
        nki.simulate(kernel)(x, y, True)


# ------------------------------------------------------------------ tensor_copy and memset
def test_tensor_copy_psum_to_sbuf_casts() -> None:
    def kernel(x_h):
        ps = nl.ndarray(x_h.shape, nl.float32, buffer=nl.psum)
        nisa.tensor_copy(ps, load(x_h))
        sb = nl.ndarray(x_h.shape, nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_copy(sb, ps)
        return store(sb)

    x = randn((128, 64))
    out = nki.simulate(kernel)(x)
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out, x.astype(ml_dtypes.bfloat16))


def test_scalar_engine_tensor_copy_only_from_nc_v3() -> None:
    def kernel(x_h):
        sb = nl.ndarray(x_h.shape, x_h.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(sb, load(x_h), engine=nisa.scalar_engine)
        return store(sb)

    x = randn((8, 8))
    with pytest.raises(EngineAccessError, match="NeuronCore-v2"):
        nki.simulate(kernel, chip="trn1")(x)
    np.testing.assert_array_equal(nki.simulate(kernel, chip="trn2")(x), x)


@pytest.mark.parametrize(("dtype", "value", "expected"), [
    (nl.float32, 1.5, 1.5), (nl.bfloat16, 1 + 2 ** -8, 1.0), (nl.int32, 7, 7),
    (nl.int32, 2.5, 2), (nl.uint8, 300, 255), (nl.float8_e4m3, 1e6, 240.0),
    (nl.float32, -np.inf, -np.inf), (nl.bool_, True, 1), (nl.int8, np.float32(-3.5), -4),
])
def test_memset_casts_the_value(dtype: dt.DType, value: float, expected: float) -> None:
    def kernel(a):
        sb = nl.ndarray((128, 12), dtype, buffer=nl.sbuf)
        nisa.memset(sb[:, 2:10], value)
        return store(sb)

    out = nki.simulate(kernel)(randn((1, 1)))
    np.testing.assert_array_equal(out[:, 2:10].astype(np.float64), np.full((128, 8), expected))
    if dtype.is_float:
        assert np.all(np.isnan(out[:, :2].astype(np.float32)))  # untouched columns


def test_argument_errors() -> None:
    def memset_text(a):
        nisa.memset(nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf), "zero")

    with pytest.raises(nki.KernelUsageError, match="number"):
        nki.simulate(memset_text)(randn((1, 1)))
    with pytest.raises(nki.NkiError, match="not a binary"):
        nki.simulate(tt_kernel)(randn((8, 8)), randn((8, 8)), nl.exp, nl.float32)
    with pytest.raises(nki.DTypeError, match="cannot be mixed"):
        nki.simulate(matmul_kernel)(randn((8, 8)), randn((8, 8), ml_dtypes.bfloat16))
