"""nisa.range_select, select_reduce, tensor_scalar_cumulative, exponential (Vector engine)
and sequence_bounds (GpSimd) against numpy references written from their API reference
pages, the shared Vector accumulator (reduce_cmd), one error test per documented
constraint, and their cost rules."""

from __future__ import annotations

import numpy as np
import pytest
from nki_harness import call_in_kernel, tiles_kernel

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.isa.select import bounds_of
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import engine_cycles
from tessera.sim.timing_calibration import load_calibration

RNG = np.random.default_rng(7)
F32 = nl.float32
FP32_MIN = float(np.finfo(np.float32).min)
RESET, REDUCE, IDLE = nisa.reduce_cmd.reset_reduce, nisa.reduce_cmd.reduce, nisa.reduce_cmd.idle


def run(body, *arrays, out, chip="trn2"):
    """body(out_tiles, in_tiles) on SBUF copies of `arrays`; the outputs' values."""
    return nki.simulate(tiles_kernel(body, out, pass_lists=True), chip=chip)(*arrays)


# ---------------------------------------------------------------- references (from the pages)
def range_select_ref(x, cmp0, cmp1, b0, b1, start):
    idx = np.float32(start) + np.arange(x.shape[1], dtype=np.float32)
    mask = cmp0(idx[None, :], b0) & cmp1(idx[None, :], b1)
    out = np.where(mask, x, np.float32(FP32_MIN)).astype(np.float32)
    return out, out.max(axis=1, keepdims=True)


def cumulative_ref(x, op0, imm0, op1, start):
    """The page's loop: reg = op1(op0(x[i], imm0), reg)."""
    reg = np.full(x.shape[0], start, dtype=np.float32)
    out = np.empty_like(x)
    for i in range(x.shape[1]):
        reg = op1(op0(x[:, i], imm0).astype(np.float32), reg).astype(np.float32)
        out[:, i] = reg
    return out


def sequence_bounds_ref(seq):
    """The page's compute_sequence_bounds, verbatim in behaviour."""
    n = len(seq)
    lo, hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
    lo[0] = 0 if seq[0] != 0 else n
    for i in range(1, n):
        lo[i] = n if seq[i] == 0 else lo[i - 1] if seq[i] == seq[i - 1] else i
    hi[-1] = n if seq[-1] != 0 else -1
    for i in range(n - 2, -1, -1):
        hi[i] = -1 if seq[i] == 0 else hi[i + 1] if seq[i] == seq[i + 1] else i + 1
    return np.vstack((lo, hi))


# ---------------------------------------------------------------- range_select
def test_range_select_tile_bounds_offset_and_an_empty_row():
    x = RNG.standard_normal((4, 24)).astype(np.float32)
    b0 = np.array([[10], [3], [0], [30]], dtype=np.float32)   # row 3: nothing selected
    b1 = np.array([[20], [3.5], [40], [31]], dtype=np.float32)

    def body(o, i):
        nisa.range_select(o[0], i[0], nl.greater_equal, nl.less, i[1], i[2],
                          reduce_res=o[1], range_start=5)

    dst, red = run(body, x, b0, b1, out=[((4, 24), F32), ((4, 1), F32)])
    want, want_red = range_select_ref(x, np.greater_equal, np.less, b0, b1, 5)
    np.testing.assert_array_equal(dst, want)
    np.testing.assert_array_equal(red, want_red)
    assert (dst[3] == FP32_MIN).all() and red[3, 0] == FP32_MIN  # FP32_MIN - FP32_MIN = 0
    assert (dst[1] != FP32_MIN).sum() == 0  # index 3 is below range_start 5


