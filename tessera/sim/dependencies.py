"""Dependencies between instructions: data hazards, allocator reuse and barrier fences.

Two accesses to the same tensor conflict when their address boxes overlap and at least one
writes (RAW, WAR, WAW); boxes come from `tessera.sim.flat` (on-chip: partitions x bytes
within a partition; HBM: rows x bytes within a row). Each tensor keeps the boxes of its live
writers and readers; a write that covers an older box drops it (anything that overlaps the
old box also overlaps the new write, which already waits for the old access), so lists stay
short. A tensor placed over reused memory starts with the boxes its previous occupants left
on the shared bytes, as writers (WAR/WAW): its accesses wait only for the earlier accesses
of the same addresses, as the hardware's semaphores do. HBM tensors are per core with
LNC=2: cross-core order comes from the barrier fences.

A `core_barrier` is a fence of its core: it waits for everything the core issued before it,
and everything after waits for it (the pair of barriers is joined in the timeline).

The walk runs compiled over arrays (`tessera.sim._loops.hazards`).
"""

from __future__ import annotations

import numpy as np

from tessera.sim.arrays import Dependencies, ReuseArrays
from tessera.sim.flat import FlatStream


def dependencies(flat: FlatStream, reuse: ReuseArrays | None = None) -> Dependencies:
    """Dependencies of a lowered stream (CSR: position i waits for `index[ptr[i]:ptr[i+1]]`,
    ascending, all earlier) given the allocator's reuses (`AddressPlan.reuse`; none: every
    tensor has memory of its own).

    A tensor placed over reused memory inherits, on the bytes it shares with each previous
    occupant, that occupant's indexed accesses as writers, so each of its accesses waits for
    the earlier accesses of the same addresses (until a write that covers them takes their
    place). A reuse without held ranges (`ReuseArrays.coarse()`) waits for all its producers
    on its whole extent.
    """
    from tessera.sim import _loops  # numba loads with the first stream that is scheduled

    reuse = reuse if reuse is not None else _NO_REUSE
    tensors = max(flat.tensors, int(reuse.tensor.max()) + 1 if len(reuse.tensor) else 0,
                  int(reuse.held_tensor.max()) + 1 if len(reuse.held_tensor) else 0, 1)
    core = flat.arrays.core
    cores = int(core.max()) + 1 if len(core) else 1
    return _loops.hazards.hazards(flat.arrays, reuse, tensors, cores)


def _empty_reuse() -> ReuseArrays:
    none = np.zeros(0, np.int64)
    zero = np.zeros(1, np.int64)
    return ReuseArrays(none, none, none, none, none, zero, none, zero, none, none, none, none)


_NO_REUSE = _empty_reuse()
