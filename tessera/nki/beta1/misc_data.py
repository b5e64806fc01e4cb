"""Beta-1 `nl.loop_reduce`, `nl.gather_flattened`, `nl.dropout` and `nl.rand`.

- "nki.language.loop_reduce": `b = nl.loop_reduce(a, op=np.add, loop_indices=[k])` means
  `b = nisa.tensor_tensor(b, a, op)`: the tile being assigned is also op's first input.
  Kernels here run as ordinary Python, so the call reads the statement it is part of: the
  instruction after the call in the kernel's bytecode names the assignment target.
  * `name = nl.loop_reduce(...)` with `name` bound to a tile: one tensor_tensor
    `name = op(name, x)` written in place into that tile, which is returned (so the
    rebinding keeps the same tile, as the compiler keeps one destination).
  * `name = ...` with `name` not yet bound (the first binding): there is no previous
    value, so the op's identity is the accumulator and the result is a copy of x (cast to
    `dtype`), a new tile.
  * `t[...] = nl.loop_reduce(...)`: the assignment issues the call into `t[...]`
    (`tessera.nki.beta1.values`), and there it reads `t[...]` as the accumulator. Used in
    an expression without assignment, it is a copy of x.
  `loop_indices` only informs the compiler's loop optimisations; it is checked (ints or
  loop indices) and otherwise has no effect.
- "nki.language.gather_flattened": per partition, result[p, j...] = data[p].flatten()
  [indices[p, j...]] (one GpSimd gather; out-of-range indices give garbage, as the Beta-2
  form documents); a mask restricts the result's elements and data's partitions.
- "nki.language.dropout": x with each element zeroed with probability `rate` (a number or
  a one-element tile); kept values are not rescaled.
- "nki.language.rand": a new SBUF tile of uniform values in [0, 1).
"""

from __future__ import annotations

import dis
import sys
from numbers import Integral
from types import CodeType, FrameType

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.beta1.masking import plan, run_masked
from tessera.nki.beta1.values import produce, require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.isa.gather import issue_n_gather
from tessera.nki.isa.random import apply_dropout, fill_uniform
from tessera.nki.language_compose import expand_to, tile_arg
from tessera.nki.ops import to_op
from tessera.nki.runtime import _INTERNAL, current, kernel_api
from tessera.nki.tensor import NkiTensor

_NAME_STORES = ("STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL")
_UNBOUND = object()
# (code id, instruction offset) -> the opcode and name of the next instruction
_NEXT: dict[tuple[int, int], tuple[str, object]] = {}


