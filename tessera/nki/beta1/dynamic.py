"""Beta-1 runtime offsets on SBUF/PSUM tiles: `t[i_p, idx_tile[0, j] + i_f]`.

The Beta-1 pages ("nki.isa.tensor_copy_dynamic_src" / "_dst") index a tile along a free
axis from a value held in an SBUF tile: `idx[0, j] + iy` (an index expression started at a
run-time value) or `idx[0, j]` alone. That is the Beta-2 dynamic view
(`tile.ap(pattern, offset, scalar_offset=value, indirect_dim=d)`,
`tessera.nki.dynamic_views`), which the dynamic copies read or write.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.nki.beta1.index import IndexExpr
from tessera.nki.errors import KernelUsageError
from tessera.nki.tensor import NkiTensor


@dataclass(frozen=True)
class DynamicIndex:
    """`value_tile + expr`: an index along one free axis starting at a run-time value."""

    tile: NkiTensor
    expr: IndexExpr | int


def is_dynamic_key(t: NkiTensor, key: object) -> bool:
    """A subscript of an on-chip tile with a run-time offset past the partition axis."""
    if not isinstance(key, tuple) or not t.buffer.on_chip:
        return False
    return any(isinstance(k, DynamicIndex | NkiTensor) for k in key[1:])


def dynamic_view(t: NkiTensor, key: tuple) -> object:
    """The dynamic view `key` names (one run-time offset, on a free axis)."""
    dims = [d for d, k in enumerate(key) if isinstance(k, DynamicIndex | NkiTensor)]
    if len(dims) != 1 or dims[0] == 0:
        raise KernelUsageError(f"indexing {t.name}: one free axis may take a run-time "
                               "offset (a value tile, or value + nl.arange)")
    d = dims[0]
    item = key[d]
    dyn = item if isinstance(item, DynamicIndex) else DynamicIndex(item, 0)
    if dyn.tile.size != 1 or not dyn.tile.dtype.is_int:
        raise KernelUsageError(f"indexing {t.name}: the run-time offset must be a "
                               "one-element integer tile (idx[0, j])")
    static = t[(*key[:d], dyn.expr, *key[d + 1:])]
    pattern = [[s, n] for s, n in zip(static.strides, static.shape, strict=True)]
    return t.ap(pattern, offset=static.offset - t.offset, scalar_offset=dyn.tile,
                indirect_dim=d)
