"""nisa.max8 / nc_find_index8 / nc_match_replace8 (Vector engine) and nonzero_with_count
(GpSimd) against numpy references written from their API reference pages, one error test
per documented constraint, their place in the stream and their simulated time. The top-k
router example kernel that uses them: tests/examples/test_topk_router_example.py."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from nki_harness import call_in_kernel, trace_tiles  # noqa: E402

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, sim
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import engine_cycles
from tessera.sim.timing_calibration import load_calibration

RNG = np.random.default_rng(18)
F32 = nl.float32
BF16 = ml_dtypes.bfloat16
NEG_INF = float("-inf")


# ---------------------------------------------------------------- references (from the pages)
def max8_ref(x: np.ndarray) -> np.ndarray:
    """The 8 largest values per partition, descending, computed in float32."""
    rows = x.reshape(x.shape[0], -1).astype(np.float32)
    return np.array([sorted(r.tolist(), reverse=True)[:8] for r in rows], dtype=np.float32)


def find_index8_ref(data: np.ndarray, vals: np.ndarray, sentinel: int) -> np.ndarray:
    """First occurrence of each value; a repeated value takes the next occurrence, in
    ascending column order; an absent one the all-ones sentinel."""
    d = data.reshape(data.shape[0], -1).astype(np.float32)
    v = vals.reshape(vals.shape[0], -1).astype(np.float32)
    out = np.full(v.shape, sentinel, dtype=np.int64)
    for p in range(d.shape[0]):
        used: set[int] = set()
        for j in range(8):
            hits = [i for i in range(d.shape[1]) if d[p, i] == v[p, j] and i not in used]
            if hits:
                out[p, j] = hits[0]
                used.add(hits[0])
    return out


def match_replace8_ref(data: np.ndarray, vals: np.ndarray, imm: float,
                       sentinel: int) -> tuple[np.ndarray, np.ndarray]:
    """The page's loop, with vals taken in reverse column order (i = 7, 6, ..., 0)."""
    d = data.reshape(data.shape[0], -1).astype(np.float32).copy()
    v = vals.reshape(vals.shape[0], -1).astype(np.float32)
    idx = np.full(v.shape, sentinel, dtype=np.int64)
    for p in range(d.shape[0]):
        for j in reversed(range(8)):
            matches = np.where(d[p] == v[p, j])[0]
            if matches.size:
                idx[p, j] = matches[0]
                d[p, matches[0]] = imm
    return d.reshape(data.shape), idx


def nonzero_ref(src: np.ndarray, before: np.ndarray, offset: int, pad: int) -> np.ndarray:
    """The page's behaviour block on partitions 0, 16, ..., 112; other rows unchanged."""
    out = before.copy()
    for p in range(0, src.shape[0], 16):
        line = src[p]
        found = [i + offset for i in range(len(line)) if line[i] != 0]
        out[p] = found + [pad] * (len(line) - len(found)) + [len(found)]
    return out


# ---------------------------------------------------------------- max8
@pytest.mark.parametrize("out_dtype", [nl.float32, nl.bfloat16])
def test_max8_random_rows_descending_cast_to_dst(out_dtype):
    x = RNG.standard_normal((128, 512)).astype(np.float32)
    res = trace_tiles(lambda o, i: nisa.max8(o[0], i[0]), x, out=[((128, 8), out_dtype)])
    want = max8_ref(x).astype(out_dtype.storage)
    np.testing.assert_array_equal(res.outputs[0], want)
    assert np.all(np.diff(res.outputs[0].astype(np.float32), axis=1) <= 0)


def test_max8_ties_negatives_minimum_size_and_infinities():
    x = np.array([[5, 5, 5, 5, 5, 5, 5, 5],                 # all equal, exactly 8 elements
                  [-1, -8, -3, -2, -7, -4, -6, -5],           # all negative
                  [0, NEG_INF, 3, 3, -0.5, np.inf, 2, 3],     # infinities and a triple tie
                  [1, 2, 3, 4, 5, 6, 7, 8]], dtype=np.float32)
    res = trace_tiles(lambda o, i: nisa.max8(o[0], i[0]), x, out=[((4, 8), nl.float32)])
    np.testing.assert_array_equal(res.outputs[0], max8_ref(x))
    np.testing.assert_array_equal(res.outputs[0][2], [np.inf, 3, 3, 3, 2, 0, -0.5, NEG_INF])


