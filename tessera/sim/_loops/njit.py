"""The one decorator of the compiled loops: numba's `njit(cache=True)`, or nothing.

`TESSERA_JIT=0` (read once, when `tessera.sim._loops` is first imported) or a missing numba
leaves the loops as plain Python: slower, same results. A test compares both modes.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

ENABLED = (importlib.util.find_spec("numba") is not None
           and os.environ.get("TESSERA_JIT", "1") != "0")

if ENABLED:
    import numba

    def njit(fn: F) -> F:
        """Compile `fn` in nopython mode on its first call (machine code cached on disk)."""
        return numba.njit(cache=True)(fn)  # type: ignore[return-value]
else:
    def njit(fn: F) -> F:
        """Leave `fn` as Python (numba is off)."""
        return fn
