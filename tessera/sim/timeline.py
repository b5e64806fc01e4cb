"""The timeline: an event-driven list scheduler over engine queues and DMA engines.

Each core has in-order queues for the Tensor, Vector, Scalar, GpSimd (and Sync) engines and
a pool of DMA engines. An instruction starts when its queue is free and every dependency
has finished, plus a cross-engine semaphore latency when producer and consumer run on
different engines. Events are processed in time order from a heap.

DMAs run from three in-order queues per core (loads into SBUF, stores to HBM, HBM-to-HBM
copies) that share the core's DMA engines. A DMA is ready after its dependencies and its
fixed issue latency; whenever the engines it needs are free, the ready queue head earliest
in program order starts (non-preemptively). So prefetches use idle engines while a store
waits for compute. A DMA holds its engines until it ends, including waiting for the core's
HBM bandwidth share. Like any work-conserving list scheduler this admits Graham's
anomalies (a DMA that becomes ready sooner can fill a gap and delay a chained one).

Shared resources: on NC-v2 Vector and GpSimd share the SBUF port and Vector and Scalar the
PSUM port (`core.access`). With LNC=2 the two cores' streams run side by side: the n-th
core_barrier (sendrecv) of one core pairs with the n-th of the other and both end together.

Cost: O((instructions + dependencies) log n). The event loop runs compiled over arrays
(`tessera.sim.events`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.stream import Engine, Instruction, Opcode, SourceLocation
from tessera.sim._jit import jit
from tessera.sim.calib import Calibration
from tessera.sim.dma import DmaPlan
from tessera.sim.errors import ScheduleError
from tessera.sim.events import run
from tessera.sim.plan import (
    BARRIER,
    ENGINE_ORDER,
    SENDRECV,
    TRANSFER,
    StreamPlan,
    plan_stream,
)

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


@dataclass(frozen=True)
class Timeline:
    """The scheduled stream and the resource usage behind it (per-position arrays)."""

    stream: tuple[Instruction, ...] = field(repr=False)
    start_s: tuple[float, ...] = field(repr=False)
    end_s: tuple[float, ...] = field(repr=False)  # includes result latency
    occupancy_s: tuple[float, ...] = field(repr=False)  # DMA: engine-seconds
    engine_codes: tuple[int, ...] = field(repr=False)  # index into ENGINE_ORDER
    total_s: float
    critical_path: tuple[int, ...]  # positions, first to last
    busy_s: dict[tuple[int, Engine], float]  # (core, engine) -> occupancy (DMA: engine-s)
    hbm_busy_s: dict[int, float]  # core -> time its HBM share was in use
    plan: StreamPlan = field(repr=False, compare=False)
    engine_masks: np.ndarray = field(repr=False, compare=False)  # DMA engines as bits

    @functools.cached_property
    def dma_plans(self) -> dict[int, DmaPlan]:
        """Position -> plan of each DMA (transfers and sendrecv)."""
        table, shape = self.plan.dma_table, self.plan.shape
        return {pos: table[shape[pos]] for pos in self.plan.dma_positions.tolist()}

    @functools.cached_property
    def dma_engines(self) -> dict[int, tuple[int, ...]]:
        """Position -> the DMA engines (indices within its core) each piece ran on."""
        kind = self.plan.kind
        positions = np.flatnonzero(kind == TRANSFER)
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
                self.stream, self.start_s, self.end_s, self.occupancy_s, self.engine_codes,
                strict=True)))


def _partners(instructions: Sequence[Instruction], sp: StreamPlan) -> np.ndarray:
    """Position -> partner position for the n-th core_barrier / sendrecv of core 0 and
    core 1 (-1: none)."""
    partner = np.full(len(instructions), -1, np.int64)
    for kind, opcode in ((BARRIER, Opcode.CORE_BARRIER), (SENDRECV, Opcode.SENDRECV)):
        positions = np.flatnonzero(sp.kind == kind)
        if not len(positions):
            continue
        cores = sp.core[positions]
        per_core = {int(c): positions[cores == c] for c in np.unique(cores)}
        if len(per_core) < 2:
            continue
        lists = [per_core[c] for c in sorted(per_core)]
        if len(lists) != 2 or len(lists[0]) != len(lists[1]):
            counts = {c: len(v) for c, v in per_core.items()}
            raise ScheduleError(f"{opcode.value} must be called the same number of times on "
                                f"both cores; counts per core: {counts}")
        partner[lists[0]] = lists[1]
        partner[lists[1]] = lists[0]
    return partner


def schedule_stream(instructions: Sequence[Instruction],
                    deps: Sequence[Sequence[int]] | tuple[np.ndarray, np.ndarray],
                    chip: ChipSpec, cal: Calibration) -> Timeline:
    """Schedule a traced stream whose dependencies are already known (see `deps`).

    `deps` is one sequence of earlier positions per position, or the CSR pair
    `(ptr, indices)` that `deps.dependency_arrays` returns.
    """
    if isinstance(deps, tuple) and len(deps) == 2 and isinstance(deps[0], np.ndarray):
        ptr, idx = deps
    else:
        lengths = np.fromiter((len(d) for d in deps), dtype=np.int64, count=len(deps))
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        idx = np.fromiter((p for d in deps for p in d), dtype=np.int64, count=int(ptr[-1]))
    if len(ptr) != len(instructions) + 1:
        raise ScheduleError(f"{len(ptr) - 1} dependency lists for {len(instructions)} "
                            "instructions")
    return schedule_plan(instructions, plan_stream(instructions, chip, cal), (ptr, idx), chip,
                         cal)


def schedule_plan(instructions: Sequence[Instruction], sp: StreamPlan,
                  deps: tuple[np.ndarray, np.ndarray], chip: ChipSpec,
                  cal: Calibration) -> Timeline:
    """`schedule_stream` with the stream's plan made and its dependencies as CSR."""
    sync = chip.core.costs.semaphore_latency_s
    sync = cal.cross_engine_sync_s if sync is None else sync
    n_dma = int(chip.core.dma.engines_per_core)
    if not 1 <= n_dma <= _MAX_DMA_ENGINES:
        raise ScheduleError(f"{n_dma} DMA engines per core: the scheduler handles 1 to "
                            f"{_MAX_DMA_ENGINES}")
    partner = _partners(instructions, sp)
    start, end, why, masks, hbm_busy, done, npred, arrived = run(
        sp.kind, sp.engine, sp.queue, sp.occupancy_s, sp.latency_s, sp.ports, sp.core,
        sp.dma_engines, sp.hbm_s, sp.dma_queue, deps[0], deps[1], partner, float(sync), n_dma,
        sp.cores, ENGINE_ORDER.index(Engine.TENSOR))
    n = len(instructions)
    if done != n:
        stuck = np.flatnonzero((npred > 0) | arrived)[:3].tolist()
        where = ", ".join(f"{instructions[p].opcode.value} at {instructions[p].location}"
                          for p in stuck)
        raise ScheduleError(f"scheduled {done} of {n} instructions; waiting forever: "
                            f"{where}")
    return _timeline(instructions, sp, start, end, why, hbm_busy, masks)


