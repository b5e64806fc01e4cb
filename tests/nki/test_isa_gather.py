"""nisa.nc_n_gather / local_gather (GpSimd), nc_stream_shuffle (Vector), dma_compute (DMA)
and nl.gather_flattened against numpy references written from their API reference pages,
one error test per documented constraint, and their place in the stream and timeline."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from nki_harness import call_in_kernel, trace_tiles  # noqa: E402

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.errors import (
    BufferKindError,
    DmaSourceError,
    DTypeError,
    KernelUsageError,
    OutOfBoundsError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import element_scale, engine_cycles, stream_engine
from tessera.sim.dma import dma_plan
from tessera.sim.timing_calibration import load_calibration

RNG = np.random.default_rng(29)
F32, U16, U32 = nl.float32, nl.uint16, nl.uint32
BF16 = ml_dtypes.bfloat16


# ---------------------------------------------------------------- references (from the pages)
def n_gather_ref(data: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The gather_flattened page's equivalent: take_along_axis over flattened rows."""
    rows = data.reshape(data.shape[0], -1)
    return np.take_along_axis(rows, idx.reshape(idx.shape[0], -1).astype(np.int64), axis=-1)


def local_gather_ref(src: np.ndarray, index_hw: np.ndarray, e: int, valid: int) -> np.ndarray:
    """The local_gather page's numpy semantics: per 16-partition core, indices flattened
    partition first (order='F'), first `valid` kept, e contiguous elements per index."""
    rows = src.reshape(src.shape[0], -1)
    out = np.empty((src.shape[0], valid, e), src.dtype)
    for g in range(0, src.shape[0], 16):
        ids = index_hw[g:g + 16].reshape(16, -1).flatten(order="F")[:valid].astype(np.int64)
        out[g:g + 16] = rows[g:g + 16][:, ids[:, None] + np.arange(e)]
    return out.reshape(src.shape[0], -1)


def shuffle_ref(src: np.ndarray, before: np.ndarray, mask: list[int]) -> np.ndarray:
    """dst row 32q+i <- src row 32q+mask[i]; 255 keeps the row."""
    out = before.copy()
    for d in range(before.shape[0]):
        q, i = divmod(d, 32)
        if mask[i] != 255:
            out[d] = src[32 * q + mask[i]]
    return out


# ---------------------------------------------------------------- nc_n_gather
@pytest.mark.parametrize("dtype", [np.float32, BF16, np.int32])
def test_n_gather_flattened_rows_bit_exact(dtype):
    data = (RNG.standard_normal((8, 6, 5)) * 100).astype(dtype)
    idx = RNG.integers(0, 30, (8, 3, 4)).astype(np.uint32)
    idx[0, 0, :] = [0, 29, 29, 0]  # both ends, repeated (ties gather the same element)
    res = trace_tiles(lambda o, i: nisa.nc_n_gather(o[0], i[0], i[1]), data, idx,
                      out=[((8, 3, 4), data.dtype)])
    want = n_gather_ref(data, idx).reshape(8, 3, 4)
    np.testing.assert_array_equal(res.outputs[0].view(np.uint8), want.view(np.uint8))


def test_n_gather_index_out_of_range_is_an_error():
    data = np.zeros((2, 8), np.float32)
    idx = np.array([[1, 8], [0, 0]], np.uint32)
    with pytest.raises(OutOfBoundsError, match=r"indices .*\[0, 1\] = 8 is outside \[0, 8\)"):
        trace_tiles(lambda o, i: nisa.nc_n_gather(o[0], i[0], i[1]), data, idx,
                    out=[((2, 2), F32)])


