"""The timing model's stream-sized loops, compiled with numba (the only place numba is used).

The allocator, dependency analysis and scheduler walk every instruction of a stream several
times; in plain Python that costs ~25 us per instruction. These loops are written over the
struct-of-arrays types of `tessera.sim.arrays` in the subset of Python numba compiles, and
compiled once per machine (`cache=True` keeps the machine code in `__pycache__`).

Importing this package imports numba (~0.3 s), so `tessera.sim` imports it only inside the
functions that run a loop: commands that never schedule do not pay for it. Without numba,
or with `TESSERA_JIT=0` in the environment when the package is first imported, the same
functions run as plain Python with identical results (`tessera.sim._loops.njit.ENABLED`).
"""

from tessera.sim._loops import arena, boxes, event_loop, graph, hazards, offline
from tessera.sim._loops.njit import ENABLED

__all__ = ["ENABLED", "arena", "boxes", "event_loop", "graph", "hazards", "offline"]
