"""Beta-1 tiles as values: results that become the destination they are assigned to.

In Beta 1 every `nl.*` / `nisa.*` call returns a new tile, and the kernel writes it
somewhere with `t[...] = f(...)` or accumulates it with `psum[...] += nisa.nc_matmul(...)`.
The compiler makes the assignment target the instruction's destination: no copy is issued
("NKI programming model": tiles; "nki.isa.nc_matmul": `+=` accumulates into PSUM, `=`
overwrites). Here a call first computes into a fresh tile and remembers how (`Replay`);
an assignment that follows at once takes the call back and issues it again into the
target, so the stream holds the instruction a destination-passing kernel would issue. The
returned Python object is re-pointed at the target, so a kernel that keeps using it reads
the target, as the compiler's renaming does. Anything else (a tile in another buffer, a
value computed earlier) is copied by a `tensor_copy`, as the compiler does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError, PartitionError
from tessera.nki.isa import _vector_acc, scalar
from tessera.nki.runtime import CoreContext, add_note, current, maybe_current
from tessera.nki.tensor import NkiTensor

# compute(dst, accumulate): issue the call's instructions with `dst` as their destination
Compute = Callable[[NkiTensor, bool], None]


@dataclass(frozen=True)
class Replay:
    """How a Beta-1 result was computed, to issue it again into an assignment's target."""

    ctx: CoreContext
    first: int  # stream position of the call's first instruction
    end: int  # one past its last
    tensors_mark: int  # len(run.tensors) before the call
    compute: Compute
    accumulates: bool  # a matmul: `+=` into PSUM accumulates in the instruction itself
    buffers: tuple[Buffer, ...]  # the buffers an assignment may retarget the call into


def is_beta1() -> bool:
    """True inside a kernel launched through the Beta-1 front end."""
    ctx = maybe_current()
    return ctx is not None and getattr(ctx.run, "beta1", False)


def require_beta1(what: str) -> CoreContext:
    ctx = current()
    if not getattr(ctx.run, "beta1", False):
        raise KernelUsageError(f"{what} is Beta-1 syntax (neuronxcc.nki); in an nki kernel "
                               "pass the destination to the nisa call instead")
    return ctx


def _engine_state(ctx: CoreContext) -> Callable[[], None]:
    """A function putting the engines' reduction registers, Vector accumulators and random
    generators back as they are now (a replayed call must see the state its first issue
    saw: an activation's `reduce` or a dropout mask happens once)."""
    regs = scalar._REDUCE_REGS.get(ctx)
    saved_regs = None if regs is None else regs.copy()
    lanes = _vector_acc._REGS.get(ctx)
    saved_lanes = None if lanes is None else (lanes.values.copy(), lanes.defined.copy())
    saved_rng = {k: np.array(v, copy=True) for k, v in ctx.rng_states.items()}

    def restore() -> None:
        if saved_regs is None:
            scalar._REDUCE_REGS.pop(ctx, None)
        else:
            scalar._REDUCE_REGS[ctx][...] = saved_regs
        if saved_lanes is None:
            _vector_acc._REGS.pop(ctx, None)
        else:
            now = _vector_acc._REGS[ctx]
            now.values[...], now.defined[...] = saved_lanes
        ctx.rng_states.clear()
        ctx.rng_states.update({k: v.copy() for k, v in saved_rng.items()})

    return restore


def produce(shape: tuple[int, ...], dtype: object, buffer: Buffer, compute: Compute,
            accumulates: bool = False, buffers: tuple[Buffer, ...] | None = None
            ) -> NkiTensor:
    """A new tile in `buffer` holding what `compute` writes, assignable without a copy to a
    target in any of `buffers` (default: `buffer` only; the Beta-1 pages let a Vector or
    Scalar engine result be assigned into a PSUM tile)."""
    ctx = current()
    first, mark = len(ctx.stream), len(ctx.run.tensors)
    restore = None if ctx.run.symbolic else _engine_state(ctx)
    out = new_tensor(ctx, shape, dtype, buffer, None)
    compute(out, False)

    def again(dst: NkiTensor, accumulate: bool) -> None:
        if restore is not None:
            restore()
        compute(dst, accumulate)

    out._replay = Replay(ctx, first, len(ctx.stream), mark, again, accumulates,
                         buffers or (buffer,))
    return out