def test_range_select_equal_numbers_numpy_ops_and_reduce_across_tiles():
    x = RNG.standard_normal((8, 32)).astype(np.float32)
    b = np.full((8, 1), 30.0, dtype=np.float32)

    def body(o, i):  # two column halves, the second continuing the first's maximum
        nisa.range_select(o[0][:, 0:16], i[0][:, 0:16], np.greater_equal, np.less_equal,
                          0.0, 7.0, reduce_cmd=RESET, reduce_res=o[1])
        nisa.range_select(o[0][:, 16:32], i[0][:, 16:32], nl.equal, nl.greater, i[1], 0.0,
                          reduce_cmd=REDUCE, reduce_res=o[2], range_start=24.0)

    dst, first, total = run(body, x, b, out=[((8, 32), F32), ((8, 1), F32), ((8, 1), F32)])
    left, left_max = range_select_ref(x[:, :16], np.greater_equal, np.less_equal, 0, 7, 0)
    right, right_max = range_select_ref(x[:, 16:], np.equal, np.greater, b, 0, 24)
    np.testing.assert_array_equal(dst, np.hstack([left, right]))
    np.testing.assert_array_equal(first, left_max)
    np.testing.assert_array_equal(total, np.maximum(left_max, right_max))
    assert (dst[:, 16:] != FP32_MIN).sum(axis=1).tolist() == [1] * 8  # only index 30


def test_range_select_fill_in_bf16_and_reduce_res_in_fp32():
    x = np.ones((2, 8), dtype=np.float32)
    lo = np.full((2, 1), 100.0, dtype=np.float32)

    def body(o, i):
        nisa.range_select(o[0], i[0], nl.greater_equal, nl.less, i[1], i[1], reduce_res=o[1])

    dst, red = run(body, x, lo, out=[((2, 8), nl.bfloat16), ((2, 1), F32)])
    assert red.tolist() == [[FP32_MIN], [FP32_MIN]]  # the fp32 maximum, before any cast
    assert (dst.astype(np.float32) == -np.inf).all()  # the page: the downcast gives -INF


# ---------------------------------------------------------------- select_reduce
@pytest.mark.parametrize("reverse", [False, True])
def test_select_reduce_scalar_fill_reverse_and_max(reverse):
    x = RNG.standard_normal((16, 40)).astype(np.float32)
    pred = RNG.integers(0, 3, (16, 40)).astype(np.uint8)  # 2 is true too
    pred[0] = 0  # nothing chosen: the row maximum is the fill

    def body(o, i):
        nisa.select_reduce(o[0], i[1], i[0], -7.5, reduce_res=o[1], reduce_cmd=RESET,
                           reverse_pred=reverse)

    dst, red = run(body, x, pred, out=[((16, 40), nl.bfloat16), ((16, 1), F32)])
    chosen = (pred == 0) if reverse else (pred != 0)
    want = np.where(chosen, x, np.float32(-7.5))
    np.testing.assert_array_equal(dst, want.astype(nl.bfloat16.storage))
    np.testing.assert_array_equal(red, want.max(axis=1, keepdims=True))
    if not reverse:
        assert red[0, 0] == -7.5


def test_select_reduce_vector_fill_from_psum_and_reduce_chain():
    x = RNG.standard_normal((8, 16)).astype(np.float32)
    pred = (RNG.standard_normal((8, 16)) > 0).astype(np.int16)
    fill = RNG.standard_normal((8, 1)).astype(np.float32)

    def body(o, i):
        ps = nl.ndarray((8, 16), F32, buffer=nl.psum)
        nisa.tensor_copy(ps, i[0])
        nisa.select_reduce(o[0], i[1], ps, i[2], reduce_cmd=RESET)  # no reduce_res: kept
        nisa.select_reduce(o[1], i[1], ps, i[2], reduce_res=o[2], reduce_cmd=REDUCE,
                           reverse_pred=True)

    a, b, red = run(body, x, pred, fill, out=[((8, 16), F32)] * 2 + [((8, 1), F32)])
    np.testing.assert_array_equal(a, np.where(pred != 0, x, fill))
    np.testing.assert_array_equal(b, np.where(pred == 0, x, fill))
    np.testing.assert_array_equal(red, np.maximum(a.max(1), b.max(1))[:, None])


