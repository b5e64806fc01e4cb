"""Compilation of the stream-sized loops (allocator, dependencies, scheduler).

The timing model walks every instruction of a stream several times; in plain Python that
costs ~25 us per instruction, so a 100k-instruction kernel would take seconds. The loops
are written over flat numpy arrays in the subset of Python that numba compiles, and
compiled once per machine (`cache=True` keeps the machine code next to the source).

Without numba, or with `TESSERA_JIT=0` in the environment, the same functions run as plain
Python: identical results, only slower. Every compiled function keeps its Python original
as `.py_func`, which the tests use to check that both agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import numpy as np

F = TypeVar("F", bound=Callable)

try:  # numba is a pinned dependency; the fallback keeps a broken install usable
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

ENABLED = numba is not None and os.environ.get("TESSERA_JIT", "1") != "0"


def jit(fn: F) -> F:
    """Compile `fn` in numba's nopython mode (cached on disk), or return it unchanged."""
    if not ENABLED:
        return fn
    return numba.njit(cache=True)(fn)  # type: ignore[return-value]


@jit
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


@jit
def append(buf, n, value):  # pragma: no cover - compiled
    """Set buf[n] = value, doubling `buf` first when it is full; returns the buffer."""
    if n == buf.shape[0]:
        grown = np.empty(max(16, 2 * n), buf.dtype)
        grown[:n] = buf[:n]
        buf = grown
    buf[n] = value
    return buf