# ---------------------------------------------------------------- nl.gather_flattened
def test_gather_flattened_page_example_and_cast():
    data = np.array([[[1., 2.], [3., 4.]], [[5., 6.], [7., 8.]]], np.float32)
    idx = np.array([[[0, 1], [1, 3]], [[3, 3], [1, 0]]], np.uint32)

    @nki.jit
    def kernel(d, i):
        dt, it = nl.load(d), nl.load(i)
        out = nl.ndarray(i.shape, nl.float32, buffer=nl.shared_hbm)
        cast = nl.ndarray(i.shape, nl.int32, buffer=nl.shared_hbm)
        nl.store(out, nl.gather_flattened(dt, it))
        nl.store(cast, nl.gather_flattened(dt, it, dtype=nl.int32))
        return out, cast

    out, cast = nki.simulate(kernel)(data, idx)
    np.testing.assert_array_equal(out, [[[1, 2], [2, 4]], [[8, 8], [6, 5]]])
    np.testing.assert_array_equal(cast, out.astype(np.int32))


def test_gather_flattened_out_of_bounds_gives_garbage_not_an_error():
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    idx = np.array([[3, 4], [0, 0xFFFFFFFF]], np.uint32)

    @nki.jit
    def kernel(d, i):
        out = nl.ndarray(i.shape, nl.float32, buffer=nl.shared_hbm)
        nl.store(out, nl.gather_flattened(nl.load(d), nl.load(i)))
        return out

    out = nki.simulate(kernel)(data, idx)
    assert out[0, 0] == 3 and out[1, 0] == 4
    assert np.isnan(out[0, 1]) and np.isnan(out[1, 1])  # the unwritten (poisoned) slots


# ---------------------------------------------------------------- local_gather
def test_local_gather_vendor_example_shape():
    """The page's example scaled down: src [32, 64, 4], indices per core [16, 2] replicated
    to both cores and scaled by num_elem_per_idx, 20 valid indices."""
    src = (RNG.random((32, 64, 4)) * 100).astype(np.float32)
    per_core = RNG.integers(0, 64, (16, 2)).astype(np.uint16)
    index_hw = np.tile(per_core, (2, 1)) * 4
    res = trace_tiles(lambda o, i: nisa.local_gather(o[0], i[0], i[1], num_elem_per_idx=4,
                                                     num_valid_indices=20),
                      src, index_hw, out=[((32, 20, 4), F32)])
    want = local_gather_ref(src, index_hw, 4, 20)
    np.testing.assert_array_equal(res.outputs[0].reshape(32, -1), want)
    # the page's np.take form: element offset index*4 reads src[p, index, 0:4]
    first = per_core.flatten(order="F")[:20]
    np.testing.assert_array_equal(res.outputs[0][:16], src[:16][:, first.astype(int), :])


def test_local_gather_defaults_cores_with_own_indices_and_row_end():
    src = RNG.standard_normal((32, 10)).astype(BF16)
    index = RNG.integers(0, 10, (32, 3)).astype(np.uint16)
    index[15, 2] = 9  # last element of the row: still in bounds with e = 1
    res = trace_tiles(lambda o, i: nisa.local_gather(o[0], i[0], i[1]), src, index,
                      out=[((32, 48), nl.bfloat16)])
    want = local_gather_ref(src, index, 1, 48)
    np.testing.assert_array_equal(res.outputs[0].view(np.uint16), want.view(np.uint16))


def test_local_gather_index_past_the_row_is_an_error():
    src = np.zeros((16, 8), np.float32)
    index = np.zeros((16, 1), np.uint16)
    index[3, 0] = 6  # 6 + 4 elements > 8
    with pytest.raises(OutOfBoundsError, match="undefined"):
        trace_tiles(lambda o, i: nisa.local_gather(o[0], i[0], i[1], num_elem_per_idx=4),
                    src, index, out=[((16, 64), F32)])


# ---------------------------------------------------------------- nc_stream_shuffle
def test_shuffle_broadcasts_one_partition_per_quadrant_like_nkilib():
    row = RNG.standard_normal((1, 12)).astype(np.float32)

    def body(o, i):
        for q in range(4):  # stream_shuffle_broadcast: one call per quadrant
            nisa.nc_stream_shuffle(dst=o[0][q * 32:(q + 1) * 32, :], src=i[0][0:1, :],
                                   shuffle_mask=[0] * 32)

    res = trace_tiles(body, row, out=[((128, 12), F32)])
    np.testing.assert_array_equal(res.outputs[0], np.repeat(row, 128, axis=0))