# ---------------------------------------------------------------- tensor_scalar_cumulative
CUMULATIVE_CASES = {  # name: (op0, imm0, op1, numpy op0, numpy op1, reset value)
    "cumsum": (nl.multiply, 2.0, nl.add, np.multiply, np.add, 0.0),
    "running max": (nl.subtract, 0.5, nl.maximum, np.subtract, np.maximum, -np.inf),
    "running min": (nl.add, 0.0, nl.minimum, np.add, np.minimum, np.inf),
    "product": (nl.add, 1.0, nl.multiply, np.add, np.multiply, 1.0),
    "subtract (value - reg)": (nl.multiply, 1.0, nl.subtract, np.multiply, np.subtract, 0.0),
}


@pytest.mark.parametrize("case", sorted(CUMULATIVE_CASES))
def test_cumulative_matches_the_page_loop(case):
    op0, imm0, op1, np0, np1, start = CUMULATIVE_CASES[case]
    x = RNG.uniform(-1, 1, (16, 2, 6)).astype(np.float32)
    (dst,) = run(lambda o, i: nisa.tensor_scalar_cumulative(o[0], i[0], op0, op1, imm0), x,
                 out=[((16, 2, 6), F32)])
    want = cumulative_ref(x.reshape(16, 12), np0, np.float32(imm0), np1, start)
    np.testing.assert_allclose(dst.reshape(16, 12), want, rtol=1e-6)
    if case.startswith("subtract"):  # alternating: x0, x1 - x0, x2 - x1 + x0
        x2 = x.reshape(16, 12)
        np.testing.assert_allclose(dst.reshape(16, 12)[:, 2], x2[:, 2] - x2[:, 1] + x2[:, 0],
                                   rtol=1e-5, atol=1e-6)


def test_cumulative_vector_imm_bf16_out_and_continuing_the_accumulator():
    x = RNG.uniform(0, 1, (8, 20)).astype(np.float32)
    scale = RNG.uniform(1, 2, (8, 1)).astype(np.float32)

    def body(o, i):  # the second half continues from the first half's last sum
        nisa.tensor_scalar_cumulative(o[0][:, 0:10], i[0][:, 0:10], nl.multiply, nl.add, i[1])
        nisa.tensor_scalar_cumulative(o[0][:, 10:20], i[0][:, 10:20], nl.multiply, nl.add,
                                      i[1], reduce_cmd=REDUCE)
        nisa.tensor_scalar_cumulative(o[1], i[0], nl.multiply, nl.add, i[1])

    split, whole = run(body, x, scale, out=[((8, 20), F32), ((8, 20), nl.bfloat16)])
    want = cumulative_ref(x, np.multiply, scale[:, 0], np.add, 0.0)
    np.testing.assert_allclose(split, want, rtol=1e-6)
    np.testing.assert_array_equal(whole, want.astype(nl.bfloat16.storage))


# ---------------------------------------------------------------- exponential (NeuronCore-v4)
def test_exponential_vector_max_row_sum_and_cast():
    x = RNG.standard_normal((32, 3, 10)).astype(np.float32)
    m = x.reshape(32, 30).max(axis=1, keepdims=True)

    def body(o, i):
        nisa.exponential(o[0], i[0], max_value=i[1], reduce_res=o[1], reduce_cmd=RESET)
        nisa.exponential(o[2], i[0], max_value=1.5)  # idle: no accumulation

    dst, total, plain = run(body, x, m, out=[((32, 3, 10), nl.bfloat16), ((32, 1), F32),
                                             ((32, 3, 10), F32)], chip="trn3")
    e = np.exp(x.reshape(32, 30) - m).astype(np.float32)
    np.testing.assert_array_equal(dst.reshape(32, 30), e.astype(nl.bfloat16.storage))
    np.testing.assert_allclose(total[:, 0], e.sum(axis=1), rtol=1e-6)  # fp32, before cast
    np.testing.assert_allclose(plain, np.exp(x - np.float32(1.5)), rtol=1e-6)
    assert (dst.astype(np.float32).reshape(32, 30).max(axis=1) == 1.0).all()


