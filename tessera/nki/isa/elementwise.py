"""Element-wise instructions with broadcast operands: tensor_scalar, scalar_tensor_tensor,
reciprocal and tensor_copy_predicated.

Arithmetic operators compute in float32 and cast on write; bit-vector operators work on the
raw integer bit patterns and wrap to the destination width (no float round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import (
    NO_ATTRS,
    PredicatedCopyAttrs,
    ScalarTensorTensorAttrs,
    TensorScalarAttrs,
)
from tessera.nki.errors import (
    DTypeError,
    EngineAccessError,
    KernelUsageError,
)
from tessera.nki.isa._common import (
    check_one_psum_input,
    check_same_layout,
    record,
    resolve_engine,
    scalar_or_vector,
    tensor_arg,
)
from tessera.nki.isa.vector import prepare
from tessera.nki.ops import AluOp, OpKind, to_op
from tessera.nki.runtime import current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

# Unary operators the ALUs implement (the operand must then be None or 0); every other
# unary operator is an activation function and belongs to nisa.activation.
UNARY_ALU_OPS = frozenset({"abs", "rsqrt", "reciprocal", "relu", "square", "logical_not",
                           "invert"})
# The Scalar engine runs tensor_scalar only as its scale/bias pipeline.
_SCALAR_ENGINE_PAIRS = frozenset({("multiply", "add"), ("multiply", None), ("add", None)})


@dataclass(frozen=True)
class Operand:
    """A tensor_scalar-style operand: a compile-time number or a [P, 1] tensor (or none,
    for unary operators)."""

    number: float | int | None
    tensor: NkiTensor | None

    def values(self, op: AluOp) -> np.ndarray | float | int:
        """Broadcastable values against a [P, F] block (functional mode only)."""
        if self.tensor is not None:
            return read_values(self.tensor, op).reshape(-1, 1)
        return 0 if self.number is None else self.number

    @property
    def tensors(self) -> tuple[NkiTensor, ...]:
        return () if self.tensor is None else (self.tensor,)


def alu_op(value: object, what: str, opname: str) -> AluOp:
    """An operator the Vector/GpSimd ALU can run (binary, or one of the unary ALU ops)."""
    op = to_op(value, what)
    if op.arity == 1 and op.name not in UNARY_ALU_OPS:
        raise EngineAccessError(f"{opname}: {what}=nl.{op.name} is an activation function, not "
                                "an ALU operator; use nisa.activation for it")
    return op


def read_values(t: NkiTensor, op: AluOp) -> np.ndarray:
    """Operand values: float32, or for bit-vector operators the raw bit patterns as int64."""
    if op.kind is not OpKind.BITVEC:
        return t.read_f32()
    raw = t.numpy()
    # reinterpret signed storage as unsigned so shifts and inversion act on the bits
    unsigned = np.dtype(f"u{raw.dtype.itemsize}")
    return raw.view(unsigned).astype(np.int64)


def write_result(dst: NkiTensor, values: np.ndarray, op: AluOp) -> None:
    """Store a result: cast (RNE/saturate) for arithmetic, wrap bits for bit-vector ops."""
    if op.kind is not OpKind.BITVEC:
        dst.write(values)
        return
    target = dst.numpy()
    width = np.dtype(f"u{target.dtype.itemsize}")
    bits = np.asarray(values, dtype=np.int64).reshape(dst.shape).astype(width)
    target[...] = bits.view(target.dtype)
    if dst.storage.acc is not None:
        dst.acc_mask()[...] = False


def make_operand(value: object, op: AluOp, partitions: int, what: str, opname: str,
                 require_f32: bool) -> Operand:
    """Validate one scalar/vector operand of `op` (a number or a [P, 1] tensor)."""
    if op.arity == 1:
        if value is not None and not (isinstance(value, int | float | np.number) and value == 0):
            raise KernelUsageError(f"{opname}: {what} must be None or 0 for the unary operator "
                                   f"nl.{op.name}, got {value!r}")
        return Operand(None, None)
    if value is None:
        raise KernelUsageError(f"{opname}: {what} is required for the binary operator "
                               f"nl.{op.name}")
    number, tensor = scalar_or_vector(value, partitions, opname, what)
    if tensor is not None:
        if op.kind is OpKind.BITVEC and not tensor.dtype.is_int:
            raise DTypeError(f"{opname}: {what} {tensor.name} is {tensor.dtype.name}; bitwise "
                             f"operator nl.{op.name} needs integer operands")
        if op.kind is not OpKind.BITVEC and require_f32 and tensor.dtype is not dt.float32:
            raise DTypeError(f"{opname}: {what} {tensor.name} is {tensor.dtype.name}; vector "
                             "operands of arithmetic operators must be float32")
        return Operand(None, tensor)
    assert isinstance(number, float)
    if op.kind is OpKind.BITVEC:
        if not number.is_integer():
            raise DTypeError(f"{opname}: {what}={value!r} must be an integer for the bitwise "
                             f"operator nl.{op.name}")
        return Operand(int(number), None)
    return Operand(float(np.float32(number)), None)


def apply_scalar(op: AluOp, x: np.ndarray, operand: Operand, reverse: bool) -> np.ndarray:
    """`x op operand` (or `operand op x` when reversed); unary operators ignore the operand."""
    if op.arity == 1:
        return op.apply(x)
    y = operand.values(op)
    return op.apply(y, x) if reverse else op.apply(x, y)


def check_bitvec_tensors(op: AluOp, tensors: tuple[NkiTensor, ...], opname: str) -> None:
    """Bit-vector operators treat elements as bit patterns: integer dtypes only."""
    if op.kind is not OpKind.BITVEC:
        return
    for t in tensors:
        if not t.dtype.is_int:
            raise DTypeError(f"{opname}: bitwise operator nl.{op.name} needs integer tensors; "
                             f"{t.name} is {t.dtype.name}")


def require_arith(op: AluOp, what: str, opname: str) -> None:
    if op.kind is OpKind.BITVEC:
        raise EngineAccessError(f"{opname}: {what}=nl.{op.name} is a bitwise operator; this "
                                "instruction takes arithmetic operators only")


def arith_pair(op0: object, op1: object, opname: str) -> tuple[AluOp, AluOp]:
    """op0 and op1 of a two-operator instruction that takes arithmetic operators only."""
    alu0, alu1 = alu_op(op0, "op0", opname), alu_op(op1, "op1", opname)
    require_arith(alu0, "op0", opname)
    require_arith(alu1, "op1", opname)
    return alu0, alu1


@kernel_api
def tensor_scalar(dst: NkiTensor, data: NkiTensor, op0: object, operand0: object,
                  reverse0: bool = False, op1: object = None, operand1: object = None,
                  reverse1: bool = False, engine: object = None, name: str | None = None) -> None:
    """dst = (data <op0> operand0) <op1> operand1, operands being numbers or [P, 1] tensors
    broadcast along the free axis; `reverse0/1` put the operand on the left-hand side.

    Both operators must be arithmetic or both bitwise (Vector engine, integer dtypes). The
    Scalar engine runs only multiply/add, multiply or add; GpSimd cannot touch PSUM.
    """
    opname = "tensor_scalar"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    alu0 = alu_op(op0, "op0", opname)
    alu1 = alu_op(op1, "op1", opname) if op1 is not None else None
    if alu1 is None and operand1 is not None:
        raise KernelUsageError(f"{opname}: operand1 is given but op1 is None")
    bitvec = alu0.kind is OpKind.BITVEC
    if alu1 is not None and (alu1.kind is OpKind.BITVEC) != bitvec:
        raise EngineAccessError(f"{opname}: op0=nl.{alu0.name} and op1=nl.{alu1.name} must both "
                                "be bitwise or both arithmetic")
    eng = resolve_engine(engine, Opcode.TENSOR_SCALAR, opname)
    if bitvec and eng is not Engine.VECTOR:
        raise EngineAccessError(f"{opname}: bitwise operators run on the vector engine only, "
                                f"not {eng.value}")
    pair = (alu0.name, alu1.name if alu1 is not None else None)
    if eng is Engine.SCALAR and pair not in _SCALAR_ENGINE_PAIRS:
        raise EngineAccessError(f"{opname}: the scalar engine supports only (multiply, add), "
                                f"(multiply, None) and (add, None); got {pair}")
    p = data.partitions
    opd0 = make_operand(operand0, alu0, p, "operand0", opname, require_f32=True)
    opd1 = (make_operand(operand1, alu1, p, "operand1", opname, require_f32=True)
            if alu1 is not None else Operand(None, None))
    reads = (data, *opd0.tensors, *opd1.tensors)
    prepare(ctx, opname, eng, reads, (dst,))
    check_same_layout(data, dst, "data", "dst", opname)
    check_bitvec_tensors(alu0, (data, dst), opname)
    record(ctx, eng, Opcode.TENSOR_SCALAR, reads, (dst,),
           TensorScalarAttrs(alu0.name, pair[1], opd0.number, opd1.number, bool(reverse0),
                             bool(reverse1)),
           free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    x = read_values(data, alu0).reshape(p, data.free_size)
    out = apply_scalar(alu0, x, opd0, reverse0)
    if alu1 is not None:
        out = apply_scalar(alu1, out, opd1, reverse1)
    write_result(dst, out, alu0)


@kernel_api
def scalar_tensor_tensor(dst: NkiTensor, data: NkiTensor, op0: object, operand0: object,
                         op1: object, operand1: NkiTensor, reverse0: bool = False,
                         reverse1: bool = False, engine: object = None,
                         name: str | None = None) -> None:
    """dst = (data <op0> operand0) <op1> operand1 on the Vector engine: operand0 is a number
    or [P, 1] tensor, operand1 a tensor shaped like data. Arithmetic operators only."""
    opname = "scalar_tensor_tensor"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    other = tensor_arg(operand1, "operand1", opname)
    alu0, alu1 = arith_pair(op0, op1, opname)
    if alu1.arity != 2:
        raise EngineAccessError(f"{opname}: op1=nl.{alu1.name} must be a binary operator")
    eng = resolve_engine(engine, Opcode.SCALAR_TENSOR_TENSOR, opname)
    p = data.partitions
    opd0 = make_operand(operand0, alu0, p, "operand0", opname, require_f32=False)
    reads = (data, *opd0.tensors, other)
    prepare(ctx, opname, eng, reads, (dst,))
    check_same_layout(data, other, "data", "operand1", opname)
    check_same_layout(data, dst, "data", "dst", opname)
    check_one_psum_input(data, other, "data", "operand1", opname)
    record(ctx, eng, Opcode.SCALAR_TENSOR_TENSOR, reads, (dst,),
           ScalarTensorTensorAttrs(alu0.name, alu1.name, opd0.number, bool(reverse0),
                                   bool(reverse1)))
    if ctx.run.symbolic:
        return
    f = data.free_size
    tmp = apply_scalar(alu0, data.read_f32().reshape(p, f), opd0, reverse0)
    y = other.read_f32().reshape(p, f)
    dst.write(alu1.apply(y, tmp) if reverse1 else alu1.apply(tmp, y))


@kernel_api
def reciprocal(dst: NkiTensor, data: NkiTensor, engine: object = None,
               name: str | None = None) -> None:
    """dst = 1.0 / data, element-wise in float32 on the Vector engine."""
    opname = "reciprocal"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    data = tensor_arg(data, "data", opname)
    eng = resolve_engine(engine, Opcode.RECIPROCAL, opname)
    prepare(ctx, opname, eng, (data,), (dst,))
    check_same_layout(data, dst, "data", "dst", opname)
    record(ctx, eng, Opcode.RECIPROCAL, (data,), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    with np.errstate(divide="ignore"):
        dst.write(np.float32(1.0) / data.read_f32())


@kernel_api
def tensor_copy_predicated(dst: NkiTensor, src: object, predicate: NkiTensor,
                           reverse_pred: bool = False, name: str | None = None) -> None:
    """Copy src (a tensor, or a number broadcast to every element) into dst where predicate
    is nonzero (zero when `reverse_pred`); other dst elements keep their values.

    Vector engine. predicate is an unsigned integer (or bool) tile; src and dst share a
    dtype (the copy is bit-exact); src and predicate cannot both be in PSUM.
    """
    opname = "tensor_copy_predicated"
    ctx = current()
    dst = tensor_arg(dst, "dst", opname)
    pred = tensor_arg(predicate, "predicate", opname)
    src_t = src if isinstance(src, NkiTensor) else None
    if src_t is None and not isinstance(src, int | float | np.number):
        raise KernelUsageError(f"{opname}: src must be a tensor or a number, got "
                               f"{type(src).__name__}")
    reads = (pred,) if src_t is None else (src_t, pred)
    prepare(ctx, opname, Engine.VECTOR, reads, (dst,))
    check_same_layout(pred, dst, "predicate", "dst", opname)
    if src_t is not None:
        check_same_layout(src_t, dst, "src", "dst", opname)
        if src_t.dtype != dst.dtype:
            raise DTypeError(f"{opname}: src {src_t.name} is {src_t.dtype.name} but dst "
                             f"{dst.name} is {dst.dtype.name}; they must match")
        check_one_psum_input(src_t, pred, "src", "predicate", opname)
    if pred.dtype.kind not in (dt.DTypeKind.UINT, dt.DTypeKind.BOOL):
        raise DTypeError(f"{opname}: predicate {pred.name} is {pred.dtype.name}; it must be "
                         "uint8, uint16 or uint32")
    number = None if src_t is not None else float(src)  # type: ignore[arg-type]
    record(ctx, Engine.VECTOR, Opcode.TENSOR_COPY_PREDICATED, reads, (dst,),
           PredicatedCopyAttrs(bool(reverse_pred), number))
    if ctx.run.symbolic:
        return
    mask = (pred.numpy() != 0).reshape(dst.shape)
    if reverse_pred:
        mask = ~mask
    target = dst.numpy()
    if src_t is not None:
        values = src_t.numpy().reshape(dst.shape)
    else:
        values = np.broadcast_to(dt.cast(np.float32(number), dst.dtype), dst.shape)
    target[mask] = values[mask]
    if dst.storage.acc is not None:
        dst.acc_mask()[mask] = False

