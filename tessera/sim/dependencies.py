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

The kernel's own scheduling edges (`depends_on`, `nl.no_reorder`, `with_schedule`) come on
top: `with_edges` adds the runtime ones (a semaphore wait, like a data hazard) to these
lists, and `edge_lists` makes the schedule-only ones a CSR of their own (the consumer is
issued no earlier than its producer; the timeline releases it when the producer starts).
"""

from __future__ import annotations

import numpy as np

from tessera.nki.scheduling import ScheduleEdge, dependency
from tessera.sim.arrays import Dependencies, ReuseArrays
from tessera.sim.errors import ScheduleError
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


def edge_lists(n: int, consumer: np.ndarray, producer: np.ndarray) -> Dependencies:
    """CSR over `n` positions of the edges consumer <- producer (any direction), each
    position's producers ascending and once."""
    consumer = np.asarray(consumer, np.int64)
    producer = np.asarray(producer, np.int64)
    if len(consumer) and (min(consumer.min(), producer.min()) < 0
                          or max(consumer.max(), producer.max()) >= n):
        raise ScheduleError(f"a scheduling edge names a position outside the {n}-instruction "
                            "stream")
    if len(consumer) and (consumer == producer).any():
        raise ScheduleError("a scheduling edge makes an instruction wait for itself")
    pairs = np.unique(np.stack([consumer, producer], axis=1), axis=0) if len(consumer) \
        else np.zeros((0, 2), np.int64)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n), out=ptr[1:])
    return Dependencies(ptr, np.ascontiguousarray(pairs[:, 1]))


def with_edges(deps: Dependencies, consumer: np.ndarray, producer: np.ndarray
               ) -> Dependencies:
    """`deps` plus the edges consumer <- producer (runtime dependencies the kernel added);
    a producer may come later in program order."""
    if not len(consumer):
        return deps
    n = len(deps.ptr) - 1
    own = np.repeat(np.arange(n, dtype=np.int64), np.diff(deps.ptr))
    return edge_lists(n, np.concatenate([own, np.asarray(consumer, np.int64)]),
                      np.concatenate([deps.index, np.asarray(producer, np.int64)]))


def kernel_edges(deps: Dependencies, edges: tuple[ScheduleEdge, ...], n: int
                 ) -> tuple[Dependencies, Dependencies]:
    """`deps` plus the kernel's runtime edges (`TraceResult.edges`), and its issue-order
    edges as a CSR of their own (for `build_timeline(after=...)`)."""
    runtime = [e for e in edges if e.kind is dependency.runtime]
    issue = [e for e in edges if e.kind is not dependency.runtime]
    deps = with_edges(deps, np.array([e.consumer for e in runtime], np.int64),
                      np.array([e.producer for e in runtime], np.int64))
    return deps, edge_lists(n, np.array([e.consumer for e in issue], np.int64),
                            np.array([e.producer for e in issue], np.int64))


def _empty_reuse() -> ReuseArrays:
    none = np.zeros(0, np.int64)
    zero = np.zeros(1, np.int64)
    return ReuseArrays(none, none, none, none, none, zero, none, zero, none, none, none, none)


_NO_REUSE = _empty_reuse()