def test_max8_flattens_a_multi_dim_source_into_a_3d_dst():
    x = RNG.standard_normal((16, 4, 4, 4)).astype(np.float32).astype(BF16)
    res = trace_tiles(lambda o, i: nisa.max8(o[0], i[0]), x, out=[((16, 2, 4), nl.float32)])
    np.testing.assert_array_equal(res.outputs[0].reshape(16, 8), max8_ref(x))


# ---------------------------------------------------------------- nc_find_index8
def test_find_index8_after_max8_recovers_the_top8_positions():
    x = RNG.standard_normal((128, 300)).astype(np.float32)

    def body(o, i):
        nisa.max8(o[0], i[0])
        nisa.nc_find_index8(o[1], i[0], o[0])

    res = trace_tiles(body, x, out=[((128, 8), F32), ((128, 8), nl.uint32)])
    idx = res.outputs[1].astype(np.int64)
    np.testing.assert_array_equal(idx, np.argsort(-x, axis=1, kind="stable")[:, :8])
    np.testing.assert_array_equal(np.take_along_axis(x, idx, 1), res.outputs[0])


@pytest.mark.parametrize(("dtype", "sentinel"), [(nl.uint32, 0xFFFFFFFF), (nl.uint16, 0xFFFF)])
def test_find_index8_duplicates_ascending_and_absent_sentinel(dtype, sentinel):
    data = np.array([[1, 2, 3, 4, 8, 8, 8, 8, 8, 8, 8],
                     [7, 7, 1, 2, 3, 4, 5, 6, 7, 0, 0],
                     [-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11]], dtype=np.float32)
    vals = np.array([[3, 8, 8, 8, 8, 8, 8, 8],
                     [7, 7, 7, 7, 99, 0, 0, 0],       # 4th 7 and 3rd 0 have no occurrence left
                     [-11, -1, -5, -5, -2, 42, -3, -4]], dtype=np.float32)
    res = trace_tiles(lambda o, i: nisa.nc_find_index8(o[0], i[0], i[1]), data, vals,
                      out=[((3, 8), dtype)])
    want = find_index8_ref(data, vals, sentinel)
    np.testing.assert_array_equal(res.outputs[0], want.astype(dtype.storage))
    assert want[0].tolist() == [2, 4, 5, 6, 7, 8, 9, 10]  # the page's duplicate example
    assert want[1].tolist() == [0, 1, 8, sentinel, sentinel, 9, 10, sentinel]


def test_find_index8_with_a_broadcast_row_max():
    x = np.array([[4, 9, 9, 1, 9, 0, 2, 3, 9, 5]] * 4, dtype=np.float32)

    def body(o, i):
        nisa.tensor_reduce(o[0], nl.maximum, i[0], axis=1)
        nisa.nc_find_index8(o[1], i[0], o[0].broadcast(1, 8))  # stride-0 view of the max

    res = trace_tiles(body, x, out=[((4, 1), F32), ((4, 8), nl.uint32)])
    s = 0xFFFFFFFF
    assert res.outputs[1][0].tolist() == [1, 2, 4, 8, s, s, s, s]


# ---------------------------------------------------------------- nc_match_replace8
def test_match_replace8_page_duplicate_example():
    data = np.array([[1, 2, 3, 4, 8, 8, 8, 8, 8, 8, 8]], dtype=np.float32)
    vals = np.array([[3, 8, 8, 8, 8, 8, 8, 8]], dtype=np.float32)
    res = trace_tiles(lambda o, i: nisa.nc_match_replace8(o[0], i[0], i[1], -1.5, o[1]),
                      data, vals, out=[((1, 11), F32), ((1, 8), nl.uint32)])
    assert res.outputs[1][0].tolist() == [2, 10, 9, 8, 7, 6, 5, 4]
    assert res.outputs[0][0].tolist() == [1, 2, -1.5, 4] + [-1.5] * 7
    want, idx = match_replace8_ref(data, vals, -1.5, 0xFFFFFFFF)
    np.testing.assert_array_equal(res.outputs[0], want)
    np.testing.assert_array_equal(res.outputs[1], idx)


