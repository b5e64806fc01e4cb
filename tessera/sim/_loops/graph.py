"""Walks of the dependency graph the reordering heuristics need: a topological order (the
kernel's own edges may point forward in program order) and each position's longest path
to the end."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.njit import njit


@njit
def topological_order(deps):  # pragma: no cover - compiled
    """Positions so that each comes after everything it waits for, program order among the
    free ones (a min-heap of positions); shorter than the stream if the edges form a
    cycle."""
    n = deps.ptr.shape[0] - 1
    waiting = np.zeros(n, np.int64)
    succ_ptr = np.zeros(n + 1, np.int64)
    for pos in range(n):
        waiting[pos] = deps.ptr[pos + 1] - deps.ptr[pos]
        for d in range(deps.ptr[pos], deps.ptr[pos + 1]):
            succ_ptr[deps.index[d] + 1] += 1
    for pos in range(n):
        succ_ptr[pos + 1] += succ_ptr[pos]
    succ = np.empty(succ_ptr[n], np.int64)
    fill = succ_ptr[:n].copy()
    for pos in range(n):
        for d in range(deps.ptr[pos], deps.ptr[pos + 1]):
            p = deps.index[d]
            succ[fill[p]] = pos
            fill[p] += 1
    heap = np.empty(n, np.int64)
    size = 0
    order = np.empty(n, np.int64)
    count = 0
    for pos in range(n):
        if waiting[pos] == 0:
            heap[size] = pos  # ascending: already a heap
            size += 1
    while size:
        pos = heap[0]
        size -= 1
        last = heap[size]
        i = 0
        while True:  # sift the last entry down from the root
            child = 2 * i + 1
            if child >= size:
                break
            if child + 1 < size and heap[child + 1] < heap[child]:
                child += 1
            if last <= heap[child]:
                break
            heap[i] = heap[child]
            i = child
        heap[i] = last
        order[count] = pos
        count += 1
        for z in range(succ_ptr[pos], succ_ptr[pos + 1]):
            s = succ[z]
            waiting[s] -= 1
            if waiting[s] == 0:
                i = size  # sift up
                size += 1
                while i > 0 and heap[(i - 1) // 2] > s:
                    heap[i] = heap[(i - 1) // 2]
                    i = (i - 1) // 2
                heap[i] = s
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
