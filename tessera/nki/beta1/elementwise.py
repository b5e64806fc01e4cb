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

import math
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


# comparisons and logical operators give bool tiles unless `dtype` says otherwise
_BOOL_RESULT = frozenset({"equal", "not_equal", "greater", "greater_equal", "less",
                          "less_equal", "logical_and", "logical_or", "logical_xor",
                          "logical_not"})


def _scalar_dtype(x: object) -> dt.DType:
    """A number's type in promotion: numpy scalars keep theirs; a Python int counts as
    int32 and a float as float32 (weakly typed scalars are "the widest type the hardware
    has", "NKI type promotion": int8 + 2 is int32, fp16 * 1.2 is fp32)."""
    if isinstance(x, np.generic):
        return dt.to_dtype(x.dtype)
    return dt.float32 if isinstance(x, float) else dt.int32


def result_dtype(a: object, b: object, dtype: object, opname: str = "") -> dt.DType:
    """`dtype`, else the promoted type of the operands (numbers included)."""
    if dtype is not None:
        return dt.to_dtype(dtype)
    if opname in _BOOL_RESULT:
        return dt.bool_
    out: dt.DType | None = None
    for x in (a, b):
        if x is None:
            continue
        t = x.dtype if isinstance(x, NkiTensor) else _scalar_dtype(x)
        out = t if out is None else dt.promote(out, t)
    return out  # type: ignore[return-value]


def _padded(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    # the partition axis leads: a lower-rank tile covers the leading axes
    return shape + (1,) * (rank - len(shape))


def _shape(a: object, b: object, fn: str) -> tuple[int, ...]:
    """The result shape: numpy broadcasting over partition-first shapes ("nki.language.add":
    [128, 512] + [1, 512], [128, 1] + [1, 512] and [128, 512] + [1, 1] are allowed)."""
    tiles = [x for x in (a, b) if isinstance(x, NkiTensor)]
    if not tiles:
        raise KernelUsageError(f"nl.{fn} needs at least one tile operand")
    if len(tiles) == 1:
        return tiles[0].shape
    x, y = tiles
    if x.shape == y.shape or x.size == y.size and x.shape[0] == y.shape[0]:
        return x.shape
    rank = max(x.ndim, y.ndim)
    try:
        return tuple(np.broadcast_shapes(_padded(x.shape, rank), _padded(y.shape, rank)))
    except ValueError:
        raise KernelUsageError(f"nl.{fn}: tiles of shapes {list(x.shape)} and "
                               f"{list(y.shape)} do not broadcast") from None


def _spread(t: object, shape: tuple[int, ...]) -> object:
    """A tile operand made to cover `shape`: a single partition repeated across partitions
    (one DMA, as `nl.broadcast_to` does: engines cannot read across partitions), size-1
    free axes repeated by a stride-0 view; a [P, 1] column stays a per-partition scalar."""
    if not isinstance(t, NkiTensor) or t.shape == shape or t.size == math.prod(shape):
        return t
    from tessera.nki.beta1.layout import broadcast_to  # layout builds on this module

    padded = _padded(t.shape, len(shape))
    if padded != t.shape:
        t = t.reshape(padded)
    if t.shape[0] == 1 and shape[0] > 1:
        t = broadcast_to(t, shape=(shape[0], *t.shape[1:]))
    if t.size == t.shape[0]:
        return t  # a column: tensor_scalar's vector operand
    for d in range(1, len(shape)):
        if t.shape[d] == 1 and shape[d] > 1:
            t = t.broadcast(d, shape[d])
    return t


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
    out_dtype = result_dtype(a, b, dtype, op.name)
    args = tuple(_spread(x, shape) for x in args)
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
