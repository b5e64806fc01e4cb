"""Scalar-engine (ACT) instructions: activation and activation_reduce.

The Scalar engine computes `op(data * scale + bias)` in float32 and casts on write. It also
owns 128 per-lane reduction registers (`reduce_regs`) that `reduce_cmd` resets, accumulates
into or leaves alone; passing `reduce_res` reads them out. The registers persist across
instructions of one core, so they are modelled per core here, starting at zero.
"""

from __future__ import annotations

import weakref

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import ActivationAttrs
from tessera.nki.errors import (
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.isa._common import (
    check_partitions,
    check_same_layout,
    record,
    require_on_chip,
    scalar_or_vector,
    tensor_arg,
)
from tessera.nki.isa.constants import reduce_cmd as ReduceCmd
from tessera.nki.isa.vector import prepare
from tessera.nki.ops import AluOp, OpKind, add, to_op
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

# One register file per core context; weak keys so a finished launch frees its state.
_REDUCE_REGS: weakref.WeakKeyDictionary[CoreContext, np.ndarray] = weakref.WeakKeyDictionary()

_RESETS = (ReduceCmd.reset, ReduceCmd.reset_reduce)
_ACCUMULATES = (ReduceCmd.reduce, ReduceCmd.reset_reduce)


def _reduce_regs(ctx: CoreContext) -> np.ndarray:
    regs = _REDUCE_REGS.get(ctx)
    if regs is None:
        regs = np.zeros(ctx.run.limits.pmax, dtype=np.float32)
        _REDUCE_REGS[ctx] = regs
    return regs


def _activation_op(op: object, name: str) -> AluOp:
    """`op` must be a unary activation function (nl.exp, nl.copy, nl.gelu, ...)."""
    alu = to_op(op)
    if alu.arity != 1 or alu.kind is not OpKind.ACTIVATION:
        raise EngineAccessError(f"{name}: op {alu.name} is not an activation function; the "
                                "Scalar engine applies unary activations (nl.exp, nl.copy, "
                                "nl.gelu, ...). Use tensor_tensor/tensor_scalar for others")
    return alu


def _reduce_op(reduce_op: object, name: str) -> AluOp | None:
    if reduce_op is None:
        return None
    alu = to_op(reduce_op, "reduce_op")
    # The ACT reduction registers can only sum (docs: "reduce_op must be nl.add"); max/min
    # need a separate tensor_reduce (or activate2 on NeuronCore-v4).
    if alu is not add:
        raise EngineAccessError(f"{name}: reduce_op={alu.name} is not supported; the Scalar "
                                "engine's reduction registers only add (reduce_op=nl.add). "
                                "Use nisa.tensor_reduce on the output for max/min")
    return alu


def _operand(ctx: CoreContext, value: object, partitions: int, name: str, what: str,
             engine_version: int) -> tuple[float | None, NkiTensor | None]:
    """scale/bias: a number or a [P, 1] tensor in SBUF/PSUM; (number, tensor)."""
    number, tensor = scalar_or_vector(value, partitions, name, what)
    if tensor is not None:
        require_on_chip(tensor, what, name)
        check_partitions(ctx, tensor, what, name, Engine.SCALAR)
        if what == "scale" and tensor.dtype != dt.float32:
            raise DTypeError(f"{name}: scale {tensor.name} is {tensor.dtype.name}; a scale "
                             "vector must be float32")
        if what == "bias" and tensor.dtype == dt.tfloat32:
            raise DTypeError(f"{name}: bias {tensor.name} may not be tfloat32")
    elif what == "bias" and engine_version < 3 and number:
        raise EngineAccessError(f"{name}: a constant bias ({number}) needs NeuronCore-v3 or "
                                "later; on NeuronCore-v2 pass bias as a [P, 1] tensor")
    return number, tensor  # type: ignore[return-value]


def _activate(opname: str, opcode: Opcode, dst: object, op: object, data: object,
              bias: object, scale: object, reduce_op: object, reduce_res: object,
              cmd: object) -> None:
    """Shared body of activation and activation_reduce."""
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    alu = _activation_op(op, opname)
    red = _reduce_op(reduce_op, opname)
    if not isinstance(cmd, ReduceCmd):
        raise KernelUsageError(f"{opname}: reduce_cmd must be a nisa.reduce_cmd member, got "
                               f"{cmd!r}")
    if cmd is ReduceCmd.load_reduce:  # activation has no operand that gives the loaded value
        raise KernelUsageError(f"{opname}: reduce_cmd=load_reduce needs a value to load and "
                               "activation takes none; use reset_reduce or reduce")
    if cmd in _ACCUMULATES and red is None:
        raise KernelUsageError(f"{opname}: reduce_cmd={cmd.value} accumulates, so it needs "
                               "reduce_op=nl.add")
    res = None if reduce_res is None else tensor_arg(reduce_res, "reduce_res", opname)
    p = data.partitions
    if res is not None and (res.partitions < p or res.free_size != 1):
        raise ShapeMismatchError(f"{opname}: reduce_res {res.name}{list(res.shape)} must be "
                                 f"[{p}, 1] (one value per partition of data)")
    if res is not None and res.partitions > p:
        # the page asks for data's partition count; the vendor's kernels pass a full-height
        # column for a partial last tile: the registers of data's p lanes land in its first
        # p rows, and the rest is left alone
        res = res[0:p]
    writes = (dst,) if res is None else (dst, res)
    prepare(ctx, opname, Engine.SCALAR, (data,), writes)
    check_same_layout(data, dst, "data", "dst", opname)
    version = ctx.run.limits.version
    scale_num, scale_t = _operand(ctx, scale, p, opname, "scale", version)
    bias_num, bias_t = _operand(ctx, 0.0 if bias is None else bias, p, opname, "bias",
                                version)
    reads = (data,) + tuple(t for t in (scale_t, bias_t) if t is not None)
    record(ctx, Engine.SCALAR, opcode, reads, writes,
           ActivationAttrs(alu.name, None if red is None else red.name, cmd.value,
                           res is not None, scale_num, bias_num),
           partitions=p, free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    x = data.read_f32().reshape(p, data.free_size)
    s = scale_t.read_f32().reshape(p, 1) if scale_t is not None else np.float32(scale_num)
    b = bias_t.read_f32().reshape(p, 1) if bias_t is not None else np.float32(bias_num)
    with np.errstate(over="ignore", invalid="ignore"):
        y = alu.apply((x * s + b).astype(np.float32))
    regs = _reduce_regs(ctx)
    if cmd in _RESETS:
        regs[:p] = 0.0
    if cmd in _ACCUMULATES:
        regs[:p] += np.add.reduce(y, axis=1, dtype=np.float32)
    dst.write(y.reshape(dst.shape))
    if res is not None:
        res.write(regs[:p].copy().reshape(res.shape))


@kernel_api
def activation(dst: NkiTensor, op: object, data: NkiTensor, bias: object = None,
               scale: object = 1.0, reduce_op: object = None, reduce_res: object = None,
               reduce_cmd: ReduceCmd = ReduceCmd.idle, name: str | None = None) -> None:
    """dst = op(data * scale + bias) on the Scalar engine, computed in float32.

    `scale` is a number or a [P, 1] float32 tensor; `bias` a [P, 1] tensor or (NeuronCore-v3+)
    a number. `reduce_cmd` drives the per-lane reduction registers: `reset` zeroes them,
    `reduce` adds the free-axis sum of the activated values, `reset_reduce` does both,
    `idle` leaves them. When `reduce_res` ([P, 1]) is given it receives the registers after
    the update, so `reduce_cmd=reset_reduce` gives the plain row sum.
    """
    _activate("activation", Opcode.ACTIVATION, dst, op, data, bias, scale, reduce_op,
              reduce_res, reduce_cmd)


@kernel_api
def activation_reduce(dst: NkiTensor, op: object, data: NkiTensor, reduce_op: object,
                      reduce_res: NkiTensor, bias: object = None, scale: object = 1.0,
                      name: str | None = None) -> None:
    """activation plus reduce_res = reduce_op(result) over the free axes (reduce_op=nl.add).

    Same as `activation(..., reduce_cmd=reset_reduce, reduce_res=reduce_res)`: the registers
    are reset, loaded with the row sums, and read out into `reduce_res`.
    """
    if reduce_res is None:
        raise KernelUsageError("activation_reduce: reduce_res is required (a [P, 1] tensor)")
    if reduce_op is None:
        raise KernelUsageError("activation_reduce: reduce_op is required (nl.add)")
    _activate("activation_reduce", Opcode.ACTIVATION_REDUCE, dst, op, data, bias, scale,
              reduce_op, reduce_res, ReduceCmd.reset_reduce)
