"""Reductions and scans: tensor_reduce, tensor_scalar_reduce, tensor_tensor_scan,
bn_stats/bn_aggr (Vector engine) and tensor_partition_reduce (GpSimd).

Free-axis reductions run per partition in float32 (bit-vector reductions on raw integer
bits); the result is cast to the destination dtype on write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tessera.nki.attrs import (
    NO_ATTRS,
    PartitionReduceAttrs,
    ScanAttrs,
    TensorReduceAttrs,
    TensorScalarReduceAttrs,
)
from tessera.nki.errors import (
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.isa._common import (
    check_one_psum_input,
    check_same_layout,
    record,
    scalar_or_vector,
    tensor_arg,
)
from tessera.nki.isa.constants import reduce_cmd as ReduceCmd
from tessera.nki.isa.elementwise import (
    Operand,
    alu_op,
    apply_scalar,
    arith_pair,
    check_bitvec_tensors,
    make_operand,
    read_values,
    require_arith,
    write_result,
)
from tessera.nki.isa.vector import prepare
from tessera.nki.ops import AluOp, OpKind, to_op
from tessera.nki.runtime import current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

# Legal reduction operators (NKI's ALU table, "Legal Reduction op" column).
FREE_REDUCE_OPS = frozenset({"add", "subtract", "multiply", "maximum", "minimum",
                             "bitwise_and", "bitwise_or", "bitwise_xor",
                             "logical_and", "logical_or", "logical_xor"})
ACCUMULATE_OPS = frozenset({"add", "multiply", "maximum", "minimum"})
PARTITION_REDUCE_OPS = frozenset({"add", "maximum", "bitwise_or", "bitwise_and",
                                  "bitwise_xor"})
_LOGICAL_UFUNCS = {"logical_and": np.logical_and, "logical_or": np.logical_or,
                   "logical_xor": np.logical_xor}
_BN_STATS_WIDTH = 6  # (count, mean, count*variance) for even and for odd elements
_BN_AGGR_WIDTH = 2  # mean, variance


def reduction_op(value: object, allowed: frozenset[str], what: str, opname: str) -> AluOp:
    """The operator as an AluOp, if `allowed` lists it as a reduction."""
    op = to_op(value, what)
    if op.name not in allowed:
        names = ", ".join(sorted(allowed))
        raise EngineAccessError(f"{opname}: nl.{op.name} cannot reduce; {what} must be one "
                                f"of {names}")
    return op


def reduce_last(op: AluOp, values: np.ndarray) -> np.ndarray:
    """Fold `values` along its last axis with `op` (subtract folds left: x0 - x1 - ...)."""
    logical = _LOGICAL_UFUNCS.get(op.name)
    if logical is not None:
        return logical.reduce(values != 0, axis=-1).astype(np.float32)
    ufunc = op.rule
    assert isinstance(ufunc, np.ufunc), op.name
    with np.errstate(over="ignore", invalid="ignore"):
        return ufunc.reduce(values, axis=-1)


def _check_free(t: NkiTensor, free: int, what: str, opname: str) -> None:
    if t.free_size != free:
        raise ShapeMismatchError(f"{opname}: {what} {t.name}{list(t.shape)} must hold {free} "
                                 f"element(s) per partition, has {t.free_size}")


def _check_rows(a: NkiTensor, b: NkiTensor, what_a: str, what_b: str, opname: str) -> None:
    if a.partitions != b.partitions:
        raise ShapeMismatchError(f"{opname}: {what_a} {a.name}{list(a.shape)} and {what_b} "
                                 f"{b.name}{list(b.shape)} span different partition counts")


HW_RANK = 5  # partition axis + the four free axes of an instruction's access pattern


def _reduced_axes(axis: object, ndim: int, opname: str) -> int:
    """Validate `axis` (trailing free axes only); returns how many trailing axes it names."""
    items: Sequence[object] = axis if isinstance(axis, tuple | list) else (axis,)
    axes = []
    on_hw_pattern = False
    for a in items:
        if not isinstance(a, int | np.integer) or isinstance(a, bool):
            raise KernelUsageError(f"{opname}: axis must be an int or a tuple of ints, "
                                   f"got {axis!r}")
        if ndim <= a < HW_RANK:
            # the instruction's access pattern has a partition axis and up to four free
            # axes ("the reduction axes can contain up to four free axes"); the vendor's
            # kernels number a smaller tile's free axes on that full pattern, right-aligned
            # (axis=[4] on a 3-D tile is its last axis)
            a = a - (HW_RANK - ndim)
            on_hw_pattern = True
        if not -ndim <= a < ndim:
            raise KernelUsageError(f"{opname}: axis {a} out of range for a {ndim}-D tile")
        axes.append(int(a) % ndim)
    if not axes:
        raise KernelUsageError(f"{opname}: axis names no dimension")
    if 0 in axes:
        raise PartitionError(f"{opname}: axis 0 is the partition axis and cannot be reduced "
                             "(use nisa.tensor_partition_reduce, a transpose or a matmul)")
    k = len(axes)
    if sorted(axes) == list(range(ndim - k, ndim)):
        return k  # the current pages: the last contiguous free dims, ending at the final one
    if not on_hw_pattern and sorted(axes) == list(range(1, k + 1)) and len(set(axes)) == k:
        # the earlier page numbers free axes from the most minor: "the reduction axes must
        # contain axis 1 (most-minor)" and be consecutive ([1, 2] = the two innermost), as
        # the vendor's kernels still write it (axis=1 on a 3-D tile reduces the last dim)
        return k
    raise KernelUsageError(f"{opname}: axis={axis!r} must name the trailing free "
                           f"dimensions of the {ndim}-D tile, e.g. ({ndim - 1},) (or, as "
                           "the earlier pages number them, 1..k from the most minor)")


@kernel_api
def tensor_reduce(dst: NkiTensor, op: object, data: NkiTensor, axis: object,
                  negate: bool = False, keepdims: bool = False, name: str | None = None) -> None:
    """Reduce the trailing free axes `axis` of data with `op` (Vector engine), per partition.

    Arithmetic reductions run in float32 (`negate` multiplies the result by -1); bitwise
    ones on integer bits. dst holds the kept free elements (1 per partition if all reduce).
    """
    opname = "tensor_reduce"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    alu = reduction_op(op, FREE_REDUCE_OPS, "op", opname)
    prepare(ctx, opname, Engine.VECTOR, (data,), (dst,))
    k = _reduced_axes(axis, data.ndim, opname)
    kept = math.prod(data.shape[1:data.ndim - k])
    _check_rows(data, dst, "data", "dst", opname)
    _check_free(dst, kept, "dst", opname)
    check_bitvec_tensors(alu, (data, dst), opname)
    if negate and alu.kind is OpKind.BITVEC:
        raise KernelUsageError(f"{opname}: negate applies to arithmetic reductions only, not "
                               f"nl.{alu.name}")
    record(ctx, Engine.VECTOR, Opcode.TENSOR_REDUCE, (data,), (dst,),
           TensorReduceAttrs(alu.name, k, bool(negate), bool(keepdims)))
    if ctx.run.symbolic:
        return
    values = read_values(data, alu).reshape(data.partitions, kept, -1)
    out = reduce_last(alu, values)
    if negate:
        out = -out
    write_result(dst, out, alu)


@kernel_api
def tensor_scalar_reduce(dst: NkiTensor, data: NkiTensor, op0: object, operand0: object,
                         reduce_op: object, reduce_res: NkiTensor, reverse0: bool = False,
                         reduce_cmd: ReduceCmd = ReduceCmd.reset_reduce,
                         name: str | None = None) -> None:
    """dst = data <op0> operand0 (as tensor_scalar, one arithmetic operator) and
    reduce_res[P, 1] = reduce_op over all free elements of that float32 result.

    Only `reduce_cmd=reset_reduce` is modelled: the Vector engine's accumulator registers
    are not carried between instructions.
    """
    opname = "tensor_scalar_reduce"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    res = tensor_arg(reduce_res, "reduce_res", opname)
    alu0 = alu_op(op0, "op0", opname)
    require_arith(alu0, "op0", opname)
    red = reduction_op(reduce_op, ACCUMULATE_OPS, "reduce_op", opname)
    if reduce_cmd is not ReduceCmd.reset_reduce:
        raise KernelUsageError(f"{opname}: reduce_cmd={reduce_cmd!r} is not supported; "
                               "accumulation across instructions is not modelled, use "
                               "reset_reduce")
    p = data.partitions
    opd0 = make_operand(operand0, alu0, p, "operand0", opname, require_f32=True)
    reads = (data, *opd0.tensors)
    prepare(ctx, opname, Engine.VECTOR, reads, (dst, res))
    check_same_layout(data, dst, "data", "dst", opname)
    _check_rows(data, res, "data", "reduce_res", opname)
    _check_free(res, 1, "reduce_res", opname)
    record(ctx, Engine.VECTOR, Opcode.TENSOR_SCALAR_REDUCE, reads, (dst, res),
           TensorScalarReduceAttrs(alu0.name, red.name, opd0.number, bool(reverse0),
                                   reduce_cmd.value),
           free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    out = apply_scalar(alu0, data.read_f32().reshape(p, data.free_size), opd0, reverse0)
    dst.write(out)
    # the reduction sees the engine's float32 values, before the cast to dst.dtype
    res.write(reduce_last(red, out))


@kernel_api
def tensor_tensor_scan(dst: NkiTensor, data0: NkiTensor, data1: NkiTensor, initial: object,
                       op0: object, op1: object, reverse0: bool = False,
                       reverse1: bool = False, name: str | None = None) -> None:
    """Per-partition scan along the (flattened) free axis on the Vector engine:
    state = (data0[i] <op0> state) <op1> data1[i]; dst[i] = state. `initial` is a number or
    a [P, 1] tensor; reverse0 computes state <op0> data0[i], reverse1 data1[i] <op1> x.
    The state is kept in float32 between steps."""
    opname = "tensor_tensor_scan"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    a = tensor_arg(data0, "data0", opname)
    b = tensor_arg(data1, "data1", opname)
    alu0, alu1 = arith_pair(op0, op1, opname)
    for alu, what in ((alu0, "op0"), (alu1, "op1")):
        if alu.arity != 2:
            raise EngineAccessError(f"{opname}: {what}=nl.{alu.name} must be a binary operator")
    number, init_t = scalar_or_vector(initial, a.partitions, opname, "initial")
    init = Operand(number, init_t)
    reads = (a, b, *init.tensors)
    prepare(ctx, opname, Engine.VECTOR, reads, (dst,))
    check_same_layout(a, b, "data0", "data1", opname)
    check_same_layout(a, dst, "data0", "dst", opname)
    check_one_psum_input(a, b, "data0", "data1", opname)
    record(ctx, Engine.VECTOR, Opcode.TENSOR_TENSOR_SCAN, reads, (dst,),
           ScanAttrs(alu0.name, alu1.name, init.number, bool(reverse0), bool(reverse1)))
    if ctx.run.symbolic:
        return
    p, f = a.partitions, a.free_size
    x0 = a.read_f32().reshape(p, f)
    x1 = b.read_f32().reshape(p, f)
    state = np.broadcast_to(np.asarray(init.values(alu0), dtype=np.float32), (p, 1))[:, 0]
    out = np.empty((p, f), dtype=np.float32)
    for i in range(f):
        t = alu0.apply(state, x0[:, i]) if reverse0 else alu0.apply(x0[:, i], state)
        state = alu1.apply(x1[:, i], t) if reverse1 else alu1.apply(t, x1[:, i])
        out[:, i] = state
    dst.write(out)


@kernel_api
def bn_stats(dst: NkiTensor, data: NkiTensor, name: str | None = None) -> None:
    """Per-partition statistics of up to bn_stats_fmax elements (Vector engine): dst holds 6
    values per partition, (count, mean, count*variance) of the even-indexed and then of the
    odd-indexed free elements. Combine one or more with nisa.bn_aggr."""
    opname = "bn_stats"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    prepare(ctx, opname, Engine.VECTOR, (data,), (dst,))
    fmax = ctx.run.limits.bn_stats_fmax
    if data.free_size > fmax:
        raise ShapeMismatchError(f"{opname}: data {data.name}{list(data.shape)} has "
                                 f"{data.free_size} elements per partition; the limit is "
                                 f"bn_stats_fmax={fmax} (split it and combine with bn_aggr)")
    _check_rows(data, dst, "data", "dst", opname)
    _check_free(dst, _BN_STATS_WIDTH, "dst", opname)
    record(ctx, Engine.VECTOR, Opcode.BN_STATS, (data,), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    x = data.read_f32().reshape(data.partitions, data.free_size)
    out = np.zeros((data.partitions, _BN_STATS_WIDTH), dtype=np.float32)
    for k, part in enumerate((x[:, 0::2], x[:, 1::2])):
        n = part.shape[1]
        if n == 0:  # a 1-element row has no odd elements: count 0, mean 0, M2 0
            continue
        mean = part.mean(axis=1, dtype=np.float32)
        out[:, 3 * k] = n
        out[:, 3 * k + 1] = mean
        out[:, 3 * k + 2] = np.square(part - mean[:, None]).sum(axis=1, dtype=np.float32)
    dst.write(out)


@kernel_api
def bn_aggr(dst: NkiTensor, data: NkiTensor, name: str | None = None) -> None:
    """Combine (count, mean, count*variance) triples from bn_stats into dst[P, 2] =
    (mean, population variance) per partition (Vector engine, float32)."""
    opname = "bn_aggr"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    prepare(ctx, opname, Engine.VECTOR, (data,), (dst,))
    if data.free_size % 3:
        raise ShapeMismatchError(f"{opname}: data {data.name}{list(data.shape)} has "
                                 f"{data.free_size} elements per partition; bn_stats output "
                                 "comes in (count, mean, count*variance) triples, a multiple "
                                 "of 3")
    _check_rows(data, dst, "data", "dst", opname)
    _check_free(dst, _BN_AGGR_WIDTH, "dst", opname)
    record(ctx, Engine.VECTOR, Opcode.BN_AGGR, (data,), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    s = data.read_f32().reshape(data.partitions, -1, 3)
    n, mean, m2 = s[..., 0], s[..., 1], s[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        total = n.sum(axis=1)
        mu = (n * mean).sum(axis=1) / total
        # Chan et al.: M2 = sum M2_i + sum n_i (mean_i - mean)^2
        spread = (n * np.square(mean - mu[:, None])).sum(axis=1)
        var = (m2.sum(axis=1) + spread) / total
    dst.write(np.stack([mu, var], axis=1).astype(np.float32))


@kernel_api
def tensor_partition_reduce(dst: NkiTensor, op: object, data: NkiTensor,
                            name: str | None = None) -> None:
    """Reduce data across its partitions on the GpSimd engine: dst[1, ...] holds, for each
    free element, op over all partitions (add, maximum, bitwise and/or/xor)."""
    opname = "tensor_partition_reduce"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    alu = reduction_op(op, PARTITION_REDUCE_OPS, "op", opname)
    prepare(ctx, opname, Engine.GPSIMD, (data,), (dst,))
    if dst.partitions != 1:
        raise ShapeMismatchError(f"{opname}: dst {dst.name}{list(dst.shape)} must have one "
                                 f"partition, has {dst.partitions}")
    _check_free(dst, data.free_size, "dst", opname)
    check_bitvec_tensors(alu, (data, dst), opname)
    record(ctx, Engine.GPSIMD, Opcode.TENSOR_PARTITION_REDUCE, (data,), (dst,),
           PartitionReduceAttrs(alu.name))
    if ctx.run.symbolic:
        return
    values = read_values(data, alu).reshape(data.partitions, data.free_size)
    write_result(dst, reduce_last(alu, values.T), alu)