def test_exponential_sum_continues_across_tiles_then_softmax():
    x = RNG.standard_normal((4, 64)).astype(np.float32)
    m = x.max(axis=1, keepdims=True)

    def body(o, i):  # reset on the first tile, reduce on the second, read out at the end
        nisa.exponential(o[0][:, 0:32], i[0][:, 0:32], max_value=i[1], reduce_cmd=RESET)
        nisa.exponential(o[0][:, 32:64], i[0][:, 32:64], max_value=i[1], reduce_cmd=REDUCE,
                         reduce_res=o[1])

    e, total = run(body, x, m, out=[((4, 64), F32), ((4, 1), F32)], chip="trn3")
    want = np.exp(x - m)
    np.testing.assert_allclose(e, want, rtol=1e-6)
    np.testing.assert_allclose(total[:, 0], want.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose((e / total).sum(axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------- sequence_bounds (GpSimd)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_sequence_bounds_runs_padding_and_repeated_ids(dtype):
    seq = np.array([[0, 3, 3, 3, 1, 1, 0, 0, 2, 3, 3, 5, 5, 5, 5, 0]], dtype=dtype)
    (dst,) = run(lambda o, i: nisa.sequence_bounds(o[0], i[0]), seq,
                 out=[((1, 2, 16), nl.int32 if dtype is np.int32 else F32)])
    want = sequence_bounds_ref(seq[0])
    np.testing.assert_array_equal(dst[0], want)
    assert dst[0, :, 0].tolist() == [16, -1]  # padding: start n, end -1
    assert dst[0, :, 9].tolist() == [9, 11]  # id 3 again: a new run, not the first one
    assert dst[0, :, 14].tolist() == [11, 15]


def test_sequence_bounds_reference_on_random_ids_and_edges():
    for seq in (RNG.integers(0, 3, 200), np.zeros(5, np.int64), np.array([7]),
                np.array([4, 4, 4, 4])):
        np.testing.assert_array_equal(np.stack(bounds_of(seq)), sequence_bounds_ref(seq))


# ---------------------------------------------------------------- constraints
def _t(*shape, dtype=F32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _ps(*shape, dtype=F32):
    return _t(*shape, dtype=dtype, buffer=nl.psum)


def _rs(**kw):
    args = {"dst": _t(4, 8), "on_true_tile": _t(4, 8), "comp_op0": nl.greater_equal,
            "comp_op1": nl.less, "bound0": _t(4, 1), "bound1": _t(4, 1)}
    nisa.range_select(**{**args, **kw})


def _sr(**kw):
    args = {"dst": _t(4, 8), "predicate": _t(4, 8, dtype=nl.uint8), "on_true": _t(4, 8),
            "on_false": 0.0}
    nisa.select_reduce(**{**args, **kw})


def _cu(**kw):
    args = {"dst": _t(4, 8), "src": _t(4, 8), "op0": nl.multiply, "op1": nl.add,
            "imm0": 1.0}
    nisa.tensor_scalar_cumulative(**{**args, **kw})


def _ex(**kw):
    nisa.exponential(**{"dst": _t(4, 8), "src": _t(4, 8), **kw})


def _sb(**kw):
    nisa.sequence_bounds(**{"dst": _t(1, 2, 8), "segment_ids": _t(1, 8), **kw})


def _reduce_after_idle():
    _ex(reduce_cmd=RESET)
    _ex()  # idle: the accumulator is unknown afterwards
    _ex(reduce_cmd=REDUCE)


SHAPE, KUE = ShapeMismatchError, KernelUsageError
ERRORS = {  # case -> (call, error class, message); exponential runs on trn3
    "range comp_op": (lambda: _rs(comp_op1=nl.not_equal), EngineAccessError, "comparison"),
    "range bound dtype": (lambda: _rs(bound0=_t(4, 1, dtype=nl.bfloat16)), DTypeError,
                          "bound0 .* float32"),
    "range bound shape": (lambda: _rs(bound1=_t(4, 2)), SHAPE, r"\[4, 1\]"),
    "range on_true dtype": (lambda: _rs(on_true_tile=_t(4, 8, dtype=nl.int16)), DTypeError,
                            "float dtype"),
    "range fill value": (lambda: _rs(on_false_value=-1e30), KUE, "fp32 minimum"),
    "range start integer": (lambda: _rs(range_start=1.5), KUE, "compile-time integer"),
    "range start 2^24": (lambda: _rs(range_start=2 ** 24 - 4), KUE, "2\\^24"),
    "range reduce_op": (lambda: _rs(reduce_op=nl.add), EngineAccessError, "nl.maximum"),
    "range dst layout": (lambda: _rs(dst=_t(4, 9)), SHAPE, "must match"),
    "range reduce_res shape": (lambda: _rs(reduce_res=_t(4, 2)), SHAPE, r"\[4, 1\]"),
    "range reduce_res idle": (lambda: _rs(reduce_res=_t(4, 1), reduce_cmd=IDLE), KUE,
                              "accumulating reduce_cmd"),
    "range reduce_cmd reset": (lambda: _rs(reduce_cmd=nisa.reduce_cmd.reset), KUE,
                               "not supported"),
    "range first reduce": (lambda: _rs(reduce_cmd=REDUCE), KUE, "start with reset_reduce"),
    "select predicate dtype": (lambda: _sr(predicate=_t(4, 8)), DTypeError, "uint16"),
    "select on_true dtype": (lambda: _sr(on_true=_t(4, 8, dtype=nl.int32)), DTypeError,
                             "tfloat32, int32 and uint32"),
    "select both psum": (lambda: _sr(on_true=_ps(4, 8), predicate=_ps(4, 8, dtype=nl.uint8)),
                         EngineAccessError, "cannot both be in PSUM"),
    "select predicate layout": (lambda: _sr(predicate=_t(4, 4, dtype=nl.uint8)), SHAPE,
                                "must match"),
    "select on_false shape": (lambda: _sr(on_false=_t(4, 2)), SHAPE, r"\[4, 1\]"),
    "select reduce_res dtype": (lambda: _sr(reduce_res=_t(4, 1, dtype=nl.int32),
                                            reduce_cmd=RESET), DTypeError, "float dtype"),
    "select reduce_res shape": (lambda: _sr(reduce_res=_t(2, 1), reduce_cmd=RESET), SHAPE,
                                r"\[4, 1\]"),
    "select reduce_op": (lambda: _sr(reduce_op=nl.minimum), EngineAccessError, "nl.maximum"),
    "select hbm": (lambda: _sr(dst=_t(4, 8, buffer=nl.shared_hbm)), BufferKindError,
                   "SBUF/PSUM"),
    "cumulative op0 bitwise": (lambda: _cu(op0=nl.bitwise_and, src=_t(4, 8, dtype=nl.int16),
                                           dst=_t(4, 8, dtype=nl.int16)),
                               EngineAccessError, "bitwise"),
    "cumulative op1": (lambda: _cu(op1=nl.divide), EngineAccessError, "cannot accumulate"),
    "cumulative dtype": (lambda: _cu(dst=_t(4, 8, dtype=nl.int32)), DTypeError, "int16"),
    "cumulative rank": (lambda: _cu(dst=_t(4, 2, 2, 1, 2), src=_t(4, 2, 2, 1, 2)), SHAPE,
                        "at most 4"),
    "cumulative imm0 dtype": (lambda: _cu(imm0=_t(4, 1, dtype=nl.bfloat16)), DTypeError,
                              "float32"),
    "cumulative imm1 without load": (lambda: _cu(imm1=3.0), KUE, "load_reduce"),
    "cumulative idle": (lambda: _cu(reduce_cmd=IDLE), KUE, "not supported"),
    "exp src dtype": (lambda: _ex(src=_t(4, 8, dtype=nl.tfloat32)), DTypeError, "src"),
    "exp dst dtype": (lambda: _ex(dst=_t(4, 8, dtype=nl.uint32)), DTypeError, "dst"),
    "exp layout": (lambda: _ex(dst=_t(2, 8)), SHAPE, "must match"),
    "exp rank": (lambda: _ex(dst=_t(4, 2, 1, 2, 2), src=_t(4, 2, 1, 2, 2)), SHAPE,
                 "at most 4"),
    "exp max_value dtype": (lambda: _ex(max_value=_t(4, 1, dtype=nl.float16)), DTypeError,
                            "float32"),
    "exp reduce_init": (lambda: _ex(reduce_cmd=RESET, reduce_init=1.0), KUE,
                        "reduce_init must be unset or 0.0"),
    "exp reduce_res dtype": (lambda: _ex(reduce_res=_t(4, 1, dtype=nl.int32),
                                         reduce_cmd=RESET), DTypeError, "reduce_res"),
    "exp reduce_res idle": (lambda: _ex(reduce_res=_t(4, 1)), KUE, "accumulating"),
    "exp reduce after idle": (_reduce_after_idle, KUE, "reduce_cmd=idle"),
    "exp reduce_cmd reset": (lambda: _ex(reduce_cmd=nisa.reduce_cmd.reset), KUE,
                             "not supported"),
    "bounds partitions": (lambda: _sb(segment_ids=_t(2, 8), dst=_t(2, 2, 8)), PartitionError,
                          "must be 1"),
    "bounds dtype": (lambda: _sb(segment_ids=_t(1, 8, dtype=nl.bfloat16)), DTypeError,
                     "float32, int32"),
    "bounds dst size": (lambda: _sb(dst=_t(1, 8)), SHAPE, r"\[1, 2, 8\]"),
    "bounds psum": (lambda: _sb(segment_ids=_ps(1, 8)), BufferKindError, "sbuf"),
}


_call = call_in_kernel


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_documented_constraint_is_an_error_at_the_kernel_line(case):
    fn, error, match = ERRORS[case]
    with pytest.raises(error, match=match) as info:
        _call(fn, chip="trn3")
    assert info.value.location is not None and info.value.location.startswith(__file__)


@pytest.mark.parametrize(("values", "dtype"), [([0, 1, -2, 2], np.int32),
                                               ([0, 1.5, 1.5, 2], np.float32)])
def test_sequence_bounds_rejects_negative_or_fractional_ids(values, dtype):
    seq = np.array([values], dtype=dtype)
    with pytest.raises(KernelUsageError, match="non-negative integers"):
        run(lambda o, i: nisa.sequence_bounds(o[0], i[0]), seq, out=[((1, 2, 4), F32)])


@pytest.mark.parametrize(("call", "version", "chips"), [
    (lambda: _rs(), 3, ("trn1",)), (lambda: _ex(), 4, ("trn1", "trn2"))])
def test_neuroncore_version_gates(call, version, chips):
    for chip in chips:
        with pytest.raises(KernelUsageError, match=f"NeuronCore-v{version} and newer.*{chip}"):
            _call(call, chip=chip)
    _call(call, chip="trn3")


# ---------------------------------------------------------------- stream and cost
def _all_five():
    data, col = _t(128, 512), _t(128, 1)
    nisa.memset(data, 0.5)
    nisa.memset(col, 0.0)
    pred = _t(128, 512, dtype=nl.uint8)
    nisa.memset(pred, 1)
    nisa.range_select(_t(128, 512), data, nl.greater_equal, nl.less, col, col,
                      reduce_res=_t(128, 1))
    nisa.select_reduce(_t(128, 512), pred, data, -1.0, reduce_res=_t(128, 1),
                       reduce_cmd=RESET)
    nisa.tensor_scalar_cumulative(_t(128, 512), data, nl.multiply, nl.add, 2.0)
    nisa.exponential(_t(128, 512), data, max_value=col, reduce_cmd=RESET)
    ids = _t(1, 512)
    nisa.memset(ids, 1.0)
    nisa.sequence_bounds(_t(1, 2, 512), ids)
    nisa.activation(_t(128, 512), nl.exp, data)


WANT = {Opcode.RANGE_SELECT: Engine.VECTOR, Opcode.SELECT_REDUCE: Engine.VECTOR,
        Opcode.TENSOR_SCALAR_CUMULATIVE: Engine.VECTOR, Opcode.EXPONENTIAL: Engine.VECTOR,
        Opcode.SEQUENCE_BOUNDS: Engine.GPSIMD}


def test_recorded_on_their_engines_and_priced():
    trace = _call(_all_five, chip="trn3", symbolic=False)
    mine = {i.opcode: i for i in trace.instructions if i.opcode in WANT}
    assert {op: i.engine for op, i in mine.items()} == WANT
    assert all(i.free_elements == 512 and i.location.file == __file__ for i in mine.values())
    assert mine[Opcode.SELECT_REDUCE].attrs.on_false == -1.0
    assert mine[Opcode.TENSOR_SCALAR_CUMULATIVE].attrs.imm0 == 2.0
    core, cal = hw.load_chip("trn3").core, load_calibration("nc-v4")
    cycles = {op: engine_cycles(i, core, cal) for op, i in mine.items()}
    exp_on_scalar = engine_cycles(
        next(i for i in trace.instructions if i.opcode is Opcode.ACTIVATION), core, cal)
    min_ii = core.costs.min_ii_cycles
    # [A4] 4x the Scalar engine's exp throughput (+ MIN_II for the accumulation)
    assert cycles[Opcode.EXPONENTIAL] == pytest.approx(exp_on_scalar / 4 + min_ii)
    assert cycles[Opcode.SEQUENCE_BOUNDS] == core.costs.gpsimd_start_cycles + 2 * 512
    # two SBUF inputs: twice range_select's one-input rate, plus the reduction's MIN_II
    assert cycles[Opcode.SELECT_REDUCE] == pytest.approx(
        2 * cycles[Opcode.RANGE_SELECT] + min_ii)
    assert cycles[Opcode.TENSOR_SCALAR_CUMULATIVE] == cycles[Opcode.RANGE_SELECT]
    profile = sim.schedule(trace, "trn3")
    for p, inst in enumerate(trace.instructions):
        if inst.opcode in WANT:
            assert profile.timeline.end_s[p] > profile.timeline.start_s[p]


def test_cumulative_load_reduce_starts_from_imm1():
    """reduce_cmd=load_reduce: the accumulator starts at imm1 (a number or a [P, 1] tile)."""
    x = RNG.uniform(-1, 1, (8, 10)).astype(np.float32)
    start = RNG.uniform(-2, 2, (8, 1)).astype(np.float32)
    (dst,) = run(lambda o, i: nisa.tensor_scalar_cumulative(
        o[0], i[0], nl.multiply, nl.add, 1.0, imm1=i[1], reduce_cmd=nisa.reduce_cmd.load_reduce),
        x, start, out=[((8, 10), F32)])
    np.testing.assert_allclose(dst, start + np.cumsum(x, axis=1, dtype=np.float32), rtol=1e-5)


def test_activation_refuses_load_reduce():
    with pytest.raises(KernelUsageError, match="load_reduce"):
        run(lambda o, i: nisa.activation(o[0], nl.exp, i[0], reduce_op=nl.add,
                                         reduce_res=o[1], reduce_cmd=nisa.reduce_cmd.load_reduce),
            np.zeros((4, 8), np.float32), out=[((4, 8), F32), ((4, 1), F32)])
