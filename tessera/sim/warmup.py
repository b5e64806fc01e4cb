"""Compile the timing model's loops ahead of time (`tessera kernel warm-up`; `make` runs it).

The allocator, dependency analysis and scheduler loops are compiled by numba on first use
and cached on disk (`tessera.sim._loops`); the first compilation takes tens of seconds on a
small machine. `warm_up` schedules a tiny built-in kernel so that this happens once, at
install time, instead of inside a user's first profile.
"""

from __future__ import annotations

import time

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.sim.profile import profile


@nki.jit
def _warm_up_kernel(a, b):
    """Loads, one matmul through PSUM, a copy back to SBUF and a store: every loop runs."""
    out = nl.ndarray((128, 128), nl.float32, buffer=nl.shared_hbm)
    x = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    y = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    nisa.dma_copy(x, a)
    nisa.dma_copy(y, b)
    acc = nl.ndarray((128, 128), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(acc, x, y)
    res = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(res, acc)
    nisa.dma_copy(out, res)
    return out


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every compiled loop; returns the seconds
    it took. A no-op without numba."""
    from tessera.sim._loops import ENABLED

    start = time.perf_counter()
    if ENABLED:
        spec = nki.TensorSpec((128, 128), "bfloat16")
        profile(_warm_up_kernel, spec, spec, chip="trn1", symbolic=True)
    return time.perf_counter() - start
