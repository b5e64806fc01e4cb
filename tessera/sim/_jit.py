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

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable)

# numba is a pinned dependency; without it (or with TESSERA_JIT=0) the loops run as Python
ENABLED = (importlib.util.find_spec("numba") is not None
           and os.environ.get("TESSERA_JIT", "1") != "0")
_deferred: list[_Deferred] = []
_numba: Any = None  # the numba module, once imported


class _Deferred:
    """A function to compile on its first call from Python.

    Importing numba costs ~0.3 s, which every `tessera` command would pay; so numba is
    imported, and every loop handed to numba, only when the first loop runs. Compiled code
    finds the loops it calls through its module's globals, so those names are then rebound
    to the compiled versions.
    """

    def __init__(self, fn: Callable) -> None:
        functools.update_wrapper(self, fn)
        self.py_func = fn
        self.compiled: Callable | None = None

    def __call__(self, *args: object) -> object:
        if self.compiled is None:
            _compile_all()
        return self.compiled(*args)  # type: ignore[misc]


def _compile_all() -> None:
    global _numba
    import numba

    _numba = numba
    for d in _deferred:  # numba compiles each on its first call (cached on disk)
        d.compiled = numba.njit(cache=True)(d.py_func)
    for d in _deferred:
        names = d.py_func.__globals__
        for name, value in list(names.items()):
            if isinstance(value, _Deferred) and value.compiled is not None:
                names[name] = value.compiled


def jit(fn: F) -> F:
    """Compile `fn` with numba's nopython mode (cached on disk) when it is first called, or
    leave it as Python when numba is off."""
    if not ENABLED:
        return fn
    if _numba is not None:  # a module imported after the first compilation
        return _numba.njit(cache=True)(fn)
    deferred = _Deferred(fn)
    _deferred.append(deferred)
    return deferred  # type: ignore[return-value]


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
