"""`nl` operators called as functions, and the experimental nl.load / nl.store helpers.

Inside a kernel, `nl.exp(t)` allocates an SBUF tile and issues the instruction that
computes it (an activation for unary operators, tensor_tensor / tensor_scalar for binary
ones); on the host the same call computes with numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as _ops
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError
from tessera.nki.ops import AluOp, OpKind, register_callable
from tessera.nki.runtime import current, kernel_api, maybe_current
from tessera.nki.tensor import NkiTensor


def call_operator(op: AluOp, args: tuple, dtype: object, kwargs: dict) -> object:
    """Apply an `AluOp` to tensors (issuing an instruction) or to host values."""
    if len(args) != op.arity:
        raise KernelUsageError(f"nl.{op.name} takes {op.arity} operand(s), got {len(args)}")
    tensors = [a for a in args if isinstance(a, NkiTensor)]
    if not tensors or maybe_current() is None:
        if tensors:
            raise KernelUsageError(f"nl.{op.name} on NKI tensors must run inside a kernel")
        with np.errstate(all="ignore"):
            out = op.apply(*[np.asarray(a) for a in args])
        return out.astype(dt.to_dtype(dtype).storage) if dtype is not None else out
    ctx = current()
    first = tensors[0]
    out_dtype = dt.to_dtype(dtype) if dtype is not None else first.dtype
    if len(tensors) == 2:
        out_dtype = dt.to_dtype(dtype) if dtype is not None else dt.promote(
            tensors[0].dtype, tensors[1].dtype)
    result = new_tensor(ctx, first.shape, out_dtype, Buffer.SBUF, None)
    if op.arity == 1:
        if op.kind is OpKind.ACTIVATION:
            isa.activation(result, op, first)
        else:
            isa.tensor_scalar(result, first, op, 0.0)
    elif len(tensors) == 2:
        isa.tensor_tensor(result, args[0], args[1], op)
    else:
        scalar = args[1] if isinstance(args[0], NkiTensor) else args[0]
        isa.tensor_scalar(result, first, op, scalar, reverse0=not isinstance(args[0], NkiTensor))
    return result


@kernel_api
def load(src: NkiTensor, dtype: object = None) -> NkiTensor:
    """Experimental NKI 0.3 helper: DMA an HBM view into a new SBUF tile."""
    ctx = current()
    if not isinstance(src, NkiTensor):
        raise KernelUsageError("nl.load needs an NKI tensor view")
    shape = src.shape if len(src.shape) >= 2 else (1, *src.shape)
    tile = new_tensor(ctx, shape, dtype or src.dtype, Buffer.SBUF, None)
    isa.dma_copy(tile, src)
    return tile


@kernel_api
def store(dst: NkiTensor, value: NkiTensor) -> None:
    """Experimental NKI 0.3 helper: DMA an SBUF tile into an HBM view."""
    isa.dma_copy(dst, value)


def operator(op: AluOp) -> Callable[..., object]:
    """The callable `nl.<name>` of an operator: `nl.exp(t)` issues an instruction inside a
    kernel and computes on the host outside; `op=nl.exp` stands for the `AluOp`."""
    def call(*args: object, dtype: object = None, **kwargs: object) -> object:
        return call_operator(op, args, dtype, kwargs)

    call.__name__ = call.__qualname__ = op.name
    call.__doc__ = f"nl.{op.name}: {op.kind.value} operator of {op.arity} operand(s)."
    register_callable(call, op)
    return call


# every operator's callable face, by name (`tessera.nki.language` exports them)
OPERATORS: dict[str, Callable[..., object]] = {
    name: operator(op) for name, op in _ops.ALL_OPS.items()}
