"""Issue 18, section 3: indirect access patterns, dtype names and identity, constants.

Expected values come from the documented semantics, computed with numpy:
- `ap(pattern, offset, scalar_offset=s, indirect_dim=d)`: element (i0, i1, ...) of the view
  is flat element `offset + s * stride(d) + sum(i_k * stride_k)` of the tensor `ap` is called
  on; with `vector_offset=ids` row i0 starts at `offset + ids[i0] * stride(d)`.
- `nl.shared_identity_matrix` lives in SBUF; `nl.shared_constant` takes a numpy array (or
  array-like) or a path to a `.npy` file.
"""

from __future__ import annotations

import dataclasses
import pickle

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import dtypes as dt

RNG = np.random.default_rng(18)


def ap_reference(flat: np.ndarray, pattern: list[list[int]], offset: int) -> np.ndarray:
    """The documented AP loop nest: out[i0, i1, ...] = flat[offset + sum(i_k * step_k)]."""
    index = np.full([n for _, n in pattern], offset, dtype=np.int64)
    for axis, (step, num) in enumerate(pattern):
        shape = [1] * len(pattern)
        shape[axis] = num
        index = index + (np.arange(num) * step).reshape(shape)
    return flat[index]


# ------------------------------------------------------------------ indirect: scalar_offset
def scalar_gather(pattern, scalar, indirect_dim=0, offset=0, oob=nisa.oob_mode.error):
    """A kernel gathering table.ap(pattern, offset, scalar_offset=scalar, indirect_dim)."""
    shape = tuple(n for _, n in pattern)

    def kernel(table):
        out = nl.ndarray(shape, table.dtype, buffer=nl.shared_hbm)
        tile = nl.ndarray(shape, table.dtype, buffer=nl.sbuf)
        nisa.memset(tile, 0)
        nisa.dma_copy(tile, table.ap(pattern, offset, scalar_offset=scalar,
                                     indirect_dim=indirect_dim), oob_mode=oob)
        nisa.dma_copy(out, tile)
        return out

    return kernel


@pytest.mark.parametrize("scalar", [0, 3, 6])
def test_scalar_offset_keeps_the_first_dimension_stride(scalar: int) -> None:
    table = RNG.standard_normal((10, 5)).astype(np.float32)
    pattern = [[5, 4], [1, 5]]  # four consecutive rows
    out = nki.simulate(scalar_gather(pattern, scalar))(table)
    # offset + scalar * stride(dim 0) + i * 5 + j: rows scalar..scalar+3
    expected = ap_reference(table.reshape(-1), pattern, scalar * 5)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, table[scalar:scalar + 4])


def test_scalar_offset_on_a_free_dimension_moves_by_its_stride() -> None:
    table = RNG.standard_normal((4, 12)).astype(np.float32)
    pattern = [[12, 4], [1, 3]]
    out = nki.simulate(scalar_gather(pattern, np.int32(5), indirect_dim=1, offset=1))(table)
    # stride of dim 1 is 1: offset 1 + 5 columns
    np.testing.assert_array_equal(out, ap_reference(table.reshape(-1), pattern, 1 + 5))
    np.testing.assert_array_equal(out, table[:, 6:9])


def test_scalar_offset_out_of_bounds_errors_or_skips_rows() -> None:
    table = RNG.standard_normal((10, 5)).astype(np.float32)
    pattern = [[5, 3], [1, 5]]  # from row 8: rows 8, 9 and 10, which leaves the tensor
    with pytest.raises(nki.OutOfBoundsError):
        nki.simulate(scalar_gather(pattern, 8))(table)
    out = nki.simulate(scalar_gather(pattern, 8, oob=nisa.oob_mode.skip))(table)
    np.testing.assert_array_equal(out, np.concatenate([table[8:10], np.zeros((1, 5))]))


def test_scalar_offset_must_be_an_integer() -> None:
    table = RNG.standard_normal((10, 5)).astype(np.float32)
    with pytest.raises(nki.KernelUsageError, match="scalar_offset"):
        nki.simulate(scalar_gather([[5, 2], [1, 5]], 2.5))(table)


def test_scalar_offset_from_a_runtime_tile() -> None:
    def kernel(table, where):
        p, d = 3, table.shape[1]
        s = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(s, where)
        tile = nl.ndarray((p, d), table.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, table.ap([[d, p], [1, d]], 0, scalar_offset=s, indirect_dim=0))
        out = nl.ndarray((p, d), table.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, tile)
        return out

    table = RNG.standard_normal((9, 6)).astype(np.float32)
    out = nki.simulate(kernel)(table, np.array([[5]], np.int32))
    np.testing.assert_array_equal(out, table[5:8])


