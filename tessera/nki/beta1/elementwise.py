"""Beta-1 element-wise `nl` functions: `nl.exp(x, dtype=None, mask=None)` returns a tile.

The Beta-1 pages ("nki.language.exp", "nki.language.add", ...) make every element-wise
function a tile-producing call that also stands for its operator in `op=` arguments. A
unary function is one Scalar-engine activation (or a Vector-engine ALU op when it is not
an activation function); a binary one is a Vector-engine tensor_tensor over two tiles of
one shape, or a tensor_scalar when one side is a number or a [P, 1] column (broadcast
along the free axis, as the pages' broadcasting rule allows). The result dtype is `dtype`,
else the inputs' promoted type ("NKI data type promotion"; a Python float makes an integer
tile float32). Masks restrict the instruction (`tessera.nki.beta1.masking`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as _ops
from tessera.nki.beta1.masking import run_masked
from tessera.nki.beta1.values import produce, require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError
from tessera.nki.ops import AluOp, OpKind, register_callable
from tessera.nki.runtime import maybe_current
from tessera.nki.tensor import NkiTensor


def _is_column(t: NkiTensor, like: NkiTensor) -> bool:
    """A [P, 1, ...] tile against a [P, F...] one: a per-partition scalar operand."""
    return (t.shape[0] == like.shape[0] and t.size == t.shape[0]
            and like.size != like.shape[0])


def _number(x: object) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def result_dtype(a: object, b: object, dtype: object) -> dt.DType:
    """`dtype`, else the promoted type of the operands (a number joins as weakly typed)."""
    if dtype is not None:
        return dt.to_dtype(dtype)
    tiles = [x for x in (a, b) if isinstance(x, NkiTensor)]
    out = tiles[0].dtype
    if len(tiles) == 2:
        out = dt.promote(tiles[0].dtype, tiles[1].dtype)
    elif not out.is_float and any(isinstance(x, float | np.floating) for x in (a, b)):
        out = dt.float32
    return out


def _shape(a: object, b: object, fn: str) -> tuple[int, ...]:
    tiles = [x for x in (a, b) if isinstance(x, NkiTensor)]
    if not tiles:
        raise KernelUsageError(f"nl.{fn} needs at least one tile operand")
    if len(tiles) == 1:
        return tiles[0].shape
    x, y = tiles
    if x.shape == y.shape or x.size == y.size and x.shape[0] == y.shape[0]:
        return x.shape
    if _is_column(y, x):
        return x.shape
    if _is_column(x, y):
        return y.shape
    raise KernelUsageError(f"nl.{fn}: tiles of shapes {list(x.shape)} and {list(y.shape)} do "
                           "not broadcast (same shape, or a [P, 1] column against [P, F]; "
                           "repeat partitions with nl.broadcast_to)")


def issue(op: AluOp, dst: NkiTensor, a: object, b: object = None) -> None:
    """One instruction computing `a <op> b` (or `op(a)`) into `dst`."""
    if op.arity == 1:
        if op.kind is OpKind.ACTIVATION:
            isa.activation(dst, op, a)
        else:
            isa.tensor_scalar(dst, a, op, 0.0)
        return
    if isinstance(a, NkiTensor) and isinstance(b, NkiTensor):
        if _is_column(b, a):
            isa.tensor_scalar(dst, a, op, b)
        elif _is_column(a, b):
            isa.tensor_scalar(dst, b, op, a, reverse0=True)
        else:
            isa.tensor_tensor(dst, a, b, op)
        return
    if isinstance(a, NkiTensor):
        isa.tensor_scalar(dst, a, op, b)
    else:
        isa.tensor_scalar(dst, b, op, a, reverse0=True)


def _check_operand(x: object, fn: str) -> None:
    if isinstance(x, NkiTensor):
        if not x.buffer.on_chip:
            raise KernelUsageError(f"nl.{fn}: operand {x.name} is in {x.buffer.value}; load it "
                                   "into SBUF with nl.load first")
    elif not _number(x):
        raise KernelUsageError(f"nl.{fn}: operands are tiles or numbers, got "
                               f"{type(x).__name__}")


def apply(op: AluOp, args: tuple, dtype: object = None, mask: object = None) -> NkiTensor:
    """`nl.<op>(*args, dtype=, mask=)` inside a Beta-1 kernel: a new SBUF tile."""
    if len(args) != op.arity:
        raise KernelUsageError(f"nl.{op.name} takes {op.arity} operand(s), got {len(args)}")
    for x in args:
        _check_operand(x, op.name)
    a = args[0]
    b = args[1] if op.arity == 2 else None
    shape = _shape(a, b, op.name)
    out_dtype = result_dtype(a, b, dtype)
    tiles = [x for x in args if isinstance(x, NkiTensor)]

    def compute(dst: NkiTensor, _acc: bool) -> None:
        def call(d: NkiTensor, *ops: NkiTensor) -> None:
            it = iter(ops)
            issue(op, d, *[next(it) if isinstance(x, NkiTensor) else x for x in args])

        run_masked(mask, dst, tiles, call, f"nl.{op.name}")

    return produce(shape, out_dtype, Buffer.SBUF, compute, buffers=(Buffer.SBUF, Buffer.PSUM))


def binary(opname: str, a: object, b: object) -> NkiTensor:
    """`a <op> b` on tiles: the nl function of the operator."""
    return apply(_ops.ALL_OPS[opname], (a, b))


def unary(opname: str, a: NkiTensor) -> NkiTensor:
    return apply(_ops.ALL_OPS[opname], (a,))


def binary_into(dst: NkiTensor, opname: str, a: object, b: object) -> None:
    """`dst = a <op> b` issued straight into `dst` (in-place operators)."""
    _check_operand(b, opname)
    issue(_ops.ALL_OPS[opname], dst, a, b)


def function(op: AluOp) -> Callable[..., object]:
    """The Beta-1 `nl.<name>`: a tile-producing call inside a kernel, numpy on the host,
    and the operator itself in `op=` arguments."""
    def call(*args: object, dtype: object = None, mask: object = None, **kwargs: object
             ) -> object:
        if kwargs:
            raise KernelUsageError(f"nl.{op.name}: unexpected argument(s) "
                                   f"{', '.join(sorted(kwargs))}")
        if maybe_current() is None or not any(isinstance(x, NkiTensor) for x in args):
            with np.errstate(all="ignore"):
                out = op.apply(*[np.asarray(x) for x in args])
            return out.astype(dt.to_dtype(dtype).storage) if dtype is not None else out
        require_beta1(f"nl.{op.name}")
        return apply(op, args, dtype, mask)

    call.__name__ = call.__qualname__ = op.name
    call.__doc__ = (f"nl.{op.name}(*tiles, dtype=None, mask=None): {op.kind.value} operator of "
                    f"{op.arity} operand(s), returning a new tile (Beta 1).")
    register_callable(call, op)
    return call


# every operator's Beta-1 callable, by name (tessera.nki.beta1.language exports them)
FUNCTIONS: dict[str, Callable[..., object]] = {
    name: function(op) for name, op in _ops.ALL_OPS.items()}
