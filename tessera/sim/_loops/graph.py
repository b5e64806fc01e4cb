"""Walks of the dependency graph the reordering heuristics need: a topological order (the
kernel's own edges may point forward in program order) and each position's longest path
to the end."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.grow import min_heap_pop, min_heap_push, successors
from tessera.sim._loops.njit import njit


@njit
def topological_order(deps):  # pragma: no cover - compiled
    """Positions so that each comes after everything it waits for, program order among the
    free ones (a min-heap of positions); shorter than the stream if the edges form a
    cycle."""
    n = deps.ptr.shape[0] - 1
    waiting = np.diff(deps.ptr)
    succ_ptr, succ = successors(deps.ptr, deps.index)
    heap = np.empty(16, np.int64)
    size = 0
    order = np.empty(n, np.int64)
    count = 0
    for pos in range(n):
        if waiting[pos] == 0:
            heap = min_heap_push(heap, size, pos)
            size += 1
    while size:
        pos = min_heap_pop(heap, size)
        size -= 1
        order[count] = pos
        count += 1
        for z in range(succ_ptr[pos], succ_ptr[pos + 1]):
            s = succ[z]
            waiting[s] -= 1
            if waiting[s] == 0:
                heap = min_heap_push(heap, size, s)
                size += 1
    return order[:count]


@njit
def path_to_end(facts, deps, order):  # pragma: no cover - compiled
    """Per position, the longest chain of occupancy + latency from it to the end of the
    stream (the reordering heuristics' priority), walking `order` (topological) backwards."""
    n = facts.kind.shape[0]
    longest = np.zeros(n, np.float64)  # best chain after each position
    out = np.zeros(n, np.float64)
    for k in range(order.shape[0] - 1, -1, -1):
        pos = order[k]
        out[pos] = facts.occupancy_s[pos] + facts.latency_s[pos] + longest[pos]
        for d in range(deps.ptr[pos], deps.ptr[pos + 1]):
            p = deps.index[d]
            if out[pos] > longest[p]:
                longest[p] = out[pos]
    return out
