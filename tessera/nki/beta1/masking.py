"""Beta-1 masks applied to an instruction.

The Beta-1 pages ("NKI programming model": masking; "nki.language.load", "store" and every
`mask=` parameter) define a mask as a predicate over the instruction's index space: the
instruction computes and writes only where it holds, elements where it does not are left
untouched, and their indices may lie outside the tensor (the ragged last tile).

The compiler turns a mask into a smaller instruction where the predicate bounds each index
(`i * 128 + i_p < n` shortens the partition range): here the instruction runs over the
bounding box of the true elements, so the stream and the timing see the shorter access. A
mask that is not a box inside that bound (a triangle, `i_p >= i_f`) keeps the box for
timing; the elements it excludes get their previous values back, as the predicated
hardware instruction leaves them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tessera.nki.beta1.index import Mask
from tessera.nki.errors import KernelUsageError
from tessera.nki.tensor import NkiTensor


@dataclass(frozen=True)
class MaskPlan:
    """A mask over an index space: the true elements' bounding box, and the predicate
    inside the box where it is not all true (None when the box is exact)."""

    space: tuple[int, ...]
    box: tuple[slice, ...] | None  # None: nothing is true, the instruction is skipped
    residual: np.ndarray | None


def plan(mask: object, space: tuple[int, ...], fn: str,
         layout: tuple[int, ...] | None = None) -> MaskPlan | None:
    """The plan of `mask` over `space` (None for no mask or an all-true one). `layout`
    names the iterator of each axis of `space` when a tile of it was indexed with them;
    otherwise the mask applies by position (its partition iterator covers axis 0)."""
    if mask is None:
        return None
    if isinstance(mask, bool | np.bool_):
        values = np.full(space, bool(mask))
    elif isinstance(mask, Mask):
        named = mask.over(layout) if layout is not None and len(layout) == len(space) \
            else None
        values = named if named is not None else mask.values
        while values.ndim > len(space) and values.shape[-1] == 1:
            values = values.reshape(values.shape[:-1])
    else:
        raise KernelUsageError(f"{fn}: mask must be a predicate over nl.arange/nl.mgrid "
                               f"indices (e.g. i_p < n), got {type(mask).__name__}")
    if values.ndim > len(space):
        raise KernelUsageError(f"{fn}: a mask over {values.ndim} axes does not fit the "
                               f"{len(space)}-D index space {list(space)}")
    # the partition axis comes first: a mask with fewer axes covers the leading ones
    values = values.reshape(values.shape + (1,) * (len(space) - values.ndim))
    try:
        full = np.broadcast_to(values, space)
    except ValueError:
        raise KernelUsageError(f"{fn}: mask of shape {list(mask.shape)} does not match the "
                               f"index space {list(space)}") from None
    if full.all():
        return None
    if not full.any():
        return MaskPlan(space, None, None)
    box = []
    for axis in range(len(space)):
        others = tuple(a for a in range(len(space)) if a != axis)
        hits = np.flatnonzero(full.any(axis=others) if others else full)
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    inner = full[tuple(box)]
    return MaskPlan(space, tuple(box), None if inner.all() else inner)


def _layout(space: tuple[int, ...], dst: object, operands: Sequence[object]
            ) -> tuple[int, ...] | None:
    """The iterators of the index space, from a tile of that shape indexed with them."""
    for t in (dst, *operands):
        ids = getattr(t, "_vars", None)
        if ids is not None and t.shape == space:  # type: ignore[attr-defined]
            return ids
    return None


def restrict(t: object, p: MaskPlan) -> object:
    """`t` cut to the plan's box along every axis it shares with the index space (same
    position, same size); other axes (size-1 scalars, reduced axes) are kept whole."""
    if not isinstance(t, NkiTensor) or p.box is None:
        return t
    key = []
    for axis, n in enumerate(t.shape):
        if axis < len(p.space) and n == p.space[axis]:
            key.append(p.box[axis])
        else:
            key.append(slice(None))
    return t[tuple(key)]


def run_masked(mask: object, dst: NkiTensor, operands: Sequence[object],
               call: Callable[..., object], fn: str,
               space: tuple[int, ...] | None = None) -> None:
    """Issue `call(dst, *operands)` under `mask` (over `space`, default dst's shape)."""
    space = space if space is not None else dst.shape
    p = plan(mask, space, fn, _layout(space, dst, operands))
    if p is None:
        call(dst, *operands)
        return
    if p.box is None:
        return  # every element is masked out: no instruction
    d = restrict(dst, p)
    ops = [restrict(o, p) for o in operands]
    saved = None
    if p.residual is not None and d.storage.array is not None:
        if d.shape != p.residual.shape:
            raise KernelUsageError(f"{fn}: a mask that is not a box (e.g. i_p >= i_f) must "
                                   "cover the destination's index space exactly; this "
                                   "destination has another shape")
        saved = d.numpy().copy()
    call(d, *ops)
    if saved is not None:
        keep = ~p.residual
        d.numpy()[keep] = saved[keep]


def operand_view(t: NkiTensor, mask: Mask) -> NkiTensor:
    """`t[mask]` (Beta-1 operand masking, for matmul operands): `t` cut to the mask's box
    over its own index space; the mask must be a box."""
    p = plan(mask, t.shape, "operand mask")
    if p is None:
        return t
    if p.box is None:
        raise KernelUsageError(f"operand mask on {t.name} excludes every element")
    if p.residual is not None:
        raise KernelUsageError(f"operand mask on {t.name} must bound each axis (a box), as "
                               "the matmul operand-masking page shows")
    return restrict(t, p)  # type: ignore[return-value]
