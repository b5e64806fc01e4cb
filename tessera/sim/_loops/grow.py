"""Small helpers of the compiled loops: growable buffers and short in-place sorts."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.njit import njit


@njit
def sort_range(a, lo, hi):  # pragma: no cover - compiled
    """Sort a[lo:hi] in place (insertion sort: the ranges are a few entries, and numba's
    general sort costs seconds of compilation)."""
    for i in range(lo + 1, hi):
        x = a[i]
        j = i
        while j > lo and a[j - 1] > x:
            a[j] = a[j - 1]
            j -= 1
        a[j] = x


@njit
def append(buf, n, value):  # pragma: no cover - compiled
    """Set buf[n] = value, doubling `buf` first when it is full; returns the buffer."""
    if n == buf.shape[0]:
        grown = np.empty(max(16, 2 * n), buf.dtype)
        grown[:n] = buf[:n]
        buf = grown
    buf[n] = value
    return buf



@njit
def successors(ptr, index):  # pragma: no cover - compiled
    """Reverse a CSR of predecessors (position i waits for index[ptr[i]:ptr[i + 1]]): the
    successors of each position, ascending, as (succ_ptr, succ)."""
    n = ptr.shape[0] - 1
    succ_ptr = np.zeros(n + 1, np.int64)
    for d in range(ptr[n]):
        succ_ptr[index[d] + 1] += 1
    for pos in range(n):
        succ_ptr[pos + 1] += succ_ptr[pos]
    succ = np.empty(succ_ptr[n], np.int64)
    fill = succ_ptr[:n].copy()
    for pos in range(n):
        for d in range(ptr[pos], ptr[pos + 1]):
            p = index[d]
            succ[fill[p]] = pos
            fill[p] += 1
    return succ_ptr, succ


@njit
def min_heap_push(heap, size, value):  # pragma: no cover - compiled
    """Push `value` on the int64 min-heap heap[:size]; returns the (grown) array."""
    heap = append(heap, size, value)
    i = size
    while i > 0 and heap[(i - 1) // 2] > value:
        heap[i] = heap[(i - 1) // 2]
        i = (i - 1) // 2
    heap[i] = value
    return heap


@njit
def min_heap_pop(heap, size):  # pragma: no cover - compiled
    """Remove and return the smallest of the int64 min-heap heap[:size] (size >= 1)."""
    top = heap[0]
    size -= 1
    last = heap[size]
    i = 0
    while True:
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
    return top