def test_shuffle_mask_per_quadrant_with_keep_rows_in_psum():
    src = RNG.standard_normal((64, 5)).astype(np.float32)
    mask = [31 - i for i in range(32)]
    mask[3] = mask[10] = 255

    def body(o, i):
        ps = nl.ndarray((64, 5), F32, buffer=nl.psum)
        nisa.memset(ps, 7.0)
        nisa.nc_stream_shuffle(ps, i[0], mask)
        nisa.tensor_copy(o[0], ps)

    res = trace_tiles(body, src, out=[((64, 5), F32)])
    want = shuffle_ref(src, np.full((64, 5), 7.0, np.float32), mask)
    np.testing.assert_array_equal(res.outputs[0], want)
    assert res.outputs[0][3].tolist() == [7.0] * 5 and res.outputs[0][35].tolist() == [7.0] * 5


def test_shuffle_in_place_rotation():
    x = np.arange(32 * 3, dtype=np.int32).reshape(32, 3)
    mask = [(i + 1) % 32 for i in range(32)]
    res = trace_tiles(lambda o, i: (nisa.tensor_copy(o[0], i[0]),
                                    nisa.nc_stream_shuffle(o[0], o[0], mask)),
                      x, out=[((32, 3), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0], np.roll(x, -1, axis=0))


# ---------------------------------------------------------------- dma_compute
def test_dma_compute_sums_hbm_and_sbuf_sources_in_fp32():
    a = RNG.standard_normal((16, 8)).astype(np.float32)
    b = RNG.standard_normal((16, 8)).astype(BF16)
    c = RNG.standard_normal((128,)).astype(np.float32)

    @nki.jit
    def kernel(a, b, c):
        bt = nl.ndarray(b.shape, b.dtype, buffer=nl.sbuf)
        nisa.dma_copy(bt, b)
        out = nl.ndarray((16, 8), nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_compute(out, [a, bt, c.reshape((16, 8))], nl.add, scales=[1.0, 1, 1.0])
        return out

    res = nki.trace(kernel)(a, b, c)
    want = (a + b.astype(np.float32) + c.reshape(16, 8)).astype(BF16)
    np.testing.assert_array_equal(res.outputs.view(np.uint16), want.view(np.uint16))
    inst = next(i for i in res.instructions if i.opcode is Opcode.DMA_COMPUTE)
    assert inst.engine is Engine.DMA and inst.attrs.sources == 3 and inst.attrs.rmw is None


def _rmw_kernel(mode, oob):
    @nki.jit
    def kernel(table, ids, vals):
        n, d = vals.shape
        out = nl.ndarray(table.shape, table.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, table)
        idx = nl.ndarray((n, 1), nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids)
        tile = nl.ndarray((n, d), vals.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, vals)
        rows = out.ap([[d, n], [1, d]], 0, vector_offset=idx, indirect_dim=0)
        if mode == "scatter":  # out[ids] += tile
            nisa.dma_compute(rows, [rows, tile], nl.add, oob_mode=oob)
            return out
        nisa.dma_compute(tile, [rows, tile], nl.add, oob_mode=oob)  # tile += out[ids]
        res = nl.ndarray((n, d), vals.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(res, tile)
        return res

    return kernel


def test_dma_compute_scatter_and_gather_rmw():
    table = RNG.standard_normal((10, 4)).astype(np.float32)
    vals = RNG.standard_normal((3, 4)).astype(np.float32)
    ids = np.array([[7], [0], [9]], np.int32)
    out = nki.simulate(_rmw_kernel("scatter", nisa.oob_mode.error))(table, ids, vals)
    want = table.copy()
    want[ids[:, 0]] += vals
    np.testing.assert_array_equal(out, want)
    got = nki.simulate(_rmw_kernel("gather", nisa.oob_mode.error))(table, ids, vals)
    np.testing.assert_array_equal(got, vals + table[ids[:, 0]])


def test_dma_compute_out_of_bounds_rows_error_or_skip():
    table = np.ones((4, 2), np.float32)
    vals = np.full((2, 2), 5.0, np.float32)
    ids = np.array([[1], [4]], np.int32)
    with pytest.raises(OutOfBoundsError, match="offset 4"):
        nki.simulate(_rmw_kernel("gather", nisa.oob_mode.error))(table, ids, vals)
    got = nki.simulate(_rmw_kernel("gather", nisa.oob_mode.skip))(table, ids, vals)
    np.testing.assert_array_equal(got, [[6, 6], [5, 5]])  # skipped row keeps dst
    with pytest.raises(KernelUsageError, match="repeats a row"):
        nki.simulate(_rmw_kernel("scatter", nisa.oob_mode.error))(
            table, np.array([[2], [2]], np.int32), vals)


def test_dma_compute_needs_neuroncore_v3():
    with pytest.raises(KernelUsageError, match=r"dma_compute .*NeuronCore-v3.*trn1"):
        _call(lambda: nisa.dma_compute(_hbm(2, 4), [_hbm(2, 4)], nl.add), chip="trn1")


# ---------------------------------------------------------------- constraints
def _tile(*shape, dtype=F32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _hbm(*shape, dtype=F32):
    return _tile(*shape, dtype=dtype, buffer=nl.shared_hbm)


def _ps(*shape):
    return _tile(*shape, buffer=nl.psum)


_NG, _LG, _SH, _DC = nisa.nc_n_gather, nisa.local_gather, nisa.nc_stream_shuffle, \
    nisa.dma_compute
Z32 = [0] * 32
SHAPE = ShapeMismatchError
ERRORS = {  # case -> (call, error class, message)
    "ngather psum data": (lambda: _NG(_tile(4, 2), _ps(4, 8), _tile(4, 2, dtype=U32)),
                          BufferKindError, "needs it in sbuf"),
    "ngather indices dtype": (lambda: _NG(_tile(4, 2), _tile(4, 8), _tile(4, 2, dtype=U16)),
                              DTypeError, "must be uint32"),
    "ngather dst dtype": (lambda: _NG(_tile(4, 2, dtype=nl.bfloat16), _tile(4, 8),
                                      _tile(4, 2, dtype=U32)), DTypeError, "without casting"),
    "ngather partitions": (lambda: _NG(_tile(4, 2), _tile(4, 8), _tile(2, 2, dtype=U32)),
                           SHAPE, "partition counts"),
    "ngather dst size": (lambda: _NG(_tile(4, 3), _tile(4, 8), _tile(4, 2, dtype=U32)),
                         SHAPE, "one element per index"),
    "ngather pmax": (lambda: _NG(_tile(256, 2), _tile(256, 8), _tile(256, 2, dtype=U32)),
                     PartitionError, "pmax"),
    "lgather hbm src": (lambda: _LG(_tile(16, 4), _hbm(16, 8), _tile(16, 1, dtype=U16)),
                        BufferKindError, "needs it in sbuf"),
    "lgather index dtype": (lambda: _LG(_tile(16, 16), _tile(16, 8), _tile(16, 1, dtype=U32)),
                            DTypeError, "must be uint16"),
    "lgather dst dtype": (lambda: _LG(_tile(16, 16, dtype=nl.int32), _tile(16, 8),
                                      _tile(16, 1, dtype=U16)), DTypeError, "without casting"),
    "lgather partitions": (lambda: _LG(_tile(32, 16), _tile(32, 8), _tile(16, 1, dtype=U16)),
                           SHAPE, "partition counts"),
    "lgather not x16": (lambda: _LG(_tile(8, 8), _tile(8, 8), _tile(8, 1, dtype=U16)),
                        PartitionError, "multiple of 16"),
    "lgather starts": (lambda: _LG(_tile(64, 16)[32:48], _tile(64, 8)[0:16],
                                   _tile(64, 1, dtype=U16)[0:16]), PartitionError,
                       "same multiple of 16"),
    "lgather elem per idx": (lambda: _LG(_tile(16, 48), _tile(16, 8), _tile(16, 1, dtype=U16),
                                         num_elem_per_idx=3), KernelUsageError,
                             "1, 2, 4, 8, 16 or 32"),
    "lgather num_valid": (lambda: _LG(_tile(16, 17), _tile(16, 8), _tile(16, 1, dtype=U16),
                                      num_valid_indices=17), KernelUsageError,
                          "between 1 and 16"),
    "lgather 4096": (lambda: _LG(_tile(16, 4112), _tile(16, 8), _tile(16, 257, dtype=U16)),
                     KernelUsageError, "at most 4096"),
    "lgather dst size": (lambda: _LG(_tile(16, 20), _tile(16, 8), _tile(16, 1, dtype=U16)),
                         SHAPE, "num_valid_indices x num_elem_per_idx"),
    "shuffle hbm": (lambda: _SH(_tile(32, 4), _hbm(32, 4), Z32), BufferKindError, "sbuf/psum"),
    "shuffle dtype": (lambda: _SH(_tile(32, 4, dtype=nl.bfloat16), _tile(32, 4), Z32),
                      DTypeError, "without casting"),
    "shuffle free size": (lambda: _SH(_tile(32, 4), _tile(32, 8), Z32), SHAPE,
                          "elements per partition"),
    "shuffle rank": (lambda: _SH(_tile(32, 1, 1, 1, 1, 2), _tile(32, 1, 1, 1, 1, 2), Z32),
                     SHAPE, "at most 5"),
    "shuffle start 64": (lambda: _SH(_tile(128, 4)[32:96], _tile(128, 4)[0:64], Z32),
                         PartitionError, "with 64 active partitions .* 0 or 64"),
    "shuffle start 32": (lambda: _SH(_tile(32, 4)[0:16], _tile(32, 4)[16:32], Z32),
                         PartitionError, "0 or 32 or 64 or 96"),
    "shuffle mask length": (lambda: _SH(_tile(32, 4), _tile(32, 4), [0] * 16),
                            KernelUsageError, "exactly 32"),
    "shuffle mask value": (lambda: _SH(_tile(32, 4), _tile(32, 4), [0] * 31 + [32]),
                           KernelUsageError, r"shuffle_mask\[31\]=32"),
    "shuffle mask src row": (lambda: _SH(_tile(32, 4), _tile(32, 4)[0:1], [0] * 31 + [1]),
                             SHAPE, "src spans 1 partition"),
    "compute reduce_op": (lambda: _DC(_hbm(2, 4), [_hbm(2, 4)], nl.multiply),
                          KernelUsageError, "nl.add only"),
    "compute scales": (lambda: _DC(_hbm(2, 4), [_hbm(2, 4)], nl.add, scales=[2.0]),
                       KernelUsageError, "must be 1.0"),
    "compute 16 srcs": (lambda: _DC(_hbm(2, 4), [_hbm(2, 4)] * 17, nl.add),
                        KernelUsageError, "1 to 16"),
    "compute psum": (lambda: _DC(_hbm(2, 4), [_ps(2, 4)], nl.add), DmaSourceError, "PSUM"),
    "compute sizes": (lambda: _DC(_hbm(2, 4), [_hbm(2, 5)], nl.add), SHAPE,
                      "counts must match"),
    "compute rmw 2 srcs": (lambda: _DC(_rmw_view(), [_rmw_view()], nl.add),
                           KernelUsageError, "exactly 2"),
    "compute rmw unique": (lambda: (lambda v: _DC(v, [v, _tile(2, 4)], nl.add,
                                                  unique_indices=False))(_rmw_view()),
                           KernelUsageError, "unique_indices must be True"),
    "compute rmw shape": (lambda: (lambda v: _DC(v, [v, _hbm(2, 4)], nl.add))(_rmw_view()),
                          KernelUsageError, "scatter RMW"),
    "compute dynamic": (lambda: _DC(_hbm(2, 4), [_hbm(8, 4).ap([[4, 2], [1, 4]], 0,
                                                                scalar_offset=1)], nl.add),
                        KernelUsageError, "compile-time known addresses"),
}


def _rmw_view():
    ids = _tile(2, 1, dtype=nl.int32)
    return _hbm(8, 4).ap([[4, 2], [1, 4]], 0, vector_offset=ids, indirect_dim=0)


_call = call_in_kernel


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_documented_constraint_is_an_error_at_the_kernel_line(case):
    fn, error, match = ERRORS[case]
    with pytest.raises(error, match=match) as info:
        _call(fn)
    assert info.value.location is not None and info.value.location.startswith(__file__)


# ---------------------------------------------------------------- stream and timing
def _all_four():
    src = _tile(128, 512)
    nisa.memset(src, 1.0)
    idx = _tile(128, 64, dtype=U32)
    nisa.memset(idx, 3)
    nisa.nc_n_gather(_tile(128, 64), src, idx)
    lidx = _tile(128, 4, dtype=U16)
    nisa.memset(lidx, 2)
    nisa.local_gather(_tile(128, 64, 2), src, lidx, num_elem_per_idx=2)
    nisa.nc_stream_shuffle(_tile(128, 512), src, list(range(32)))
    nisa.dma_compute(_hbm(128, 512), [src, src], nl.add)


WANT = {Opcode.NC_N_GATHER: Engine.GPSIMD, Opcode.LOCAL_GATHER: Engine.GPSIMD,
        Opcode.NC_STREAM_SHUFFLE: Engine.VECTOR, Opcode.DMA_COMPUTE: Engine.DMA}


@pytest.mark.parametrize("chip", ["trn2", "trn3"])
def test_recorded_on_their_engines_and_priced_as_documented(chip):
    trace = _call(_all_four, chip=chip, symbolic=False)
    mine = {i.opcode: i for i in trace.instructions if i.opcode in WANT}
    assert {o: i.engine for o, i in mine.items()} == WANT
    chip_spec = hw.load_chip(chip)
    core = chip_spec.core
    cal = load_calibration(core.name)

    def n(inst):  # N scaled to the engine's element rate, as the cost rules see it
        return inst.free_elements * element_scale(inst, stream_engine(core, inst.engine), cal)

    # nc_stream_shuffle [ISA226]: max(MIN_II, N), N = 512 elements per partition
    shuffle = mine[Opcode.NC_STREAM_SHUFFLE]
    assert shuffle.attrs.shuffle_mask == tuple(range(32))
    assert engine_cycles(shuffle, core, cal) == max(
        core.costs.min_ii_cycles, cal.one_input_per_element * n(shuffle))
    # local_gather: 150 + n_idx * e * C; e = 2, fp32: C = ((28 + 8) / 8) / min(1, 2) = 4.5
    gather = mine[Opcode.LOCAL_GATHER]
    assert gather.attrs.num_valid_indices == 64 and gather.free_elements == 128
    start = core.costs.gpsimd_start_cycles
    assert engine_cycles(gather, core, cal) == pytest.approx(start + n(gather) * 4.5)
    # nc_n_gather (assumed): ceil(512 / 512) = 1 group x (start + 64 indices)
    n_gather = mine[Opcode.NC_N_GATHER]
    assert engine_cycles(n_gather, core, cal) == pytest.approx(start + n(n_gather))
    # dma_compute: both sources stream through the engines; half rate before NC-v4
    plan = dma_plan(mine[Opcode.DMA_COMPUTE], chip_spec, cal)
    assert plan.bytes_moved == 2 * 128 * 512 * 4 and plan.hbm_write_bytes == 128 * 512 * 4
    profile = sim.schedule(trace, chip)
    for p, inst in enumerate(trace.instructions):
        if inst.opcode in WANT:
            assert profile.timeline.end_s[p] > profile.timeline.start_s[p]
    if chip == "trn2":
        full_rate = dma_plan(mine[Opcode.DMA_COMPUTE], hw.load_chip("trn3"), cal)
        per_byte = (plan.piece_s - cal.dma_transfer_overhead_s)
        assert per_byte > (full_rate.piece_s - cal.dma_transfer_overhead_s)