def test_match_replace8_iterated_gives_top16_in_place():
    x = RNG.standard_normal((128, 200)).astype(np.float32)

    def body(o, i):
        work = i[0]
        for r in range(2):
            nisa.max8(o[0][:, r * 8:(r + 1) * 8], work)
            # in place: dst is data
            nisa.nc_match_replace8(work, work, o[0][:, r * 8:(r + 1) * 8], NEG_INF,
                                   dst_idx=o[1][:, r * 8:(r + 1) * 8])

    res = trace_tiles(body, x, out=[((128, 16), F32), ((128, 16), nl.uint32)])
    order = np.argsort(-x, axis=1, kind="stable")[:, :16]
    np.testing.assert_array_equal(res.outputs[0], np.take_along_axis(x, order, 1))
    np.testing.assert_array_equal(np.sort(res.outputs[1].astype(np.int64), 1),
                                  np.sort(order, 1))


def test_match_replace8_absent_values_short_rows_and_dtypes():
    data = np.array([[5, 1, 5, 2], [0, 0, 0, 0]], dtype=np.float32).astype(BF16)
    vals = np.array([[5, 5, 5, 7, 1, 1, 2, 2], [0, 3, 3, 3, 3, 3, 3, 3]], dtype=np.float32)
    res = trace_tiles(lambda o, i: (nisa.nc_match_replace8(o[0], i[0], i[1], 9.0, o[1]),
                                    nisa.nc_match_replace8(o[2], i[0], i[1], 9.0)),
                      data, vals, out=[((2, 4), nl.bfloat16), ((2, 8), nl.int32),
                                       ((2, 4), nl.float32)])
    want, idx = match_replace8_ref(data, vals, 9.0, -1)  # int32 all-ones is -1
    np.testing.assert_array_equal(res.outputs[0].astype(np.float32), want)
    np.testing.assert_array_equal(res.outputs[1], idx)
    np.testing.assert_array_equal(res.outputs[2], want)
    assert res.outputs[1][0].tolist() == [-1, 2, 0, -1, -1, 1, -1, 3]


def test_match_replace8_keeps_unmatched_bits_of_integer_data():
    data = np.array([[2 ** 24 + 1, 3, 7, 2 ** 30 + 3]], dtype=np.int32)
    vals = np.full((1, 8), 3.0, dtype=np.float32)
    res = trace_tiles(lambda o, i: nisa.nc_match_replace8(o[0], i[0], i[1], -4.0), data, vals,
                      out=[((1, 4), nl.int32)])
    assert res.outputs[0][0].tolist() == [2 ** 24 + 1, -4, 7, 2 ** 30 + 3]