@jit
def _busy(core, engine, busy_of, cores, codes):  # pragma: no cover - compiled
    """Busy time per (core, engine code), summed in stream order, and the order in which
    each pair first appears."""
    total = np.zeros((cores, codes), np.float64)
    seen = np.full((cores, codes), -1, np.int64)
    for pos in range(core.shape[0]):
        c, e = core[pos], engine[pos]
        if seen[c, e] < 0:
            seen[c, e] = pos
        total[c, e] += busy_of[pos]
    return total, seen


def _timeline(instructions: Sequence[Instruction], sp: StreamPlan, start: np.ndarray,
              end: np.ndarray, why: np.ndarray, hbm_busy: np.ndarray,
              masks: np.ndarray) -> Timeline:
    busy_of = sp.occupancy_s * np.maximum(sp.dma_engines, 1)  # DMA: engine-seconds
    # barriers occupy nothing; a sendrecv is joined with its partner and holds no DMA
    # engine in the scheduler, so it must not count as DMA-engine busy time either
    busy_of[(sp.kind == BARRIER) | (sp.kind == SENDRECV)] = 0.0
    total, seen = _busy(sp.core, sp.engine, busy_of, sp.cores, len(ENGINE_ORDER))
    pairs = sorted(zip(*np.nonzero(seen >= 0), strict=True), key=lambda ce: seen[ce])
    busy = {(int(c), ENGINE_ORDER[e]): float(total[c, e]) for c, e in pairs}
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
    return Timeline(tuple(instructions), tuple(start.tolist()), tuple(end.tolist()),
                    tuple(busy_of.tolist()), tuple(sp.engine.tolist()),
                    float(end.max()) if len(end) else 0.0, tuple(path), busy,
                    dict(enumerate(hbm_busy.tolist())), sp, masks)
