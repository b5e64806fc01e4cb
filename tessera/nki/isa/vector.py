"""Vector-engine family instructions (tensor_tensor, tensor_copy, memset, ...).

Most of these also run on GpSimd (and some on Scalar): the engine argument is a hint,
checked where the hardware forbids a combination.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import NO_ATTRS, MemsetAttrs, TensorTensorAttrs
from tessera.nki.errors import DTypeError, EngineAccessError, KernelUsageError
from tessera.nki.isa._common import (
    check_engine_memory,
    check_hbm_free,
    check_one_psum_input,
    check_partitions,
    check_same_layout,
    record,
    resolve_engine,
    tensor_arg,
)
from tessera.nki.isa.dma import copy_values
from tessera.nki.ops import AluOp, OpKind, to_op
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor


def prepare(ctx: CoreContext, op: str, engine: Engine, reads: tuple[NkiTensor, ...],
            writes: tuple[NkiTensor, ...]) -> None:
    """Checks shared by every compute-engine instruction: on-chip, pmax, start, engine ports."""
    every = reads + writes
    check_hbm_free(every, op)
    for t in every:
        check_partitions(ctx, t, t.name, op, engine)
    check_engine_memory(ctx, engine, every, op)


def read_operand(t: NkiTensor, op: AluOp) -> np.ndarray:
    """Operand values: raw integers for bit operations, float32 otherwise."""
    if op.kind is OpKind.BITVEC:
        # bit operations see the raw bits: read as unsigned so right_shift is logical
        raw = t.numpy()
        if raw.dtype.kind == "i":
            raw = raw.view(np.dtype(f"u{raw.dtype.itemsize}"))
        return raw.astype(np.int64)
    return t.read_f32()


def write_result(dst: NkiTensor, values: np.ndarray, op: AluOp) -> None:
    """Store an instruction's result: bit operations wrap to dst's integer width (they work
    on raw bits), everything else is cast with the saturating dtype rules."""
    if op.kind is OpKind.BITVEC and dst.dtype.is_int:
        bits = np.asarray(values).astype(np.int64).astype(dst.dtype.storage)
        dst.write_raw(np.broadcast_to(bits, dst.shape))
    else:
        dst.write(values)


def check_bitvec(op: AluOp, tensors: tuple[NkiTensor, ...], name: str) -> None:
    if op.kind is OpKind.BITVEC:
        for t in tensors:
            if not t.dtype.is_int:
                raise DTypeError(f"{name}: bitwise operator {op.name} needs integer operands; "
                                 f"{t.name} is {t.dtype.name}")


@kernel_api
def tensor_tensor(dst: NkiTensor, data1: NkiTensor, data2: NkiTensor, op: object,
                  engine: object = None, name: str | None = None) -> None:
    """dst = data1 <op> data2, element-wise over equal partitions x elements per partition."""
    opname = "tensor_tensor"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    a = tensor_arg(data1, "data1", opname)
    b = tensor_arg(data2, "data2", opname)
    alu = to_op(op)
    if alu.arity != 2:
        raise EngineAccessError(f"{opname}: op {alu.name} is not a binary operator")
    eng = resolve_engine(engine, Opcode.TENSOR_TENSOR, opname)
    prepare(ctx, opname, eng, (a, b), (dst,))
    check_same_layout(a, b, "data1", "data2", opname)
    check_same_layout(a, dst, "data1", "dst", opname)
    check_one_psum_input(a, b, "data1", "data2", opname)
    check_bitvec(alu, (a, b, dst), opname)
    record(ctx, eng, Opcode.TENSOR_TENSOR, (a, b), (dst,), TensorTensorAttrs(alu.name))
    if ctx.run.symbolic:
        return
    x = read_operand(a, alu).reshape(dst.shape)
    y = read_operand(b, alu).reshape(dst.shape)
    write_result(dst, alu.apply(x, y), alu)


@kernel_api
def tensor_copy(dst: NkiTensor, src: NkiTensor, engine: object = None,
                name: str | None = None, dtype: object = None) -> None:
    """dst = src, element-wise, casting to dst's dtype (PSUM -> SBUF evacuation etc.).

    `dtype` (the 2.26 page's output type, still passed by the vendor's kernels) must be
    dst's dtype when given: the destination decides the type in the current API."""
    opname = "tensor_copy"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    src = tensor_arg(src, "src", opname)
    if dtype is not None and dt.to_dtype(dtype) != dst.dtype:
        raise DTypeError(f"{opname}: dtype={dt.to_dtype(dtype).name} differs from dst "
                         f"{dst.name}'s {dst.dtype.name}; the destination's dtype is the "
                         "output type (allocate dst with the dtype you want)")
    eng = resolve_engine(engine, Opcode.TENSOR_COPY, opname)
    if eng is Engine.SCALAR and ctx.run.limits.version < 3:
        raise EngineAccessError(f"{opname}: the Scalar engine has no tensor_copy on "
                                f"NeuronCore-v2 ({ctx.run.limits.chip}); use the vector or "
                                "gpsimd engine, or nisa.activation with nl.copy")
    prepare(ctx, opname, eng, (src,), (dst,))
    check_same_layout(src, dst, "src", "dst", opname)
    record(ctx, eng, Opcode.TENSOR_COPY, (src,), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    copy_values(dst, src)


@kernel_api
def memset(dst: NkiTensor, value: object, engine: object = None, name: str | None = None) -> None:
    """Fill dst with a constant (cast to dst's dtype)."""
    opname = "memset"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    eng = resolve_engine(engine, Opcode.MEMSET, opname)
    prepare(ctx, opname, eng, (), (dst,))
    if not isinstance(value, int | float | np.number | np.bool_):
        raise KernelUsageError(f"{opname}: value must be a number, got {value!r}")
    # the value is stored with the dtype rules (RNE, saturation), like any engine write
    stored = dt.cast(np.array([value], dtype=np.float64 if isinstance(value, float | np.floating)
                              else np.int64), dst.dtype)[0]
    number = float(stored) if dst.dtype.is_float else int(stored)
    record(ctx, eng, Opcode.MEMSET, (), (dst,), MemsetAttrs(number))
    if not ctx.run.symbolic:
        dst.write_raw(np.full(dst.shape, stored, dtype=dst.dtype.storage))