# ---------------------------------------------------------------- nonzero_with_count
def test_nonzero_with_count_page_example():
    src = np.zeros((1, 8), dtype=np.float32)
    src[0, [1, 2, 5]] = 1.0
    res = trace_tiles(lambda o, i: nisa.nonzero_with_count(o[0], i[0], index_offset=16,
                                                           padding_val=-1),
                      src, out=[((1, 9), nl.int32)])
    assert res.outputs[0][0].tolist() == [17, 18, 21, -1, -1, -1, -1, -1, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_nonzero_with_count_serves_partitions_0_16_to_112_only(dtype):
    src = RNG.integers(-2, 3, (128, 40)).astype(dtype)
    src[0] = 0                         # no nonzero: all padding, count 0
    src[16] = 5                        # all nonzero
    src[32, :] = 0
    src[32, 39] = -3                   # negative counts as nonzero
    if dtype is np.float32:
        src[48, :] = -0.0              # negative zero is zero
    before = np.full((128, 41), 7, dtype=np.int32)

    def body(o, i):
        nisa.memset(o[0], 7)
        nisa.nonzero_with_count(o[0], i[0], index_offset=100, padding_val=-9)

    res = trace_tiles(body, src, out=[((128, 41), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0], nonzero_ref(src, before, 100, -9))
    assert res.outputs[0][0].tolist() == [-9] * 40 + [0]
    assert res.outputs[0][16].tolist() == list(range(100, 140)) + [40]
    assert res.outputs[0][32].tolist() == [139] + [-9] * 39 + [1]
    assert res.outputs[0][1].tolist() == [7] * 41  # not served: unchanged, count slot too


def test_nonzero_with_count_on_a_tile_starting_at_partition_32():
    src = RNG.integers(0, 2, (64, 6)).astype(np.float32)

    def body(o, i):
        nisa.memset(o[0], 7)
        nisa.nonzero_with_count(o[0][32:64], i[0][32:64])

    res = trace_tiles(body, src, out=[((64, 7), nl.int32)])
    want = np.full((64, 7), 7, dtype=np.int32)
    want[32:] = nonzero_ref(src[32:], want[32:], 0, -1)
    np.testing.assert_array_equal(res.outputs[0], want)


# ---------------------------------------------------------------- constraints
def _tile(*shape, dtype=F32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _u(*shape):
    return _tile(*shape, dtype=nl.uint32)


def _i(*shape):
    return _tile(*shape, dtype=nl.int32)


def _hbm(*shape):
    return _tile(*shape, buffer=nl.shared_hbm)


U32 = nl.uint32
_MR = nisa.nc_match_replace8
_NZ = nisa.nonzero_with_count
SHAPE, BETWEEN, EXACT8 = ShapeMismatchError, "between 8 and 16384", "exactly 8"
ROWS, RANK3, RANK5 = "partition counts", "at most 3", "at most 5"
ERRORS = {  # case -> (call, error class, message)
    "max8 src < 8": (lambda: nisa.max8(_tile(4, 8), _tile(4, 7)), SHAPE, BETWEEN),
    "max8 src > 16384": (lambda: nisa.max8(_tile(2, 8), _tile(2, 16385)), SHAPE, BETWEEN),
    "max8 dst not 8": (lambda: nisa.max8(_tile(4, 9), _tile(4, 64)), SHAPE, EXACT8),
    "max8 partitions": (lambda: nisa.max8(_tile(2, 8), _tile(4, 64)), SHAPE, ROWS),
    "max8 src rank": (lambda: nisa.max8(_tile(2, 8), _tile(2, 2, 2, 2, 2, 2)), SHAPE, RANK5),
    "max8 dst rank": (lambda: nisa.max8(_tile(2, 2, 2, 2), _tile(2, 64)), SHAPE, RANK3),
    "max8 hbm": (lambda: nisa.max8(_tile(2, 8), _hbm(2, 64)), BufferKindError, "SBUF/PSUM"),
    "max8 not a tensor": (lambda: nisa.max8(_tile(2, 8), [1.0] * 8), KernelUsageError,
                          "must be an NKI tensor"),
    "find8 dst float": (lambda: nisa.nc_find_index8(_tile(2, 8), _tile(2, 64), _tile(2, 8)),
                        DTypeError, "uint16 or uint32"),
    "find8 dst int32": (lambda: nisa.nc_find_index8(_i(2, 8), _tile(2, 64), _tile(2, 8)),
                        DTypeError, "uint16 or uint32"),
    "find8 dst not 8": (lambda: nisa.nc_find_index8(_u(2, 4), _tile(2, 64), _tile(2, 8)),
                        SHAPE, EXACT8),
    "find8 vals not 8": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 64), _tile(2, 7)),
                         SHAPE, EXACT8),
    "find8 data < 8": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 7), _tile(2, 8)),
                       SHAPE, BETWEEN),
    "find8 data > 16384": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 16385),
                                                       _tile(2, 8)), SHAPE, BETWEEN),
    "find8 data rank": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 2, 2, 4), _tile(2, 8)),
                        SHAPE, RANK3),
    "find8 vals rank": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 64), _tile(2, 2, 2, 2)),
                        SHAPE, RANK3),
    "find8 partitions": (lambda: nisa.nc_find_index8(_u(2, 8), _tile(2, 64), _tile(4, 8)),
                         SHAPE, ROWS),
    "replace8 vals not 8": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(2, 9), 0.0),
                            SHAPE, EXACT8),
    "replace8 data > 16384": (lambda: _MR(_tile(2, 16385), _tile(2, 16385), _tile(2, 8), 0.0),
                              SHAPE, "between 1 and 16384"),
    "replace8 dst layout": (lambda: _MR(_tile(2, 32), _tile(2, 64), _tile(2, 8), 0.0),
                            SHAPE, "must match"),
    "replace8 dst_idx not 8": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(2, 8), 0.0,
                                           _u(2, 4)), SHAPE, EXACT8),
    "replace8 dst_idx float": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(2, 8), 0.0,
                                           _tile(2, 8)), DTypeError, "integer dtype"),
    "replace8 imm tensor": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(2, 8), _tile(2, 1)),
                            KernelUsageError, "imm must be a number"),
    "replace8 data rank": (lambda: _MR(_tile(2, 2, 2, 2, 2, 2), _tile(2, 2, 2, 2, 2, 2),
                                       _tile(2, 8), 0.0), SHAPE, RANK5),
    "replace8 vals rank": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(2, 2, 2, 2), 0.0),
                           SHAPE, RANK3),
    "replace8 partitions": (lambda: _MR(_tile(2, 64), _tile(2, 64), _tile(4, 8), 0.0),
                            SHAPE, ROWS),
    "replace8 hbm": (lambda: _MR(_tile(2, 64), _hbm(2, 64), _tile(2, 8), 0.0),
                     BufferKindError, "SBUF/PSUM"),
    # nonzero_with_count on NeuronCore-v2 is tested separately (on trn1)
    "nonzero src psum": (lambda: _NZ(_i(16, 9), _tile(16, 8, buffer=nl.psum)),
                         BufferKindError, "needs it in sbuf"),
    "nonzero dst psum": (lambda: _NZ(_tile(16, 9, dtype=nl.int32, buffer=nl.psum),
                                     _tile(16, 8)), BufferKindError, "needs it in sbuf"),
    "nonzero src dtype": (lambda: _NZ(_i(16, 9), _tile(16, 8, dtype=nl.bfloat16)),
                          DTypeError, "float32 or int32"),
    "nonzero dst dtype": (lambda: _NZ(_u(16, 9), _tile(16, 8)), DTypeError, "must be int32"),
    "nonzero dst not T+1": (lambda: _NZ(_i(16, 8), _tile(16, 8)), SHAPE, "exactly 9"),
    "nonzero partitions": (lambda: _NZ(_i(32, 9), _tile(16, 8)), SHAPE, ROWS),
    "nonzero offset float": (lambda: _NZ(_i(16, 9), _tile(16, 8), index_offset=1.5),
                             KernelUsageError, "index_offset must be an int32"),
    "nonzero offset range": (lambda: _NZ(_i(16, 9), _tile(16, 8), index_offset=2 ** 31),
                             KernelUsageError, "index_offset must be an int32"),
    "nonzero padding_val": (lambda: _NZ(_i(16, 9), _tile(16, 8), padding_val="pad"),
                            KernelUsageError, "padding_val must be an int32"),
    "nonzero start partitions": (lambda: _NZ(_i(64, 9)[32:64], _tile(64, 8)[0:32]),
                                 PartitionError, "same partition"),
}


