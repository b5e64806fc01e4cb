"""Beta-1 subscripts: the strided view an index tuple of iterators names over a tensor.

A subscript names a tile with one axis per iterator it uses (`tessera.nki.beta1.index`),
ordered by the axis each iterator was placed on; the view's strides come from the
expressions' affine forms, so no address arrays are built. The rules and the vendor
kernels that fix them are in `_tile_axes`.
"""

from __future__ import annotations

import operator

import numpy as np

from tessera.nki.beta1.index import _INT, IndexExpr, Iterator, new_iter
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.indexing import DynSlice


def _item(k: object, size: int, dim: int, slot: int) -> IndexExpr | int:
    """One subscript item as an expression (a slice or nl.ds is an iterator of its own)."""
    if isinstance(k, IndexExpr):
        return k
    if isinstance(k, DynSlice | slice):
        if isinstance(k, DynSlice):
            r = np.arange(k.start, k.start + k.size, dtype=_INT)
        else:
            r = np.arange(*k.indices(size), dtype=_INT)
        it = new_iter(r.size, slot, 2)
        step = int(r[1] - r[0]) if r.size > 1 else 1
        return IndexExpr(r, (it,), (int(r[0]) if r.size else 0, {it.id: step}))
    try:
        return operator.index(k)  # type: ignore[arg-type]
    except TypeError:
        raise KernelUsageError(f"unsupported index {k!r} in dimension {dim}: use ints, "
                               "slices, nl.ds or nl.arange/nl.mgrid expressions") from None


def _tile_axes(exprs: list[IndexExpr]) -> tuple[Iterator, ...]:
    """The tile axes a subscript's iterators make. They go by the axis each was placed on
    (`out[b, q + i_f, i_p]` with i_p, i_f from one mgrid is [P, F]: a transposed access),
    iterators on the same axis (from different mgrids or aranges) in the order of the
    subscripts that use them; a size-1 iterator of the first subscript leads (the
    tutorials load a [1, F] row as `v[i_p1, i_f]` with i_p1 from an mgrid's last axis)."""
    rank: dict[int, tuple[int, int]] = {}
    for k, e in enumerate(exprs):
        for it in e.iters:
            rank.setdefault(it.id, (it.axis, k))
    found = {it.id: it for e in exprs for it in e.iters}
    ids = sorted(found, key=lambda i: rank[i])
    if exprs:
        lead = [it for it in exprs[0].iters if it.size == 1 and len(exprs[0].iters) == 1]
        if lead:
            ids.remove(lead[0].id)
            ids.insert(0, lead[0].id)
    return tuple(found[i] for i in ids)


def affine_view(shape: tuple[int, ...], strides: tuple[int, ...], offset: int,
                key: object, name: str
                ) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(offset, shape, strides, iterator ids per axis) of the view `key` names over a
    tensor, in elements: one axis per iterator, in the order the subscripts use them."""
    keys = list(key) if isinstance(key, tuple) else [key]
    if Ellipsis in keys:
        at = keys.index(Ellipsis)
        keys[at:at + 1] = [slice(None)] * (len(shape) - len(keys) + 1)
    if len(keys) > len(shape):
        raise OutOfBoundsError(f"too many indices ({len(keys)}) for {name}{list(shape)}")
    keys += [slice(None)] * (len(shape) - len(keys))
    items, slot = [], 0
    for dim, k in enumerate(keys):
        items.append(_item(k, shape[dim], dim, slot))
        slot += isinstance(k, slice | DynSlice)
    iters = _tile_axes([i for i in items if isinstance(i, IndexExpr)])
    space = tuple(it.size for it in iters)
    base, coefs = 0, dict.fromkeys((it.id for it in iters), 0)
    for item, stride in zip(items, strides, strict=True):
        if not isinstance(item, IndexExpr):
            base += item * stride
            continue
        if item.lin is None:
            raise KernelUsageError(f"index into {name}: the expressions are not affine in "
                                   "each iterator (one stride per axis, e.g. i * 128 + i_p); "
                                   "split the access")
        base += item.lin[0] * stride
        for i, c in item.lin[1].items():
            coefs[i] += c * stride
    out_strides = [coefs[it.id] if it.size > 1 else 0 for it in iters]
    shape_out, ids = tuple(int(n) for n in space), tuple(it.id for it in iters)
    if iters and min(it.position for it in iters) > 0 and iters[0].size > 1:
        # only free-axis iterators (`a[0, nl.arange(512)[None, :]]`): a [1, F] tile
        shape_out, out_strides, ids = (1, *shape_out), [0, *out_strides], (0, *ids)
    return offset + base, shape_out, tuple(out_strides), ids