def test_scalar_offset_scatter_writes_consecutive_rows() -> None:
    def kernel(src):
        n, d = src.shape
        out = nl.ndarray((8, d), src.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, nl.zeros((8, d), src.dtype))
        tile = nl.ndarray((n, d), src.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, src)
        nisa.dma_copy(out.ap([[d, n], [1, d]], 0, scalar_offset=4, indirect_dim=0), tile)
        return out

    src = RNG.standard_normal((3, 4)).astype(np.float32)
    expected = np.zeros((8, 4), np.float32)
    expected[4:7] = src
    np.testing.assert_array_equal(nki.simulate(kernel)(src), expected)


# ------------------------------------------------------------------ indirect: the view's dims
def test_indirect_dim_counts_the_views_dimensions() -> None:
    def kernel(vec, ids):
        n = ids.shape[0]
        idx = nl.ndarray((n, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids)
        tile = nl.ndarray((n, 1), vec.dtype, buffer=nl.sbuf)
        row = vec.reshape((1, vec.shape[0]))  # a 2-D view of 1-D storage
        nisa.dma_copy(tile, row.ap([[1, n], [1, 1]], 0, vector_offset=idx, indirect_dim=1))
        out = nl.ndarray((n, 1), vec.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, tile)
        return out

    vec = RNG.standard_normal(40).astype(np.float32)
    ids = RNG.integers(0, 40, (12, 1)).astype(np.int32)
    np.testing.assert_array_equal(nki.simulate(kernel)(vec, ids), vec[ids])


def test_indirect_dim_stride_comes_from_the_view() -> None:
    def kernel(table, ids):
        n = ids.shape[0]
        idx = nl.ndarray((n, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids)
        rows = table.reshape((8, 3))  # storage (4, 6): a row of the view is 3 elements
        tile = nl.ndarray((n, 3), table.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, rows.ap([[3, n], [1, 3]], 0, vector_offset=idx, indirect_dim=0))
        out = nl.ndarray((n, 3), table.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, tile)
        return out

    table = RNG.standard_normal((4, 6)).astype(np.float32)
    ids = np.array([[7], [0], [3], [3]], np.int32)
    np.testing.assert_array_equal(nki.simulate(kernel)(table, ids),
                                  table.reshape(8, 3)[ids[:, 0]])


def test_indirect_dim_beyond_the_view_is_refused() -> None:
    def kernel(vec):
        vec.reshape((1, vec.shape[0])).ap([[1, 2], [1, 1]], 0, scalar_offset=0,
                                          indirect_dim=2)

    with pytest.raises(nki.KernelUsageError, match="indirect_dim 2"):
        nki.simulate(kernel)(np.zeros(8, np.float32))


# ------------------------------------------------------------------ dtypes
def test_dtype_str_is_the_nki_name() -> None:
    assert str(nl.bfloat16) == "bfloat16"
    assert f"{nl.float8_e4m3fn}" == "float8_e4m3fn"
    assert str(nl.bool_) == "bool"  # NKI: nl.bool_ = 'bool'
    for d in dt.ALL_DTYPES + dt.MX_DTYPES:
        assert str(d) == d.nki_name
        assert dt.to_dtype(str(d)) is d
    # NKI's dtypes are these strings, so kernels compare them with ==
    assert nl.bfloat16 == "bfloat16" and "float32" == nl.float32
    assert nl.bfloat16 != "float16" and nl.tfloat32 != nl.float32
    assert {nl.bfloat16: 1}["bfloat16"] == 1
    assert repr(nl.bfloat16) == "nl.bfloat16"


def test_dtype_in_a_config_dataclass_survives_asdict() -> None:
    @dataclasses.dataclass(frozen=True)
    class Config:
        dtype: dt.DType = nl.bfloat16
        tile: int = 128

    as_dict = dataclasses.asdict(Config())
    assert as_dict == {"dtype": nl.bfloat16, "tile": 128}
    assert as_dict["dtype"] is nl.bfloat16
    assert dataclasses.replace(Config(), dtype=nl.float16).dtype is nl.float16
    assert pickle.loads(pickle.dumps(nl.int8)) is nl.int8
    assert not dataclasses.is_dataclass(nl.float32)


def test_dtype_still_works_as_a_numpy_dtype() -> None:
    assert np.issubdtype(nl.float32, np.floating)
    assert np.issubdtype(nl.int16, np.signedinteger)
    assert np.issubdtype(nl.uint8, np.unsignedinteger)
    assert np.dtype(nl.bfloat16) == ml_dtypes.bfloat16
    assert np.dtype(nl.float8_e8m0fnu) == ml_dtypes.float8_e8m0fnu
    assert np.zeros(2, dtype=nl.float16).dtype == np.float16
    assert np.dtype(np.float32) == nl.float32
    with pytest.raises(AttributeError):
        nl.float32.name = "float64"  # type: ignore[misc]


# ------------------------------------------------------------------ constants
@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16])
def test_identity_matrix_is_in_sbuf_and_feeds_nc_matmul(dtype) -> None:
    def kernel(a):
        n = a.shape[0]
        eye = nl.shared_identity_matrix(n, dtype=dtype)
        assert eye.buffer is nl.sbuf and eye.shape == (n, n) and eye.dtype == dtype
        x = nl.ndarray(a.shape, dtype, buffer=nl.sbuf)
        nisa.dma_copy(x, a)
        same = nl.ndarray((n, n), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(same, eye, x)  # eye^T @ x = x
        flipped = nl.ndarray((n, n), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(flipped, x, eye)  # x^T @ eye = x^T
        out = nl.ndarray((2, n, n), nl.float32, buffer=nl.shared_hbm)
        for k, ps in enumerate((same, flipped)):
            sb = nl.ndarray((n, n), nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(sb, ps)
            nisa.dma_copy(out[k], sb)
        return out

    a = RNG.standard_normal((32, 32)).astype(np.float32).astype(np.dtype(dtype))
    out = nki.simulate(kernel)(a)
    ref = a.astype(np.float32)
    np.testing.assert_array_equal(out[0], ref)
    np.testing.assert_array_equal(out[1], ref.T)


def test_identity_matrix_default_dtype_and_dst() -> None:
    def kernel(a):
        eye = nl.shared_identity_matrix(16)
        assert eye.dtype is nl.uint8 and eye.buffer is nl.sbuf
        mine = nl.ndarray((16, 16), nl.float32, buffer=nl.sbuf)
        assert nl.shared_identity_matrix(16, dst=mine) is mine
        out = nl.ndarray((2, 16, 16), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out[0], eye)
        nisa.dma_copy(out[1], mine)
        return out

    out = nki.simulate(kernel)(np.zeros((1, 1), np.float32))
    np.testing.assert_array_equal(out, np.stack([np.eye(16), np.eye(16)]))


def constant_kernel(source, dtype=None):
    """Copies nl.shared_constant(source, dtype) to the output."""
    c = nl.shared_constant(source, dtype=dtype)
    assert c.buffer is nl.shared_hbm
    out = nl.ndarray(c.shape, c.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(out, c)
    return out


def run_constant(source, dtype=None) -> np.ndarray:
    return nki.simulate(lambda a: constant_kernel(source, dtype))(np.zeros((1, 1), np.float32))


def test_shared_constant_from_a_npy_path(tmp_path) -> None:
    values = RNG.standard_normal((4, 6)).astype(np.float32)
    path = tmp_path / "table.npy"
    np.save(path, values)
    np.testing.assert_array_equal(run_constant(str(path)), values)
    np.testing.assert_array_equal(run_constant(path), values)  # a pathlib.Path too
    ints = tmp_path / "ids.npy"
    np.save(ints, np.arange(12, dtype=np.int16).reshape(3, 4))
    out = run_constant(ints)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, np.arange(12).reshape(3, 4))


def test_shared_constant_npy_of_an_ml_dtypes_array_needs_its_dtype(tmp_path) -> None:
    values = RNG.standard_normal((2, 8)).astype(ml_dtypes.bfloat16)
    path = tmp_path / "bf16.npy"
    np.save(path, values)  # numpy stores ml_dtypes arrays as raw void data
    out = run_constant(path, nl.bfloat16)
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out.view(np.uint16), values.view(np.uint16))
    with pytest.raises(nki.KernelUsageError, match="dtype="):
        run_constant(path)


def test_shared_constant_from_arrays_and_array_likes() -> None:
    values = RNG.standard_normal((3, 5))
    out = run_constant(values)  # float64 host data becomes float32
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, values.astype(np.float32))
    out = run_constant([[1, 2], [3, 4]])  # int64 host data becomes int32
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[1, 2], [3, 4]])
    out = run_constant(values, nl.bfloat16)
    np.testing.assert_array_equal(out, values.astype(np.float32).astype(ml_dtypes.bfloat16))

    class TraceTimeLike:
        def __array__(self, dtype=None, copy=None):
            return np.eye(3, dtype=np.int8)

    np.testing.assert_array_equal(run_constant(TraceTimeLike(), nl.float16), np.eye(3))
    with pytest.raises(nki.KernelUsageError, match="cannot load"):
        run_constant("/nonexistent/constant.npy")