_call = call_in_kernel


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_documented_constraint_is_an_error_at_the_kernel_line(case):
    fn, error, match = ERRORS[case]
    with pytest.raises(error, match=match) as info:
        _call(fn)
    assert info.value.location is not None and info.value.location.startswith(__file__)


def test_nonzero_with_count_needs_neuroncore_v3():
    def fn():
        nisa.nonzero_with_count(_tile(16, 9, dtype=nl.int32), _tile(16, 8))

    with pytest.raises(KernelUsageError, match=r"nonzero_with_count .*NeuronCore-v3.*trn1"):
        _call(fn, chip="trn1")
    _call(fn, chip="trn2")
    _call(fn, chip="trn3")


# ---------------------------------------------------------------- stream and timing
def _all_four():
    data = _tile(128, 512)
    nisa.memset(data, 1.0)
    top = _tile(128, 8)
    idx = _tile(128, 8, dtype=U32)
    nisa.max8(top, data)
    nisa.nc_find_index8(idx, data, top)
    nisa.nc_match_replace8(data, data, top, NEG_INF, dst_idx=idx)
    nz = _tile(128, 513, dtype=nl.int32)
    nisa.nonzero_with_count(nz, data, index_offset=3, padding_val=-2)


WANT = {Opcode.MAX8: Engine.VECTOR, Opcode.NC_FIND_INDEX8: Engine.VECTOR,
        Opcode.NC_MATCH_REPLACE8: Engine.VECTOR, Opcode.NONZERO_WITH_COUNT: Engine.GPSIMD}


