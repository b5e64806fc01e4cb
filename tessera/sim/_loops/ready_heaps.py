"""Ready sets of the list scheduler: one binary min-heap of (key, position) per queue.

Under a reordering heuristic each engine queue (and each core's DMA engines) chooses among
its ready instructions; the heaps live side by side in one 2-D array (a row per queue) that
doubles its width when a row fills.
"""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.njit import njit


@njit
def _first(t1, p1, t2, p2):  # pragma: no cover - compiled
    """(t1, p1) comes before (t2, p2): smaller key, then lower position."""
    return t1 < t2 or (t1 == t2 and p1 < p2)


@njit
def heap_push(keys, items, sizes, q, key, item):  # pragma: no cover - compiled
    """Push (key, item) on row q; returns the (possibly widened) arrays."""
    n = sizes[q]
    if n == keys.shape[1]:
        wider_k = np.empty((keys.shape[0], 2 * n + 16), np.float64)
        wider_i = np.empty((keys.shape[0], 2 * n + 16), np.int64)
        wider_k[:, :n] = keys
        wider_i[:, :n] = items
        keys, items = wider_k, wider_i
    i = n
    while i > 0:
        parent = (i - 1) // 2
        if _first(keys[q, parent], items[q, parent], key, item):
            break
        keys[q, i] = keys[q, parent]
        items[q, i] = items[q, parent]
        i = parent
    keys[q, i] = key
    items[q, i] = item
    sizes[q] = n + 1
    return keys, items


@njit
def heap_pop(keys, items, sizes, q):  # pragma: no cover - compiled
    """Remove the smallest (key, item) of row q and return its item."""
    top = items[q, 0]
    n = sizes[q] - 1
    sizes[q] = n
    last_k, last_i = keys[q, n], items[q, n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        right = child + 1
        if right < n and _first(keys[q, right], items[q, right], keys[q, child],
                                items[q, child]):
            child = right
        if _first(last_k, last_i, keys[q, child], items[q, child]):
            break
        keys[q, i] = keys[q, child]
        items[q, i] = items[q, child]
        i = child
    keys[q, i] = last_k
    items[q, i] = last_i
    return top
