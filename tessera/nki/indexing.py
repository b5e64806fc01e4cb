"""Index normalisation and stride arithmetic shared by tensor views."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from tessera.nki.errors import KernelUsageError, OutOfBoundsError


@dataclass(frozen=True)
class DynSlice:
    """`nl.ds(start, size)`: `size` elements from `start` along one dimension."""

    start: int
    size: int


def ds(start: int, size: int) -> DynSlice:
    """A slice of `size` elements starting at `start` (NKI's `nl.ds`)."""
    return DynSlice(operator.index(start), operator.index(size))


Item = int | DynSlice | tuple[int, int, int]


def _slice_item(sl: slice, size: int, dim: int) -> tuple[int, int, int]:
    step = 1 if sl.step is None else operator.index(sl.step)
    if step == 0:
        raise KernelUsageError("slice step cannot be zero")
    start, stop = sl.start, sl.stop
    if step > 0:
        start = 0 if start is None else operator.index(start)
        stop = size if stop is None else operator.index(stop)
        start = start + size if start < 0 else start
        stop = stop + size if stop < 0 else stop
        if not (0 <= start <= size and 0 <= stop <= size):
            raise OutOfBoundsError(f"slice {sl.start}:{sl.stop}:{sl.step} out of range for "
                                   f"dimension {dim} of size {size}")
        count = max(0, (stop - start + step - 1) // step)
    else:
        start = size - 1 if start is None else operator.index(start)
        start = start + size if start < 0 else start
        if stop is None:
            stop = -1
        else:
            stop = operator.index(stop)
            stop = stop + size if stop < 0 else stop
        if not (0 <= start < size or (size == 0)) or not -1 <= stop < size:
            raise OutOfBoundsError(f"slice {sl.start}:{sl.stop}:{sl.step} out of range for "
                                   f"dimension {dim} of size {size}")
        count = max(0, (start - stop - step - 1) // (-step))
    return start, count, step


def normalise_key(key: object, shape: tuple[int, ...]) -> list[Item]:
    """Turn a __getitem__ key into one item per dimension (ints, DynSlices, slices)."""
    keys = key if isinstance(key, tuple) else (key,)
    n_ellipsis = sum(1 for k in keys if k is Ellipsis)
    if n_ellipsis > 1:
        raise KernelUsageError("an index can contain at most one '...'")
    explicit = len(keys) - n_ellipsis
    if explicit > len(shape):
        raise OutOfBoundsError(f"too many indices ({explicit}) for a {len(shape)}-D tensor")
    items: list[Item] = []
    dim = 0
    for k in keys:
        if k is Ellipsis:
            for _ in range(len(shape) - explicit):
                items.append((0, shape[dim], 1))
                dim += 1
            continue
        if isinstance(k, slice):
            items.append(_slice_item(k, shape[dim], dim))
        elif isinstance(k, DynSlice):
            items.append(k)
        else:
            try:
                items.append(operator.index(k))
            except TypeError:
                raise KernelUsageError(
                    f"unsupported index {k!r}: use ints, slices, '...' or nl.ds(start, size)"
                ) from None
        dim += 1
    while dim < len(shape):
        items.append((0, shape[dim], 1))
        dim += 1
    return items


def reshape_strides(old_shape: tuple[int, ...], old_strides: tuple[int, ...],
                    new_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Strides that present the same elements as `new_shape` without a copy, or None."""
    olds = [(s, st) for s, st in zip(old_shape, old_strides, strict=True) if s != 1]
    odims = [s for s, _ in olds]
    ostr = [st for _, st in olds]
    new_strides = [0] * len(new_shape)
    if 0 in old_shape:
        return tuple(new_strides)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new_shape) and oi < len(odims):
        np_, op = new_shape[ni], odims[oi]
        while np_ != op:
            if np_ < op:
                if nj >= len(new_shape):
                    return None
                np_ *= new_shape[nj]
                nj += 1
            else:
                if oj >= len(odims):
                    return None
                op *= odims[oj]
                oj += 1
        for ok in range(oi, oj - 1):
            if ostr[ok] != odims[ok + 1] * ostr[ok + 1]:
                return None
        new_strides[nj - 1] = ostr[oj - 1]
        for nk in range(nj - 1, ni, -1):
            new_strides[nk - 1] = new_strides[nk] * new_shape[nk]
        ni, nj, oi, oj = nj, nj + 1, oj, oj + 1
    # trailing size-1 dimensions get any stride; keep them dense-looking
    for k in range(ni, len(new_shape)):
        new_strides[k] = 1
    return tuple(new_strides)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """C-order strides (in elements) of a dense tensor of `shape`."""
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def resolve_shape(shape: tuple[int, ...], size: int) -> tuple[int, ...]:
    """`shape` with a -1 filled in, checked to hold `size` elements."""
    if shape.count(-1) > 1:
        raise KernelUsageError(f"reshape: at most one -1 allowed, got {list(shape)}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise KernelUsageError(f"reshape: cannot infer -1 in {list(shape)} for {size} elems")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if any(s < 0 for s in shape) or math.prod(shape) != size:
        raise KernelUsageError(f"reshape: {list(shape)} does not hold {size} elements")
    return tuple(int(s) for s in shape)
