"""The Beta-1 front end's core: affine indexing, masks, tiles as values, block dimensions
and SPMD grids, checked against numpy (references written from the Beta-1 pages)."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.sim as sim
from tessera.nki.beta1 import top as nki
from tessera.nki.beta1.kernel import Grid, make_grid
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.launch import TensorSpec, simulate, trace
from tessera.nki.stream import Opcode

nl = nki.language
nisa = nki.isa
RNG = np.random.default_rng(19)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ arange / masks
@nki.jit
def ragged_add(a, b):
    c = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(a.shape[1])[None, :]
    for t in nl.affine_range((a.shape[0] + 127) // 128):
        rows = t * 128 + i_p
        x = nl.load(a[rows, i_f], mask=(rows < a.shape[0]))
        y = nl.load(b[rows, i_f], mask=(rows < a.shape[0]))
        nl.store(c[rows, i_f], value=x + y, mask=(rows < a.shape[0]))
    return c


def test_a_mask_on_the_ragged_last_tile_cuts_every_instruction_to_the_rows_that_exist():
    a, b = _rand(200, 64), _rand(200, 64)
    np.testing.assert_array_equal(nki.simulate_kernel(ragged_add, a, b), a + b)
    stream = trace(ragged_add, symbolic=True)(a, b).instructions
    # per tile: two loads, one add, one store; the second tile moves only rows 128..199
    assert [i.opcode for i in stream].count(Opcode.DMA_COPY) == 6 and len(stream) == 8
    assert [i.partitions for i in stream[4:]] == [72, 72, 128, 72]


@nki.jit
def lower_triangle(a):
    out = nl.zeros(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    grid = nl.mgrid[0:a.shape[0], 0:a.shape[1]]
    tile = nl.load(a[grid.p, grid.x])
    nl.store(out[grid.p, grid.x], value=tile, mask=(grid.p >= grid.x))
    return out


def test_a_mask_that_is_not_a_box_leaves_the_excluded_elements_untouched():
    a = _rand(32, 32)
    np.testing.assert_array_equal(nki.simulate_kernel(lower_triangle, a), np.tril(a))


@nki.jit
def strided_pick(a):
    out = nl.ndarray((a.shape[1], 16), dtype=a.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(a.shape[1])[:, None]
    i_f = nl.arange(16)[None, :]
    # row b=1 of a 3-D tensor, every other column from column 1
    tile = nl.load(a[1, i_p, 2 * i_f + 1])
    nl.store(out[i_p, i_f], value=tile)
    return out


def test_affine_expressions_index_like_numpy():
    a = _rand(3, 8, 40)
    np.testing.assert_array_equal(nki.simulate_kernel(strided_pick, a), a[1, :, 1:33:2])


def test_a_non_affine_index_and_an_unmasked_overrun_fail_at_the_kernel_line():
    @nki.jit
    def halves(a):
        i_p = nl.arange(8)[:, None]
        return nl.load(a[i_p // 2, nl.arange(4)[None, :]])

    @nki.jit
    def overrun(a):
        i_p = nl.arange(128)[:, None]
        nl.load(a[64 + i_p, nl.arange(4)[None, :]])

    with pytest.raises(KernelUsageError, match="not affine") as err:
        nki.simulate_kernel(halves, _rand(8, 4))
    assert "test_beta1_core.py" in str(err.value)
    with pytest.raises(OutOfBoundsError, match="test_beta1_core.py"):
        nki.simulate_kernel(overrun, _rand(128, 4))


# ------------------------------------------------------------------ tiles as values
@nki.jit
def exp_into(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    x = nl.load(a)
    t = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.sbuf)
    t[...] = nl.exp(x)          # becomes the activation's destination: no copy
    t[...] = t * 2.0 + 1.0      # operators on tiles
    u = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.sbuf)
    u[...] = x                  # a value computed earlier: one copy
    u += t                      # in place
    nl.store(out, value=u)
    return out


def test_assignment_targets_the_instruction_and_operators_compute_like_numpy():
    a = _rand(16, 32)
    np.testing.assert_allclose(nki.simulate_kernel(exp_into, a), a + np.exp(a) * 2 + 1,
                               rtol=1e-5)
    ops = [i.opcode for i in trace(exp_into, symbolic=True)(a).instructions]
    assert ops.count(Opcode.ACTIVATION) == 1 and ops.count(Opcode.TENSOR_COPY) == 1
    assert len(ops) == 7  # load, exp, *2, +1, copy, +=, store


def test_tile_syntax_in_a_beta2_kernel_names_the_beta1_syntax():
    from tessera.nki import language as b2nl

    def beta2(a):
        t = b2nl.ndarray(a.shape, dtype=a.dtype, buffer=b2nl.sbuf)
        t[...] = 0.0
        return a

    with pytest.raises(KernelUsageError, match="Beta-1 syntax"):
        simulate(beta2)(_rand(4, 4))


# ------------------------------------------------------------------ block dimensions
@nki.jit
def block_sum(a):
    out = nl.ndarray((128, a.shape[2]), dtype=a.dtype, buffer=nl.shared_hbm)
    tiles = nl.ndarray((a.shape[0], nl.par_dim(128), a.shape[2]), dtype=a.dtype,
                       buffer=nl.sbuf)
    for b in nl.affine_range(a.shape[0]):
        tiles[b] = nl.load(a[b])
    acc = nl.zeros((128, a.shape[2]), dtype=nl.float32, buffer=nl.sbuf)
    for b in nl.sequential_range(a.shape[0]):
        acc[...] = acc + tiles[b, :, :]
    nl.store(out, value=acc)
    return out


def test_par_dim_after_the_first_dimension_makes_a_list_of_tiles():
    a = _rand(3, 128, 16)
    np.testing.assert_allclose(nki.simulate_kernel(block_sum, a), a.sum(axis=0), rtol=1e-5)
    result = trace(block_sum, symbolic=True)(a)
    shapes = sorted(t.shape for t in result.tensors if t.buffer.value == "sbuf")
    # three block tiles, each its own [128, 16] allocation, plus the accumulator
    assert shapes.count((128, 16)) >= 4


def test_blocks_larger_than_a_partition_row_are_allocated_tile_by_tile():
    @nki.jit
    def big(a):
        out = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.shared_hbm)
        # 4 x 64 KiB per partition: more than SBUF holds, never a capacity error
        tiles = nl.ndarray((4, nl.par_dim(128), 16384), dtype=nl.float32, buffer=nl.sbuf)
        for b in nl.affine_range(4):
            tiles[b, :, 0:8] = nl.load(a)
        nl.store(out, value=tiles[3, :, 0:8])
        return out

    a = _rand(128, 8)
    result = trace(big, chip="trn1")(a)
    assert [t.shape for t in result.tensors if t.buffer.value == "sbuf"].count((128, 16384)) == 4
    np.testing.assert_array_equal(result.outputs, a)
    assert sim.schedule(result).total_s > 0


def test_a_block_index_out_of_range_is_reported():
    @nki.jit
    def bad(a):
        tiles = nl.ndarray((2, nl.par_dim(128), 4), dtype=a.dtype, buffer=nl.sbuf)
        return tiles[2]

    with pytest.raises(OutOfBoundsError, match="block index 2"):
        nki.simulate_kernel(bad, _rand(4, 4))


# ------------------------------------------------------------------ SPMD grids
@nki.jit
def copy_blocks(a):
    b = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i, j = nl.program_id(0), nl.program_id(1)
    tile = nl.load(a[i, j])
    nl.store(b[i, j], value=tile * float(nl.num_programs()) + float(nl.program_ndim()))
    return b


def test_an_nd_grid_runs_every_instance_into_one_shared_output():
    a = _rand(3, 2, 8, 4)
    np.testing.assert_allclose(nki.simulate_kernel(copy_blocks[3, 2], a), a * 6 + 2,
                               rtol=1e-6)


def test_instances_on_one_core_run_one_after_another():
    spec = TensorSpec((4, 1, 128, 512))
    one = sim.schedule(trace(copy_blocks[1, 1], symbolic=True)(spec)).total_s
    four = sim.schedule(trace(copy_blocks[4, 1], symbolic=True)(spec)).total_s
    assert four == pytest.approx(4 * one, rel=0.1)


def test_nc_and_spmd_dim_place_instances_on_cores_as_the_pages_show():
    blocked = make_grid((nl.spmd_dim(nl.nc(2), 2), 2))
    interleaved = make_grid((nl.spmd_dim(2, nl.nc(2)), 2))
    assert blocked.shape == (4, 2) and blocked.cores == 2
    assert [blocked.core_of((i, 0)) for i in range(4)] == [0, 0, 1, 1]
    assert [interleaved.core_of((i, 0)) for i in range(4)] == [0, 1, 0, 1]
    assert Grid((nl.nc(2), 3)).core_of((1, 2)) == 1
    a = _rand(2, 3, 8, 4)
    out = simulate(copy_blocks[nl.nc(2), 3], chip="trn2")(a)
    np.testing.assert_allclose(out, a * 6 + 2, rtol=1e-6)
    with pytest.raises(KernelUsageError, match="logical cores"):
        simulate(copy_blocks[nl.nc(2), 3], chip="trn1")(a)


@nki.trace
def double_into(a_tensor, out_tensor):
    nl.store(out_tensor, value=nl.load(a_tensor) * 2.0)


def test_output_arrays_passed_as_arguments_receive_the_kernels_writes():
    a, out = _rand(8, 16), np.zeros((8, 16), np.float32)
    assert nki.simulate_kernel(double_into, a, out) is None
    np.testing.assert_array_equal(out, a * 2)
    np.testing.assert_array_equal(a, a.copy())  # inputs the kernel only read stay as they were


def test_the_beta1_tile_methods():
    @nki.jit
    def methods(a):
        out = nl.ndarray(a.shape, dtype=nl.bfloat16, buffer=nl.shared_hbm)
        t = nl.load(a).assert_shape(a.shape)
        nl.store(out, value=t.astype(nl.bfloat16))
        assert t.expand_dims(2).shape == (*a.shape, 1)
        return out

    a = _rand(8, 16)
    np.testing.assert_array_equal(nki.simulate_kernel(methods, a),
                                  a.astype(nl.bfloat16.storage))

    @nki.jit
    def wrong(a):
        nl.load(a).assert_shape((4, 4))

    with pytest.raises(KernelUsageError, match="asserted"):
        nki.simulate_kernel(wrong, a)


# ------------------------------------------------------------------ iterator rules
def test_tile_axes_follow_the_iterators_a_subscript_uses():
    @nki.jit
    def shapes(a, v):
        out = nl.ndarray((64, 128), dtype=a.dtype, buffer=nl.shared_hbm)
        ix, iw, iy = nl.mgrid[0:128, 0:1, 0:64]
        assert a[ix, iy].shape == (128, 64)  # the size-1 mgrid axis is no tile axis
        i_p, i_f, i_one = nl.mgrid[0:128, 0:64, 0:1]
        assert v.reshape((1, 64))[i_one, i_f].shape == (1, 64)  # a [1, F] row
        j_f, _ = nl.mgrid[0:32, 0:6]
        assert a[i_p, 32 + j_f].shape == (128, 32)  # two mgrids: independent axes
        t = nl.load(a[ix, iy])
        nl.store(out[iy, ix], value=t)  # placed axes, not subscript order: transposed
        assert nl.load(a[0, nl.arange(64)[None, :]]).shape == (1, 64)
        return out

    a, v = _rand(128, 64), _rand(64)
    np.testing.assert_array_equal(nki.simulate_kernel(shapes, a, v), a.T)


@nki.jit
def psum_groups(x_t, w):
    out = nl.ndarray((2, 128, 128), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.ndarray((128, 128), dtype=nl.float32, buffer=nl.psum)  # never zeroed
    zeroed = nl.zeros((128, 128), dtype=nl.float32, buffer=nl.psum)
    for k in nl.affine_range(2):
        rows = nl.ds(k * 128, 128)
        acc += nisa.nc_matmul(nl.load(x_t[rows, :]), nl.load(w[rows, :]))
        zeroed += nisa.nc_matmul(nl.load(x_t[rows, :]), nl.load(w[rows, :]))
    nl.store(out[0], value=nl.copy(acc))
    nl.store(out[1], value=nl.copy(zeroed))
    return out


def test_plus_equals_into_psum_starts_an_accumulation_group_without_a_memset():
    x_t, w = _rand(256, 128), _rand(256, 128)
    out = nki.simulate_kernel(psum_groups, x_t, w)
    np.testing.assert_allclose(out[0], x_t.T @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1], x_t.T @ w, rtol=1e-4, atol=1e-4)
    ops = [i.opcode for i in trace(psum_groups, symbolic=True)(x_t, w).instructions]
    assert Opcode.MEMSET not in ops  # the PSUM zero-fill is the group's start


def test_a_free_axis_may_start_at_a_value_read_at_run_time():
    @nki.jit
    def gather_cols(a, idx):
        out = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.shared_hbm)
        src = nl.load(a)
        ids = nl.load(idx)
        dst = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.sbuf)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(4)[None, :]
        for j in nl.affine_range(2):
            dst[i_p, j * 4 + i_f] = nisa.tensor_copy_dynamic_src(src[i_p, ids[0, j] + i_f])
        nl.store(out, value=dst)
        return out

    a = _rand(128, 64)
    idx = np.array([[10, 40]], np.int32)
    want = np.concatenate([a[:, 10:14], a[:, 40:44]], axis=1)
    np.testing.assert_array_equal(nki.simulate_kernel(gather_cols, a, idx), want)


def test_vendor_kernel_forms_found_by_running_public_beta1_kernels():
    @nki.jit
    def forms(a):
        out = nl.ndarray((128, 16), dtype=a.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.arange(128)[:, None], nl.arange(16)[None, :]
        x = nl.load(a[i_p, i_f])
        res = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        # reduce_op may name the nl reduction ("nl.add, ..., nl.max or nl.min")
        y = nisa.tensor_scalar_reduce(data=x, op0=np.multiply, operand0=1.0,
                                      reduce_op=nl.max, reduce_res=res)
        # nl.ds running past the end of the tensor under a mask (the ragged last tile)
        rows = nl.load(a[nl.ds(64, 128), i_f], mask=(64 + i_p < a.shape[0]))
        eye = nl.load(nl.shared_identity_matrix(16, dtype=nl.float32))  # an HBM constant
        both = nl.ndarray((128, 16), dtype=nl.float32, buffer=nl.sbuf)
        both[0:64, :] = rows[0:64, :]
        both[64:128, :] = y[64:128, :]
        nl.store(out, value=both + res * 0.0 + 0.0 * eye[0:1, :].broadcast_to((128, 16)))
        return out

    a = _rand(128, 16)
    want = np.concatenate([a[64:128], a[64:128]])
    np.testing.assert_allclose(nki.simulate_kernel(forms, a), want, rtol=1e-6)