def _kernel_frame() -> FrameType | None:
    """The first frame outside tessera.nki: the kernel line making the call."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
    return frame


def _next_instruction(code: CodeType, lasti: int) -> tuple[str, object]:
    key = (id(code), lasti)
    found = _NEXT.get(key)
    if found is None:
        found = next(((i.opname, i.argval) for i in dis.get_instructions(code)
                      if i.offset > lasti), ("", None))
        _NEXT[key] = found
    return found


def _assigned_name() -> tuple[str | None, object]:
    """(name, its current value or _UNBOUND) when the calling statement is
    `name = nl.loop_reduce(...)`; (None, _UNBOUND) otherwise."""
    frame = _kernel_frame()
    if frame is None:
        return None, _UNBOUND
    opname, name = _next_instruction(frame.f_code, frame.f_lasti)
    if opname not in _NAME_STORES or not isinstance(name, str):
        return None, _UNBOUND
    if opname in ("STORE_FAST", "STORE_DEREF"):
        return name, frame.f_locals.get(name, _UNBOUND)
    scopes = (frame.f_globals,) if opname == "STORE_GLOBAL" else (frame.f_locals,
                                                                    frame.f_globals)
    for scope in scopes:
        if name in scope:
            return name, scope[name]
    return name, _UNBOUND


def _check_loop_indices(loop_indices: object) -> None:
    items = loop_indices if isinstance(loop_indices, tuple | list) else (loop_indices,)
    for i in items:
        if isinstance(i, bool) or not isinstance(i, Integral):
            raise KernelUsageError(f"nl.loop_reduce: loop_indices must be loop indices (ints "
                                   f"from nl.affine_range / range), got {i!r}")


@kernel_api
def loop_reduce(x: object, op: object, loop_indices: object, *, dtype: object = None,
                mask: object = None, **kwargs: object) -> NkiTensor:
    """`b = nl.loop_reduce(x, op, loop_indices, dtype=None, mask=None)`: b = op(b, x) into
    the tile b already holds (see the module docstring for the first binding)."""
    fn = "nl.loop_reduce"
    require_beta1(fn)
    xt = tile_arg(x, "x", "loop_reduce")
    alu = to_op(op, "op")
    if alu.arity != 2:
        raise KernelUsageError(f"{fn}: op={alu.name} is not a binary operator")
    _check_loop_indices(loop_indices)
    want = None if dtype is None else dt.to_dtype(dtype)
    name, acc = _assigned_name()
    if isinstance(acc, NkiTensor):
        if not acc.buffer.on_chip:
            raise KernelUsageError(f"{fn}: the destination {name} is in {acc.buffer.value}; "
                                   "it must be a tile in SBUF or PSUM")
        if acc.shape != xt.shape:
            raise ShapeMismatchError(f"{fn}: the destination {name}{list(acc.shape)} and x "
                                     f"{list(xt.shape)} must have the same shape")
        if want is not None and want != acc.dtype:
            raise DTypeError(f"{fn}: dtype={want} but the destination {name} is "
                             f"{acc.dtype}; the result is written into it")
        run_masked(mask, acc, [xt], lambda d, a: isa.tensor_tensor(d, d, a, alu), fn)
        return acc
    if acc is not _UNBOUND:
        raise KernelUsageError(f"{fn}: the destination {name} holds a "
                               f"{type(acc).__name__}, not a tile; initialise it with "
                               "nl.zeros(...)")
    replays = []  # the first compute makes the fresh tile; a later one is an assignment's

    def compute(dst: NkiTensor, _acc: bool) -> None:
        if replays:  # `t[...] = nl.loop_reduce(...)`: t[...] is the accumulator
            run_masked(mask, dst, [xt], lambda d, a: isa.tensor_tensor(d, d, a, alu), fn)
            return
        replays.append(True)
        run_masked(mask, dst, [xt], lambda d, a: isa.tensor_copy(d, a), fn)

    return produce(xt.shape, want or xt.dtype, Buffer.SBUF, compute)


# ------------------------------------------------------------------ gather_flattened
@kernel_api
def gather_flattened(data: object, indices: object, *, mask: object = None,
                     dtype: object = None, **kwargs: object) -> NkiTensor:
    """`nl.gather_flattened(data, indices, mask=None, dtype=None)`: a new tile of indices'
    shape with result[p, ...] = data[p].flatten()[indices[p, ...]]."""
    fn = "nl.gather_flattened"
    require_beta1(fn)
    d = tile_arg(data, "data", "gather_flattened")
    ids = tile_arg(indices, "indices", "gather_flattened")
    for t, what in ((d, "data"), (ids, "indices")):
        if not 2 <= t.ndim <= 4:
            raise ShapeMismatchError(f"{fn}: {what} {t.name}{list(t.shape)} is {t.ndim}-D; "
                                     "data and indices are 2- to 4-dimensional")
    out_dtype = d.dtype if dtype is None else dt.to_dtype(dtype)
    # a mask selects result elements; data keeps its whole rows, cut to the same partitions
    p = plan(mask, ids.shape, fn)
    rows = p.box[0] if p is not None and p.box is not None else slice(None)

    def gather(dst: NkiTensor, idx: NkiTensor) -> None:
        ctx = current()
        src = d[rows]
        if src.buffer is not Buffer.SBUF:  # the GpSimd engine reads SBUF
            staged = new_tensor(ctx, src.shape, src.dtype, Buffer.SBUF, None)
            isa.tensor_copy(staged, src)
            src = staged
        if dst.dtype == src.dtype:
            issue_n_gather(ctx, fn, dst, src, idx, out_of_range_ok=True)
            return
        raw = new_tensor(ctx, dst.shape, src.dtype, Buffer.SBUF, None)
        issue_n_gather(ctx, fn, raw, src, idx, out_of_range_ok=True)
        isa.tensor_copy(dst, raw)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        run_masked(mask, dst, [ids], gather, fn)

    return produce(ids.shape, out_dtype, Buffer.SBUF, compute)


# ------------------------------------------------------------------ random
@kernel_api
def dropout(x: object, rate: object, *, dtype: object = None, mask: object = None,
            **kwargs: object) -> NkiTensor:
    """`nl.dropout(x, rate, dtype=None, mask=None)`: a new tile, x with each element zeroed
    with probability `rate` (a number, or a tile holding one value)."""
    fn = "nl.dropout"
    require_beta1(fn)
    xt = tile_arg(x, "x", "dropout")
    prob = rate
    if isinstance(rate, NkiTensor):
        if rate.size != 1:
            raise ShapeMismatchError(f"{fn}: rate {rate.name}{list(rate.shape)} must be a "
                                     "scalar or a tile with one element")
        # one rate for every partition: repeated across partitions as a [P, 1] column
        prob = expand_to(rate.reshape((1, 1)), (xt.shape[0], 1), "dropout")
    out_dtype = xt.dtype if dtype is None else dt.to_dtype(dtype)

    def drop(d: NkiTensor, a: NkiTensor, *column: NkiTensor) -> None:
        ctx = current()
        p = column[0] if column else prob  # the [P, 1] rates, cut with the partitions
        if d.dtype == a.dtype:
            apply_dropout(ctx, d, a, p, fn)
            return
        raw = new_tensor(ctx, d.shape, a.dtype, Buffer.SBUF, None)
        apply_dropout(ctx, raw, a, p, fn)
        isa.tensor_copy(d, raw)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        tiles = [xt, prob] if isinstance(prob, NkiTensor) else [xt]
        run_masked(mask, dst, tiles, drop, fn)

    return produce(xt.shape, out_dtype, Buffer.SBUF, compute)


@kernel_api
def rand(shape: object, dtype: object = dt.float32, **kwargs: object) -> NkiTensor:
    """`nl.rand(shape, dtype=float32)`: a new SBUF tile of uniform values in [0, 1)."""
    fn = "nl.rand"
    require_beta1(fn)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)  # type: ignore[arg-type]
    return produce(dims, dt.to_dtype(dtype), Buffer.SBUF,
                   lambda dst, _acc: fill_uniform(current(), dst, fn))


__all__ = ["dropout", "gather_flattened", "loop_reduce", "rand"]
