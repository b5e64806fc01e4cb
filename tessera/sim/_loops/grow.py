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

