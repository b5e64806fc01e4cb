"""The timing model's struct-of-arrays types: what the compiled loops read and return.

Each type is a NamedTuple of `np.int64` / `np.float64` arrays (and a few scalars), which numba
passes whole into and out of compiled code. Python-side records (`FlatStream`, `AddressPlan`,
`StreamFacts`, `Timeline`) hold one of these next to the objects only Python reads (tensor
names, source locations, one `Instruction` per distinct instruction shape).

All arrays are indexed by stream position `pos` (0..n-1), access index `a` (the access
patterns of instruction `pos` are `ap_ptr[pos]:ap_ptr[pos + 1]`, reads first), tensor id `t`
(names in `FlatStream.names`) or reuse index `r`, as each field says.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class StreamArrays(NamedTuple):
    """The lowered stream: per instruction and per access pattern."""

    core: np.ndarray  # [n] core of each instruction
    barrier: np.ndarray  # [n] 1 for core_barrier
    shape: np.ndarray  # [n] index into FlatStream.shapes (what costs depend on)
    location: np.ndarray  # [n] index into FlatStream.locations (the kernel line)
    ap_ptr: np.ndarray  # [n + 1]
    ap_tensor: np.ndarray  # [m] tensor id
    ap_write: np.ndarray  # [m] 1 for a write
    ap_onchip: np.ndarray  # [m] 1 for SBUF/PSUM (partitioned) patterns
    ap_box: np.ndarray  # [m, 4] the address box (see `tessera.sim.flat`)


class ViewTable(NamedTuple):
    """Distinct views of a stream: an access pattern without its tensor and offset."""

    partition_elems: np.ndarray  # [v] elements per partition row (0: HBM)
    itemsize: np.ndarray  # [v]
    dims: np.ndarray  # [v] dimensions of the pattern
    pattern: np.ndarray  # [v, max dims, 2] (stride, count) per dimension


class ReuseArrays(NamedTuple):
    """Tensors placed over memory earlier tensors used (`AddressPlan.reuse`).

    Reuse r's producers (the previous occupants' last accesses) are
    `producers[producer_ptr[r]:producer_ptr[r + 1]]` and the ranges it shares with previous
    occupants `held_*[held_ptr[r]:held_ptr[r + 1]]` (absolute per-partition bytes;
    `held_start` is the occupant's own start byte). A reuse with no held ranges waits for all
    its producers on its whole extent.
    """

    tensor: np.ndarray  # [r] tensor id
    first: np.ndarray  # [r] stream position of its first access
    partitions: np.ndarray  # [r] extent: partitions x row_bytes
    row_bytes: np.ndarray
    start_bytes: np.ndarray  # [r] its own per-partition start byte
    producer_ptr: np.ndarray  # [r + 1]
    producers: np.ndarray
    held_ptr: np.ndarray  # [r + 1]
    held_tensor: np.ndarray  # previous occupant of each shared range
    held_start: np.ndarray
    held_lo: np.ndarray
    held_hi: np.ndarray

    def coarse(self) -> ReuseArrays:
        """The same reuses without address detail: each waits for all its producers."""
        none = np.zeros(0, np.int64)
        return self._replace(held_ptr=np.zeros_like(self.held_ptr), held_tensor=none,
                             held_start=none, held_lo=none, held_hi=none)


class Arenas(NamedTuple):
    """What placement needs: each tensor's arena (a core's SBUF bytes or PSUM banks) and
    size, in the arena's units, and each arena's capacity."""

    arena_of: np.ndarray  # [tensors] arena id (-1: not placed)
    size_units: np.ndarray  # [tensors]
    capacity_units: np.ndarray  # [arenas]
    max_segments: np.ndarray  # [arenas] bound on the segments an arena can be cut into
    spillable: np.ndarray  # [arenas] bool: a tensor that finds no room evicts others


class Placed(NamedTuple):
    """What placement returns: placements in arena units, reuses, spills, or a failure."""

    born: np.ndarray  # tensor ids in birth order
    start_units: np.ndarray  # [tensors] start of each placed tensor (-1: none)
    peak_units: np.ndarray  # [arenas] peak live units
    reuse_tensor: np.ndarray
    producer_ptr: np.ndarray
    producers: np.ndarray
    held_ptr: np.ndarray
    held_tensor: np.ndarray
    held_lo: np.ndarray  # in arena units
    held_hi: np.ndarray
    failed: int  # tensor id that did not fit (-1: all fit)
    segment_start: np.ndarray  # the failing arena's segments at that moment
    segment_end: np.ndarray
    segment_owner: np.ndarray
    spill_tensor: np.ndarray  # per spill: the tensor evicted
    spill_at: np.ndarray  # the position whose instruction needed the room
    spill_back: np.ndarray  # the position of its next access (placed again before it)


class Dependencies(NamedTuple):
    """Dependencies as CSR: position i waits for `index[ptr[i]:ptr[i + 1]]` (ascending,
    all earlier)."""

    ptr: np.ndarray  # [n + 1]
    index: np.ndarray

    def of(self, pos: int) -> tuple[int, ...]:
        """The positions `pos` waits for."""
        return tuple(self.index[self.ptr[pos]:self.ptr[pos + 1]].tolist())

    def lists(self) -> list[tuple[int, ...]]:
        """One ascending tuple per position."""
        flat, bounds = self.index.tolist(), self.ptr.tolist()
        return [tuple(flat[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]

    @staticmethod
    def from_lists(lists: list[tuple[int, ...]] | list[list[int]]) -> Dependencies:
        """CSR of one sequence of earlier positions per position."""
        lengths = np.fromiter((len(d) for d in lists), dtype=np.int64, count=len(lists))
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        index = np.fromiter((p for d in lists for p in d), dtype=np.int64, count=int(ptr[-1]))
        return Dependencies(ptr, index)


class FactArrays(NamedTuple):
    """Per-position scheduling facts (`StreamFacts.arrays`)."""

    kind: np.ndarray  # COMPUTE, TRANSFER, BARRIER or SENDRECV (tessera.sim.facts)
    engine: np.ndarray  # index into ENGINE_ORDER
    queue: np.ndarray  # compute queue: core * QUEUES_PER_CORE + engine
    occupancy_s: np.ndarray  # engine occupancy (DMA: each engine's piece)
    latency_s: np.ndarray  # result latency (DMA: fixed issue latency before the transfer)
    ports: np.ndarray  # SBUF_PORT | PSUM_PORT bits held on NC-v2
    core: np.ndarray
    dma_engines: np.ndarray  # engines a DMA is split over (0: compute)
    hbm_s: np.ndarray  # time a DMA holds the core's HBM share
    dma_queue: np.ndarray  # LOAD/STORE/COPY queue of a DMA
    partner: np.ndarray  # the paired core_barrier / sendrecv of the other core (-1: none)
    rank: np.ndarray  # tie-break order of the reordering heuristics (0 first): the longest
    #                   path to the end first, then program order


class Machine(NamedTuple):
    """The scalars of the core the event loop needs."""

    sync_s: float  # cross-engine semaphore latency
    dma_engines: int  # DMA engines per core
    cores: int  # per-core queue sets to keep
    tensor_code: int  # ENGINE_ORDER index of the Tensor engine
    heuristic: int  # HEURISTIC_* of tessera.sim.facts: how queues choose among ready work


class Schedule(NamedTuple):
    """What the event loop returns."""

    start_s: np.ndarray
    end_s: np.ndarray  # includes result latency
    why: np.ndarray  # the binding predecessor of each position (-1: none)
    engine_masks: np.ndarray  # DMA engines each transfer used, as bits
    hbm_busy_s: np.ndarray  # per core
    done: int  # instructions finished (< n: something waits forever)
    waiting: np.ndarray  # unfinished predecessors per position (diagnostics)
    arrived: np.ndarray  # barrier halves still waiting for their partner (diagnostics)
