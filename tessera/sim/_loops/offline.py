"""Offline placement: addresses chosen with every live range known (the colouring model).

Tensors are placed largest first (ties: born first), each at the lowest address where it
overlaps no already-placed tensor that is live at the same time ("greedy by size" interval
colouring). Seeing all lifetimes at once, it keeps small long-lived tiles from splitting
the free space that a later large tile needs, which next fit cannot. O(tensors^2) per
arena in the worst case: it runs only when next fit fails.
"""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.njit import njit


@njit
def offline_starts(first, last, arena_of, size, capacity, order):  # pragma: no cover
    """Start (in arena units) of each tensor of `order` (grouped by arena, largest first);
    returns the starts and the first tensor that found no room (-1: all placed)."""
    n_t = arena_of.shape[0]
    start = np.full(n_t, -1, np.int64)
    buf = np.empty(order.shape[0], np.int64)  # the current arena's placed tensors
    n_buf = 0
    lo = np.empty(order.shape[0], np.int64)
    hi = np.empty(order.shape[0], np.int64)
    arena = -1
    for idx in order:
        a = arena_of[idx]
        if a < 0:
            continue
        if a != arena:
            arena = a
            n_buf = 0
        m = 0
        for q in range(n_buf):
            o = buf[q]
            if first[o] <= last[idx] and first[idx] <= last[o]:
                lo[m] = start[o]
                hi[m] = start[o] + size[o]
                m += 1
        by_lo = np.argsort(lo[:m])
        x = 0
        for q in by_lo:
            if lo[q] - x >= size[idx]:
                break
            if hi[q] > x:
                x = hi[q]
        if x + size[idx] > capacity[a]:
            return start, idx
        start[idx] = x
        buf[n_buf] = idx
        n_buf += 1
    return start, np.int64(-1)