def _retarget(value: NkiTensor, dst: NkiTensor, accumulate: bool) -> bool:
    """Issue `value`'s call again into `dst` (see the module docstring); False when it
    cannot be (not the latest call, another buffer or shape, no accumulating form)."""
    r: Replay | None = value._replay
    ctx = maybe_current()
    if r is None or r.ctx is not ctx or len(ctx.stream) != r.end or r.end == r.first:
        return False
    if accumulate and not r.accumulates:
        return False
    if dst.buffer not in r.buffers or value.shape != dst.shape:
        return False
    del ctx.stream[r.first:]
    ctx.edges = [e for e in ctx.edges if e[0] < r.first and e[1] < r.first]
    ctx.named_calls = [c for c in ctx.named_calls if c[1] < r.first]
    if ctx.no_reorder_last is not None and ctx.no_reorder_last >= r.first:
        ctx.no_reorder_last = None
    tensors = ctx.run.tensors
    tensors[r.tensors_mark:] = [t for t in tensors[r.tensors_mark:] if t.core != ctx.core_id]
    st = dst.storage
    if accumulate and st.pending is not None and dst.size == st.size:
        # a zero PSUM tile the matmul accumulates into from scratch: the zero-fill is the
        # accumulation group's start, not an instruction (memory._psum_zeros)
        st.pending = None
    # `psum += matmul` joins the location's accumulation group as the hardware tracks it
    # (accumulate=None: the group's first matmul overwrites, the next ones add; a kernel
    # need not zero its accumulator, as the vendor's allocated attention kernel does not);
    # `psum[...] = matmul` starts a new group (accumulate=False)
    r.compute(dst, None if accumulate else False)  # type: ignore[arg-type]
    value.storage, value.offset = dst.storage, dst.offset
    value.shape, value.strides = dst.shape, dst.strides
    value._ap = value._np = value._replay = None
    return True


def sbuf_operand(t: NkiTensor, fn: str) -> NkiTensor:
    """`t`, or for a PSUM tile an SBUF copy of it: Beta-1 kernels pass PSUM results (an
    nc_transpose) straight to instructions that read SBUF only (the matmul), and the
    compiler evacuates them first. The copy is a timed Vector-engine instruction, and the
    profile notes it."""
    if t.buffer is not Buffer.PSUM:
        return t
    staged = new_tensor(current(), t.shape, t.dtype, Buffer.SBUF, None)
    isa.tensor_copy(staged, t)
    add_note(f"{fn} read a PSUM tile: copied to SBUF first, as the compiler does")
    return staged


def _same_view(a: NkiTensor, b: NkiTensor) -> bool:
    return (a.storage is b.storage and a.offset == b.offset and a.shape == b.shape
            and a.strides == b.strides)


def _as_tile(value: object, like: NkiTensor, what: str) -> NkiTensor:
    """`value` shaped like `like` for a copy: the same elements, or its axes lined up with
    the target's in order (size-1 axes dropped) and the target's other axes repeated
    (`bf[c, w, i_h, i_w, i_n] = t.reshape((C, 1, kH, kW, 1))`)."""
    if not isinstance(value, NkiTensor):
        raise KernelUsageError(f"{what}: cannot assign {type(value).__name__} to a tile")
    if value.shape == like.shape:
        return value
    if value.size == like.size:
        return value.reshape(like.shape)
    if value.shape[0] == like.shape[0]:
        core = [n for n in value.shape[1:] if n != 1]
        placed, j = [like.shape[0]], 0
        for n in like.shape[1:]:
            if j < len(core) and core[j] == n:
                placed.append(n)
                j += 1
            else:
                placed.append(1)
        if j == len(core):
            out = value.reshape(tuple(placed))
            for d, n in enumerate(like.shape):
                if out.shape[d] != n:
                    out = out.broadcast(d, n)
            return out
    raise KernelUsageError(f"{what}: a {list(value.shape)} value does not fit the "
                           f"{list(like.shape)} target")