@pytest.mark.parametrize("chip", ["trn2", "trn3"])
def test_instructions_are_recorded_on_their_engines_and_take_time(chip):
    trace = _call(_all_four, chip=chip, symbolic=False)
    mine = {i.opcode: (p, i) for p, i in enumerate(trace.instructions) if i.opcode in WANT}
    assert set(mine) == set(WANT)
    for opcode, (_, inst) in mine.items():
        assert inst.engine is WANT[opcode]
        assert inst.free_elements == 512  # N: elements per partition of the searched tensor
        assert inst.location.file == __file__
    match = mine[Opcode.NC_MATCH_REPLACE8][1]
    assert match.attrs.imm == NEG_INF and match.attrs.with_indices
    assert [w.tensor for w in match.writes] == [match.reads[0].tensor, mine[
        Opcode.NC_FIND_INDEX8][1].writes[0].tensor]
    nz = mine[Opcode.NONZERO_WITH_COUNT][1]
    assert (nz.attrs.index_offset, nz.attrs.padding_val) == (3, -2)
    profile = sim.schedule(trace, chip)
    for p, _ in mine.values():
        assert profile.timeline.end_s[p] > profile.timeline.start_s[p]
    # the symbolic run validates and records the same stream
    assert _call(_all_four, chip=chip).instructions == trace.instructions


def _one(opcode, trace):
    return next(i for i in trace.instructions if i.opcode is opcode)


@pytest.mark.parametrize("n", [8, 40, 512, 4096])
def test_cost_rules_follow_the_documented_cycles(n):
    """max8 / nc_find_index8: N cycles; nc_match_replace8: max(MIN_II, N) (NC-v2 rates);
    nonzero_with_count: GpSimd start + N."""
    def body():
        data = _tile(128, n)
        top = _tile(128, 8)
        nisa.max8(top, data)
        nisa.nc_find_index8(_tile(128, 8, dtype=U32), data, top)
        nisa.nc_match_replace8(data, data, top, 0.0)

    v2 = hw.load_chip("trn1").core
    trace = _call(body, chip="trn1")
    cal2 = load_calibration("nc-v2")
    assert engine_cycles(_one(Opcode.MAX8, trace), v2, cal2) == n
    assert engine_cycles(_one(Opcode.NC_FIND_INDEX8, trace), v2, cal2) == n
    min_ii = v2.costs.min_ii_cycles
    assert engine_cycles(_one(Opcode.NC_MATCH_REPLACE8, trace), v2, cal2) == max(min_ii, n)
    v3 = hw.load_chip("trn2").core
    nz = _one(Opcode.NONZERO_WITH_COUNT, _call(
        lambda: nisa.nonzero_with_count(_tile(128, n + 1, dtype=nl.int32), _tile(128, n)),
        chip="trn2"))
    cycles = engine_cycles(nz, v3, load_calibration("nc-v3"))
    assert cycles > v3.costs.gpsimd_start_cycles
    assert cycles == pytest.approx(v3.costs.gpsimd_start_cycles + n * (
        v3.gpsimd.lanes / v3.gpsimd.elements_per_cycle_for(None)))
