"""The timeline: the compiler's list scheduler over engine queues and DMA engines.

neuronx-cc orders a kernel's instructions after tracing ("How to Use the NKI Scheduling
APIs"; `nki.compiler.SchedulingHeuristic`): the automatic scheduler reorders independent
instructions, choosing among the ready ones by a heuristic. Each core has a queue for the
Tensor, Vector, Scalar, GpSimd (and Sync) engines and a pool of DMA engines. An instruction
is ready when every dependency has finished, plus a cross-engine semaphore latency when
producer and consumer run on different engines; when its engine frees, the queue starts
the best ready instruction whose shared ports are free:

* ASAP (the default): the one that became ready first;
* CRITICAL_PATH: the one with the longest chain of work to the end of the kernel;
* DMA_PREFETCH: as ASAP (DMAs have queues of their own here, so none competes with
  compute for a queue);
* TRIVIAL: program order, each queue issuing in the order the kernel was written.

Ties go by `FactArrays.rank` (the longest path to the end, then program order), so the
source order of independent work does not decide. The kernel's own edges constrain the
choice: runtime ones (`depends_on(kind=runtime)`) are dependencies like data hazards;
issue-order ones (`kind=schedule`, `nl.no_reorder`, `with_schedule`) release the consumer
when the producer starts.

DMAs run from three queues per core (loads into SBUF, stores to HBM, HBM-to-HBM copies)
that share the core's DMA engines and take turns (in program order under TRIVIAL). A DMA
is ready after its dependencies and its fixed issue latency; whenever the engines it needs
are free, a ready DMA starts (non-preemptively), so prefetches use idle engines while a
store waits for compute. A DMA holds its engines until it ends, including waiting for the
core's HBM bandwidth share. Like any work-conserving list scheduler this admits Graham's
anomalies (a DMA that becomes ready sooner can fill a gap and delay a chained one).

Shared resources: on NC-v2 Vector and GpSimd share the SBUF port and Vector and Scalar the
PSUM port (`core.access`). With LNC=2 the two cores' streams run side by side: the n-th
core_barrier (sendrecv) of one core pairs with the n-th of the other and both end together.

Cost: O((instructions + dependencies) log n). The event loop runs compiled over arrays
(`tessera.sim._loops.event_loop`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.compiler import SchedulingHeuristic
from tessera.nki.stream import Engine, Opcode, SourceLocation
from tessera.sim.arrays import Dependencies, Machine
from tessera.sim.dma import DmaPlan
from tessera.sim.errors import ScheduleError
from tessera.sim.facts import (
    BARRIER,
    ENGINE_ORDER,
    HEURISTIC_CODE,
    SENDRECV,
    TENSOR_CODE,
    TRANSFER,
    StreamFacts,
)
from tessera.sim.flat import FlatStream
from tessera.sim.timing_calibration import Calibration

_MAX_DMA_ENGINES = 62  # engines used by a DMA are recorded as bits of an int64


@dataclass(frozen=True, slots=True)
class ScheduledInstruction:
    """When one instruction ran. `end_s` includes result latency; `busy_s` is occupancy
    (for a DMA: engine-seconds summed over the engines it used)."""

    position: int  # index into TraceResult.instructions
    index: int  # per-core program order
    core: int
    engine: Engine
    start_s: float
    end_s: float
    busy_s: float
    opcode: Opcode
    location: SourceLocation


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Timeline:
    """The scheduled stream and the resource usage behind it (read-only per-position
    arrays, indexed by stream position)."""

    facts: StreamFacts = field(repr=False, compare=False)  # what was scheduled
    start_s: np.ndarray = field(repr=False, compare=False)
    end_s: np.ndarray = field(repr=False, compare=False)  # includes result latency
    occupancy_s: np.ndarray = field(repr=False, compare=False)  # DMA: engine-seconds
    engine_masks: np.ndarray = field(repr=False, compare=False)  # DMA engines as bits
    total_s: float
    critical_path: tuple[int, ...]  # positions, first to last
    busy_s: dict[tuple[int, Engine], float]  # (core, engine) -> occupancy (DMA: engine-s)
    hbm_busy_s: dict[int, float]  # core -> time its HBM share was in use
    heuristic: SchedulingHeuristic = SchedulingHeuristic.ASAP  # how queues chose their order

    @property
    def stream(self) -> FlatStream:
        """The lowered stream that was scheduled (`.instructions` are the records)."""
        return self.facts.flat

    @property
    def engine_codes(self) -> np.ndarray:
        """Engine of each position as an index into `ENGINE_ORDER`."""
        return self.facts.arrays.engine

    @functools.cached_property
    def dma_plans(self) -> dict[int, DmaPlan]:
        """Position -> plan of each DMA (transfers and sendrecv)."""
        table, shape = self.facts.dma_table, self.stream.arrays.shape
        return {pos: table[shape[pos]] for pos in self.facts.dma_positions.tolist()}

    @functools.cached_property
    def dma_engines(self) -> dict[int, tuple[int, ...]]:
        """Position -> the DMA engines (indices within its core) each piece ran on."""
        positions = np.flatnonzero(self.facts.arrays.kind == TRANSFER)
        seen: dict[int, tuple[int, ...]] = {}
        out = {}
        for pos, mask in zip(positions.tolist(), self.engine_masks[positions].tolist(),
                             strict=True):
            engines = seen.get(mask)
            if engines is None:
                engines = seen[mask] = tuple(e for e in range(mask.bit_length())
                                             if mask >> e & 1)
            out[pos] = engines
        return out

    @functools.cached_property
    def instructions(self) -> tuple[ScheduledInstruction, ...]:
        """Every instruction with its start and end (built on first use)."""
        return tuple(
            ScheduledInstruction(pos, inst.index, inst.core, ENGINE_ORDER[code], s, e, b,
                                 inst.opcode, inst.location)
            for pos, (inst, s, e, b, code) in enumerate(zip(
                self.stream.instructions, self.start_s.tolist(), self.end_s.tolist(),
                self.occupancy_s.tolist(), self.engine_codes.tolist(), strict=True)))


def build_timeline(facts: StreamFacts, deps: Dependencies, chip: ChipSpec,
                   cal: Calibration,
                   heuristic: SchedulingHeuristic = SchedulingHeuristic.ASAP,
                   after: Dependencies | None = None) -> Timeline:
    """Schedule a lowered stream with its facts (`instruction_facts`) and dependencies
    (`dependencies`, with the kernel's runtime edges: `with_edges`) on `chip`, each queue
    choosing among its ready instructions by `heuristic` (TRIVIAL: program order). `after`
    are issue-order edges (`edge_lists`): a position starts no earlier than those do."""
    from tessera.sim import _loops  # numba loads with the first stream that is scheduled

    flat = facts.flat
    n = flat.n
    if len(deps.ptr) != n + 1:
        raise ScheduleError(f"{len(deps.ptr) - 1} dependency lists for {n} instructions")
    sync = chip.core.costs.semaphore_latency_s
    sync = cal.cross_engine_sync_s if sync is None else sync
    n_dma = int(chip.core.dma.engines_per_core)
    if not 1 <= n_dma <= _MAX_DMA_ENGINES:
        raise ScheduleError(f"{n_dma} DMA engines per core: the scheduler handles 1 to "
                            f"{_MAX_DMA_ENGINES}")
    if after is None:
        after = Dependencies(np.zeros(n + 1, np.int64), np.zeros(0, np.int64))
    elif len(after.ptr) != n + 1:
        raise ScheduleError(f"{len(after.ptr) - 1} issue-order lists for {n} instructions")
    arrays = facts.arrays
    forward = bool(len(deps.index)) and bool(
        (deps.index >= np.repeat(np.arange(n), np.diff(deps.ptr))).any())
    if forward:  # a kernel edge waits for a later instruction: is the graph still acyclic?
        order = _loops.graph.topological_order(deps)
        if len(order) < n:
            left = np.setdiff1d(np.arange(n), order)[:3].tolist()
            where = ", ".join(f"{flat.opcode_at(p).value} at {flat.location_at(p)}"
                              for p in left)
            raise ScheduleError(f"the kernel's depends_on edges and its data dependencies "
                                f"form a cycle (through {where})")
    else:
        order = np.arange(n, dtype=np.int64)
    if heuristic is not SchedulingHeuristic.TRIVIAL:  # ties: the longest path first
        path = _loops.graph.path_to_end(arrays, deps, order)
        order = np.lexsort((np.arange(len(path)), -path))
        rank = np.empty(len(path), np.int64)
        rank[order] = np.arange(len(path))
        arrays = arrays._replace(rank=rank)
    run = _loops.event_loop.run(arrays, deps, after, Machine(float(sync), n_dma, facts.cores,
                                                      TENSOR_CODE, HEURISTIC_CODE[heuristic]))
    if run.done != n:
        stuck = np.flatnonzero((run.waiting > 0) | run.arrived)[:3].tolist()
        where = ", ".join(f"{flat.opcode_at(p).value} at {flat.location_at(p)}" for p in stuck)
        cause = ("; the kernel's scheduling edges (depends_on, no_reorder, with_schedule) "
                 "cannot all hold" if len(after.index) or forward else "")
        raise ScheduleError(f"scheduled {run.done} of {n} instructions; waiting forever: "
                            f"{where}{cause}")
    fa = facts.arrays
    busy_of = fa.occupancy_s * np.maximum(fa.dma_engines, 1)  # DMA: engine-seconds
    # barriers occupy nothing; a sendrecv is joined with its partner and holds no DMA
    # engine in the scheduler, so it must not count as DMA-engine busy time either
    busy_of[(fa.kind == BARRIER) | (fa.kind == SENDRECV)] = 0.0
    total, seen = _loops.event_loop.busy_by_engine(fa.core, fa.engine, busy_of, facts.cores,
                                                   len(ENGINE_ORDER))
    pairs = sorted(zip(*np.nonzero(seen >= 0), strict=True), key=lambda ce: seen[ce])
    busy = {(int(c), ENGINE_ORDER[e]): float(total[c, e]) for c, e in pairs}
    end = run.end_s
    return Timeline(facts, _frozen(run.start_s), _frozen(end), _frozen(busy_of),
                    _frozen(run.engine_masks), float(end.max()) if len(end) else 0.0,
                    _critical_path(end, run.why), busy,
                    dict(enumerate(run.hbm_busy_s.tolist())), heuristic)


def _critical_path(end: np.ndarray, why: np.ndarray) -> tuple[int, ...]:
    """From the position that ends last back along the binding predecessors."""
    path: list[int] = []
    if len(end):
        pos = int(np.argmax(end))
        whys = why.tolist()
        seen_path: set[int] = set()
        while pos >= 0 and pos not in seen_path:
            seen_path.add(pos)
            path.append(pos)
            pos = whys[pos]
    path.reverse()
    return tuple(path)