def assign(target: NkiTensor, key: object, value: object) -> None:
    """`target[key] = value` (Beta 1)."""
    require_beta1("item assignment into a tile")
    view = target[key]
    if value is view or (isinstance(value, NkiTensor) and _same_view(value, view)):
        return  # `t[k] += x` assigns back the view `__iadd__` updated
    if view.buffer in (Buffer.HBM, Buffer.SHARED_HBM, Buffer.PRIVATE_HBM):
        raise KernelUsageError(f"cannot assign into {target.name} in {view.buffer.value}: "
                               "write HBM with nl.store(dst[...], value=tile)")
    if isinstance(value, NkiTensor):
        if _retarget(value, view, False):
            return
        if value.buffer in (Buffer.HBM, Buffer.SHARED_HBM, Buffer.PRIVATE_HBM):
            raise KernelUsageError(f"cannot assign {value.name} in {value.buffer.value} to a "
                                   "tile: read HBM with nl.load(src[...])")
        isa.tensor_copy(view, _as_tile(value, view, "assignment"))
        return
    if isinstance(value, bool | int | float | np.number):
        _fill(view, value)
        return
    raise KernelUsageError(f"cannot assign {type(value).__name__} to tile {target.name}")


def _fill(view: NkiTensor, value: object) -> None:
    """`t[k] = number`: a memset; one starting at a partition no compute engine can start
    at (a single element of row 1, as the gather_flattened page's example writes) is a DMA
    from a constant, which can write any partition."""
    try:
        isa.memset(view, value)
    except PartitionError:
        ctx = current()
        const = new_tensor(ctx, view.shape, view.dtype, Buffer.HBM, "fill_const")
        if not ctx.run.symbolic:
            const.write(np.full(view.shape, value))
        isa.dma_copy(view, const)


_INPLACE = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide"}


def inplace(target: NkiTensor, opname: str, value: object) -> NkiTensor:
    """`target += value` and friends (Beta 1): a matmul result accumulates into PSUM in the
    matmul itself; anything else is one element-wise instruction into `target`."""
    require_beta1(f"tile operator {opname}=")
    if (opname == "add" and isinstance(value, NkiTensor) and target.buffer is Buffer.PSUM
            and _retarget(value, target, True)):
        return target
    from tessera.nki.beta1 import elementwise  # the operator table lives there

    if (isinstance(value, NkiTensor) and value.buffer is Buffer.PSUM
            and target.buffer is Buffer.PSUM):
        # at most one element-wise input may be in PSUM: the value goes through SBUF first
        staged = new_tensor(current(), value.shape, value.dtype, Buffer.SBUF, None)
        isa.tensor_copy(staged, value)
        value = staged
    elementwise.binary_into(target, _INPLACE[opname], target, value)
    return target


def binary(opname: str, a: object, b: object) -> NkiTensor:
    """`a <op> b` on tiles (Beta 1): the nl function of the operator; `value_tile +
    nl.arange(...)` is an index starting at a run-time value (beta1.dynamic)."""
    require_beta1(f"tile arithmetic ({opname})")
    from tessera.nki.beta1 import elementwise
    from tessera.nki.beta1.dynamic import DynamicIndex
    from tessera.nki.beta1.index import IndexExpr

    if opname == "add" and isinstance(a, NkiTensor) and isinstance(b, IndexExpr):
        return DynamicIndex(a, b)  # type: ignore[return-value]
    if opname == "add" and isinstance(b, NkiTensor) and isinstance(a, IndexExpr):
        return DynamicIndex(b, a)  # type: ignore[return-value]

    return elementwise.binary(opname, a, b)


def unary(opname: str, a: NkiTensor) -> NkiTensor:
    require_beta1(f"tile arithmetic ({opname})")
    from tessera.nki.beta1 import elementwise

    return elementwise.unary(opname, a)


def dtype_of(value: object) -> dt.DType | None:
    return value.dtype if isinstance(value, NkiTensor) else None



