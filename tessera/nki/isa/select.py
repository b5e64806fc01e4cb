"""Selections, bounds and cumulative ops: range_select, select_reduce, exponential and
tensor_scalar_cumulative (Vector engine) and sequence_bounds (GpSimd engine).

Semantics and constraints follow the NKI API reference pages (newest first: Neuron 2.32-2.34
for range_select, select_reduce, tensor_scalar_cumulative and exponential; the 2.26+ page for
sequence_bounds). The Vector instructions compute in float32 and cast on write; their
reductions see the float32 values before that cast. All four share the Vector engine's
accumulation registers (`tessera.nki.isa._vector_acc`), driven by `reduce_cmd`.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import (
    NO_ATTRS,
    CumulativeAttrs,
    ExponentialAttrs,
    RangeSelectAttrs,
    SelectReduceAttrs,
)
from tessera.nki.buffers import Buffer
from tessera.nki.errors import (
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.isa import _vector_acc as acc
from tessera.nki.isa._common import (
    check_one_psum_input,
    check_same_layout,
    record,
    require_on_chip,
    scalar_or_vector,
    tensor_arg,
)
from tessera.nki.isa.constants import reduce_cmd as ReduceCmd
from tessera.nki.isa.elementwise import Operand, alu_op, apply_scalar, make_operand, require_arith
from tessera.nki.isa.vector import prepare
from tessera.nki.ops import AluOp, maximum, subtract, to_op
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

FP32_MIN = float(np.finfo(np.float32).min)  # range_select's only fill value (page: HW rule)
INDEX_LIMIT = 2 ** 24  # range_select compares indices in fp32: exact up to 2^24
COMPARE_OPS = ("equal", "less", "less_equal", "greater", "greater_equal")
# comparison ufuncs the operator table does not alias (the older page names np.* ops)
_NUMPY_COMPARE = {np.less_equal: "less_equal", np.greater_equal: "greater_equal"}
CUMULATIVE_OPS = ("add", "subtract", "multiply", "maximum", "minimum")
_FP8 = ("float8_e4m3", "float8_e4m3fn", "float8_e5m2")
CUMULATIVE_DTYPES = ("bfloat16", "float16", "float32", *_FP8, "uint8", "uint16", "int8",
                     "int16")
EXP_DST_DTYPES = ("float8_e4m3", "float8_e5m2", "float16", "bfloat16", "float32", "tfloat32",
                  "int8", "int16", "int32", "uint8", "uint16")
EXP_SRC_DTYPES = ("float8_e4m3", "float8_e5m2", "float16", "bfloat16", "float32", "int8",
                  "int16", "int32", "uint8", "uint16", "uint32")
EXP_RES_DTYPES = ("float8_e4m3", "float8_e5m2", "float16", "bfloat16", "float32", "tfloat32")
PREDICATE_DTYPES = ("int8", "uint8", "int16", "uint16")
_NOT_ON_TRUE = ("tfloat32", "int32", "uint32")
BOUNDS_DTYPES = ("float32", "int32")
_MAX_RANK = 4  # "at most three free dimensions (maximum rank 4)"
_CUMULATIVE_START = {"add": 0.0, "subtract": 0.0, "multiply": 1.0, "maximum": -np.inf,
                     "minimum": np.inf}


# ---------------------------------------------------------------------- shared checks
def _require_version(ctx: CoreContext, op: str, version: int) -> None:
    limits = ctx.run.limits
    if limits.version < version:
        raise KernelUsageError(f"{op} is available only on NeuronCore-v{version} and newer; "
                               f"this kernel targets {limits.chip} "
                               f"(NeuronCore-v{limits.version})")


def _dtype_in(t: NkiTensor, allowed: tuple[str, ...], what: str, op: str) -> None:
    if t.dtype.name not in allowed:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be one of "
                         f"{', '.join(allowed)}")


def _max_rank(t: NkiTensor, what: str, op: str) -> None:
    if t.ndim > _MAX_RANK:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} has {t.ndim} "
                                 f"dimensions; at most {_MAX_RANK} (three free dimensions) "
                                 "are supported")


def _max_reduce(reduce_op: object, op: str) -> None:
    if to_op(reduce_op, "reduce_op") is not maximum:
        raise EngineAccessError(f"{op}: reduce_op must be nl.maximum (the only reduction "
                                f"this instruction supports), got {reduce_op!r}")


def _rows(t: NkiTensor) -> np.ndarray:
    return t.read_f32().reshape(t.partitions, t.free_size)


# ---------------------------------------------------------------------- Vector engine
def _compare_op(value: object, what: str, op: str) -> AluOp:
    name = _NUMPY_COMPARE.get(value)  # type: ignore[call-overload]
    alu = to_op(name if name is not None else value, what)
    if alu.name not in COMPARE_OPS:
        raise EngineAccessError(f"{op}: {what}=nl.{alu.name} is not a comparison it "
                                f"supports; use one of {', '.join(COMPARE_OPS)}")
    return alu


def _column(value: object, p: int, what: str, op: str, f32: bool = True) -> Operand:
    """A number or a [P, 1] tile (float32 when `f32`): one value per partition."""
    number, tensor = scalar_or_vector(value, p, op, what)
    if tensor is None:
        return Operand(float(np.float32(number)), None)
    if f32 and tensor.dtype is not dt.float32:
        raise DTypeError(f"{op}: {what} {tensor.name} is {tensor.dtype.name}; it must be "
                         "float32")
    return Operand(None, tensor)


def _range_start(value: object, n: int, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating
                                                 ) or not float(value).is_integer():
        raise KernelUsageError(f"{op}: range_start must be a compile-time integer, got "
                               f"{value!r}")
    start = int(value)
    if max(abs(start), abs(start + n - 1)) > INDEX_LIMIT:
        raise KernelUsageError(f"{op}: range_start={start} with {n} free elements leaves "
                               "the fp32 index range of 2^24")
    return start


@kernel_api
def range_select(dst: NkiTensor, on_true_tile: NkiTensor, comp_op0: object, comp_op1: object,
                 bound0: object, bound1: object, reduce_cmd: object = ReduceCmd.reset_reduce,
                 reduce_res: NkiTensor | None = None, reduce_op: object = maximum,
                 range_start: object = 0, on_false_value: object = FP32_MIN,
                 name: str | None = None) -> None:
    """dst = on_true_tile where comp_op0(i, bound0) and comp_op1(i, bound1), else
    on_false_value, with i = range_start + the flattened free index (Vector engine,
    NeuronCore-v3+). bound0/bound1 are [P, 1] float32 tiles (a number is accepted as the
    same bound on every row); comparisons run in fp32. on_false_value must be the fp32
    minimum (a hardware rule). reduce_res[P, 1] receives the row maximum of the float32
    result folded into the Vector accumulator per reduce_cmd (nl.maximum only).
    """
    op = "range_select"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(on_true_tile, "on_true_tile", op)
    res = None if reduce_res is None else tensor_arg(reduce_res, "reduce_res", op)
    _require_version(ctx, op, 3)
    cmp0 = _compare_op(comp_op0, "comp_op0", op)
    cmp1 = _compare_op(comp_op1, "comp_op1", op)
    _max_reduce(reduce_op, op)
    cmd = acc.reduce_command(reduce_cmd, (ReduceCmd.idle, ReduceCmd.reset_reduce,
                                          ReduceCmd.reduce), op)
    p, n = src.partitions, src.free_size
    b0, b1 = _column(bound0, p, "bound0", op), _column(bound1, p, "bound1", op)
    reads = (src, *b0.tensors, *b1.tensors)
    writes = (dst,) if res is None else (dst, res)
    prepare(ctx, op, Engine.VECTOR, reads, writes)
    check_same_layout(src, dst, "on_true_tile", "dst", op)
    if not src.dtype.is_float:
        raise DTypeError(f"{op}: on_true_tile {src.name} is {src.dtype.name}; it must be a "
                         "float dtype")
    if isinstance(on_false_value, NkiTensor) or not isinstance(
            on_false_value, int | float | np.number) or np.float32(on_false_value) != FP32_MIN:
        raise KernelUsageError(f"{op}: on_false_value must be the fp32 minimum "
                               f"({FP32_MIN!r}, a hardware rule), got {on_false_value!r}")
    start = _range_start(range_start, n, op)
    acc.reduce_result(res, p, cmd, op)
    acc.advance(ctx, acc.lanes(src), cmd, op)
    record(ctx, Engine.VECTOR, Opcode.RANGE_SELECT, reads, writes,
           RangeSelectAttrs(cmp0.name, cmp1.name, cmd.value, res is not None, start,
                            b0.number, b1.number), free_elements=n)
    if ctx.run.symbolic:
        return
    index = (np.float32(start) + np.arange(n, dtype=np.float32))[None, :]
    mask = (cmp0.apply(index, b0.values(cmp0)) != 0) & (cmp1.apply(index, b1.values(cmp1)) != 0)
    out = np.where(mask, _rows(src), np.float32(FP32_MIN))
    dst.write(out)
    acc.fold_max(ctx, acc.lanes(src), cmd, out, res)


@kernel_api
def select_reduce(dst: NkiTensor, predicate: NkiTensor, on_true: NkiTensor, on_false: object,
                  reduce_res: NkiTensor | None = None, reduce_cmd: object = ReduceCmd.idle,
                  reduce_op: object = maximum, reverse_pred: bool = False,
                  name: str | None = None) -> None:
    """dst = on_true where predicate is nonzero, else on_false (a number or a [P, 1] tile),
    on the Vector engine; reverse_pred swaps the two cases. reduce_res[P, 1] (a float tile)
    receives the row maximum of the float32 result folded into the Vector accumulator per
    reduce_cmd (nl.maximum only). predicate is int8/uint8/int16/uint16; on_true any dtype
    but tfloat32/int32/uint32; on_true and predicate may not both be in PSUM.
    """
    op = "select_reduce"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    pred = tensor_arg(predicate, "predicate", op)
    src = tensor_arg(on_true, "on_true", op)
    res = None if reduce_res is None else tensor_arg(reduce_res, "reduce_res", op)
    _max_reduce(reduce_op, op)
    cmd = acc.reduce_command(reduce_cmd, (ReduceCmd.idle, ReduceCmd.reset_reduce,
                                          ReduceCmd.reduce), op)
    p = src.partitions
    fill = _column(on_false, p, "on_false", op, f32=False)
    reads = (pred, src, *fill.tensors)
    writes = (dst,) if res is None else (dst, res)
    prepare(ctx, op, Engine.VECTOR, reads, writes)
    check_same_layout(src, dst, "on_true", "dst", op)
    check_same_layout(src, pred, "on_true", "predicate", op)
    check_one_psum_input(src, pred, "on_true", "predicate", op)
    _dtype_in(pred, PREDICATE_DTYPES, "predicate", op)
    if src.dtype.name in _NOT_ON_TRUE:
        raise DTypeError(f"{op}: on_true {src.name} is {src.dtype.name}; tfloat32, int32 and "
                         "uint32 are not supported")
    acc.reduce_result(res, p, cmd, op)
    if res is not None and not res.dtype.is_float:
        raise DTypeError(f"{op}: reduce_res {res.name} is {res.dtype.name}; it must be a "
                         "float dtype")
    acc.advance(ctx, acc.lanes(src), cmd, op)
    record(ctx, Engine.VECTOR, Opcode.SELECT_REDUCE, reads, writes,
           SelectReduceAttrs(cmd.value, res is not None, bool(reverse_pred), fill.number),
           free_elements=src.free_size)
    if ctx.run.symbolic:
        return
    chosen = pred.numpy().reshape(p, src.free_size) != 0
    if reverse_pred:
        chosen = ~chosen  # logical negation of the predicate (not the integers' bits)
    out = np.where(chosen, _rows(src), np.asarray(fill.values(maximum), dtype=np.float32))
    dst.write(out)
    acc.fold_max(ctx, acc.lanes(src), cmd, out, res)


@kernel_api
def tensor_scalar_cumulative(dst: NkiTensor, src: NkiTensor, op0: object, op1: object,
                             imm0: object, imm1: object = None,
                             reduce_cmd: object = ReduceCmd.reset_reduce,
                             name: str | None = None) -> None:
    """A running op1 along each partition's flattened free elements of op0(src, imm0),
    on the Vector engine: reg = op1(op0(src[i], imm0), reg); dst[i] = reg.

    The page's pseudocode passes the new value first, so op1=nl.subtract gives
    reg = value - reg. reset_reduce starts reg at op1's identity (0 for add/subtract, 1 for
    multiply, -inf for maximum, +inf for minimum); reduce continues from the accumulator the
    previous accumulating Vector instruction left; load_reduce
    starts from imm1. imm0/imm1 are numbers or [P, 1] float32 tiles; the state is float32.
    """
    op = "tensor_scalar_cumulative"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    alu0 = alu_op(op0, "op0", op)
    require_arith(alu0, "op0", op)
    alu1 = to_op(op1, "op1")
    if alu1.name not in CUMULATIVE_OPS:
        raise EngineAccessError(f"{op}: op1=nl.{alu1.name} cannot accumulate; use one of "
                                f"{', '.join(CUMULATIVE_OPS)}")
    cmd = acc.reduce_command(reduce_cmd, (ReduceCmd.reset_reduce, ReduceCmd.reduce,
                                          acc.LOAD_REDUCE), op)
    p = src.partitions
    opd0 = make_operand(imm0, alu0, p, "imm0", op, require_f32=True)
    load = cmd is acc.LOAD_REDUCE
    if imm1 is not None and not load:
        raise KernelUsageError(f"{op}: imm1 is the accumulator's initial value for "
                               f"reduce_cmd=load_reduce; it has no effect with {cmd.value}")
    opd1 = _column(imm1, p, "imm1", op) if load else Operand(None, None)
    reads = (src, *opd0.tensors, *opd1.tensors)
    prepare(ctx, op, Engine.VECTOR, reads, (dst,))
    check_same_layout(src, dst, "src", "dst", op)
    for t, what in ((src, "src"), (dst, "dst")):
        _dtype_in(t, CUMULATIVE_DTYPES, what, op)
        _max_rank(t, what, op)
    acc.advance(ctx, acc.lanes(src), cmd, op)
    record(ctx, Engine.VECTOR, Opcode.TENSOR_SCALAR_CUMULATIVE, reads, (dst,),
           CumulativeAttrs(alu0.name, alu1.name, cmd.value, opd0.number, opd1.number),
           free_elements=src.free_size)
    if ctx.run.symbolic:
        return
    values = apply_scalar(alu0, _rows(src), opd0, False)
    lanes = acc.lanes(src)
    loaded = opd1.values(alu1).reshape(-1) if opd1.tensor is not None else opd1.number
    state = acc.initial(ctx, lanes, cmd, _CUMULATIVE_START[alu1.name], loaded)
    out = np.empty_like(values)
    for i in range(values.shape[1]):
        state = alu1.apply(values[:, i], state)
        out[:, i] = state
    acc.store(ctx, lanes, state)
    dst.write(out)


def _reduce_init(value: object, load: bool, p: int, op: str) -> Operand:
    if not load:
        if isinstance(value, NkiTensor) or value not in (None, 0, 0.0):
            raise KernelUsageError(f"{op}: reduce_init must be unset or 0.0 unless reduce_cmd "
                                   f"is load_reduce, got {value!r}")
        return Operand(None, None)
    return _column(value, p, "reduce_init", op)


@kernel_api
def exponential(dst: NkiTensor, src: NkiTensor, max_value: object = 0.0,
                reduce_res: NkiTensor | None = None, reduce_cmd: object = ReduceCmd.idle,
                reduce_init: object = 0.0, name: str | None = None) -> None:
    """dst = exp(src - max_value) on the Vector engine (NeuronCore-v4+), in float32, cast to
    dst's dtype; max_value is a number or a [P, 1] float32 tile. With an accumulating
    reduce_cmd the row sums of the float32 results are added to the Vector accumulator
    (reset_reduce starts at 0, reduce continues, load_reduce starts at reduce_init) and
    reduce_res[P, 1], if given, receives it. src/dst have at most three free dimensions.
    """
    op = "exponential"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    res = None if reduce_res is None else tensor_arg(reduce_res, "reduce_res", op)
    _require_version(ctx, op, 4)
    cmd = acc.reduce_command(reduce_cmd, (ReduceCmd.idle, ReduceCmd.reset_reduce,
                                          ReduceCmd.reduce, acc.LOAD_REDUCE), op)
    p = src.partitions
    shift = _column(max_value, p, "max_value", op)
    load = cmd is acc.LOAD_REDUCE
    init = _reduce_init(reduce_init, load, p, op)
    reads = (src, *shift.tensors, *init.tensors)
    writes = (dst,) if res is None else (dst, res)
    prepare(ctx, op, Engine.VECTOR, reads, writes)
    check_same_layout(src, dst, "src", "dst", op)
    _dtype_in(src, EXP_SRC_DTYPES, "src", op)
    _dtype_in(dst, EXP_DST_DTYPES, "dst", op)
    _max_rank(src, "src", op)
    _max_rank(dst, "dst", op)
    acc.reduce_result(res, p, cmd, op)
    if res is not None:
        _dtype_in(res, EXP_RES_DTYPES, "reduce_res", op)
    acc.advance(ctx, acc.lanes(src), cmd, op)
    record(ctx, Engine.VECTOR, Opcode.EXPONENTIAL, reads, writes,
           ExponentialAttrs(cmd.value, res is not None, shift.number),
           free_elements=src.free_size)
    if ctx.run.symbolic:
        return
    out = np.exp(apply_scalar(subtract, _rows(src), shift, False)).astype(np.float32)
    dst.write(out)
    if cmd is ReduceCmd.idle:
        return
    lanes = acc.lanes(src)
    loaded = init.values(subtract).reshape(-1) if init.tensor is not None else init.number
    start = acc.initial(ctx, lanes, cmd, 0.0, loaded)
    total = acc.store(ctx, lanes, start + np.add.reduce(out, axis=1, dtype=np.float32))
    if res is not None:
        res.write(total)


# ---------------------------------------------------------------------- GpSimd engine
@kernel_api
def sequence_bounds(dst: NkiTensor, segment_ids: NkiTensor, name: str | None = None) -> None:
    """For each of the n segment ids of a one-partition tile, the [start, end) of the run of
    equal ids it belongs to (GpSimd engine): dst[0, 0, :] holds the starts and dst[0, 1, :]
    the ends (dst is [1, 2, n], e.g. (1, 2, 512) for (1, 512) ids). Id 0 marks padding,
    which gets start n and end -1. Ids are non-negative integers; both tiles are float32 or
    int32 in SBUF.
    """
    op = "sequence_bounds"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    ids = tensor_arg(segment_ids, "segment_ids", op)
    require_on_chip(ids, "segment_ids", op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.SBUF,))
    prepare(ctx, op, Engine.GPSIMD, (ids,), (dst,))
    for t, what in ((ids, "segment_ids"), (dst, "dst")):
        if t.partitions != 1:
            raise PartitionError(f"{op}: {what} {t.name}{list(t.shape)} spans {t.partitions} "
                                 "partitions; the partition dimension must be 1")
        _dtype_in(t, BOUNDS_DTYPES, what, op)
    n = ids.free_size
    if dst.free_size != 2 * n:
        raise ShapeMismatchError(f"{op}: dst {dst.name}{list(dst.shape)} must hold a start "
                                 f"and an end per id, [1, 2, {n}] ({2 * n} elements), has "
                                 f"{dst.free_size}")
    record(ctx, Engine.GPSIMD, Opcode.SEQUENCE_BOUNDS, (ids,), (dst,), NO_ATTRS,
           free_elements=n)
    if ctx.run.symbolic:
        return
    seq = ids.numpy().reshape(n)
    whole = np.isfinite(seq) & (seq == np.floor(seq)) if ids.dtype is dt.float32 else True
    if not np.all(whole) or (seq < 0).any():
        raise KernelUsageError(f"{op}: segment_ids {ids.name} must hold non-negative "
                               "integers")
    dst.write(np.stack(bounds_of(seq)).astype(np.float64))


def bounds_of(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each element's run of equal ids; padding (0) gets (n, -1)."""
    n = seq.size
    pos = np.arange(n)
    first = np.r_[True, seq[1:] != seq[:-1]]
    last = np.r_[seq[:-1] != seq[1:], True]
    starts = np.maximum.accumulate(np.where(first, pos, 0))
    ends = np.minimum.accumulate(np.where(last, pos + 1, n + 1)[::-1])[::-1]
    pad = seq == 0
    return np.where(pad, n, starts), np.where(pad, -1, ends)


__all__ = ["exponential", "range_select", "select_reduce", "sequence_bounds",
           "tensor_scalar_cumulative"]
