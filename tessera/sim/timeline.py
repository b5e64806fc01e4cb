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

Cost: O((instructions + dependencies) log n); all state lives in flat lists.
"""

from __future__ import annotations

import functools
import heapq
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass, field

from tessera.hw import ChipSpec
from tessera.nki.stream import Engine, Instruction, Opcode, SourceLocation
from tessera.sim.calib import Calibration
from tessera.sim.dma import DMA_QUEUES, DmaPlan
from tessera.sim.errors import ScheduleError
from tessera.sim.plan import (
    BARRIER,
    COMPUTE,
    ENGINE_ORDER,
    PSUM_PORT,
    QUEUES_PER_CORE,
    SBUF_PORT,
    SENDRECV,
    TRANSFER,
    StreamPlan,
    plan_stream,
)


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
    dma_plans: dict[int, DmaPlan] = field(repr=False)  # position -> plan of each DMA
    # position -> the DMA engines (indices within its core) each piece ran on
    dma_engines: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def instructions(self) -> tuple[ScheduledInstruction, ...]:
        """Every instruction with its start and end (built on first use)."""
        return tuple(
            ScheduledInstruction(pos, inst.index, inst.core, ENGINE_ORDER[code], s, e, b,
                                 inst.opcode, inst.location)
            for pos, (inst, s, e, b, code) in enumerate(zip(
                self.stream, self.start_s, self.end_s, self.occupancy_s, self.engine_codes,
                strict=True)))


def _pairs(instructions: Sequence[Instruction], opcode: Opcode) -> dict[int, int]:
    """Position -> partner position for the n-th `opcode` of core 0 and core 1."""
    per_core: dict[int, list[int]] = {}
    for pos, inst in enumerate(instructions):
        if inst.opcode is opcode:
            per_core.setdefault(inst.core, []).append(pos)
    if len(per_core) < 2:
        return {}
    lists = [per_core[c] for c in sorted(per_core)]
    if len(lists) != 2 or len(lists[0]) != len(lists[1]):
        counts = {c: len(v) for c, v in per_core.items()}
        raise ScheduleError(f"{opcode.value} must be called the same number of times on both "
                            f"cores; counts per core: {counts}")
    partner = {}
    for a, b in zip(*lists, strict=True):
        partner[a], partner[b] = b, a
    return partner


def schedule_stream(instructions: Sequence[Instruction], deps: Sequence[tuple[int, ...]],
                    chip: ChipSpec, cal: Calibration) -> Timeline:
    """Schedule a traced stream whose dependencies are already known (see `deps`).

    Written as one function over local lists: attribute lookups would dominate the cost.
    """
    sp = plan_stream(instructions, chip, cal)
    n = len(instructions)
    sync = chip.core.costs.semaphore_latency_s
    sync = cal.cross_engine_sync_s if sync is None else sync
    n_dma = int(chip.core.dma.engines_per_core)
    kind, eng, queue, occ, lat = sp.kind, sp.engine, sp.queue, sp.occupancy_s, sp.latency_s
    ports, qnext, plans, core_of = sp.ports, sp.queue_next, sp.dma, sp.core
    npred = [0] * n
    for j in qnext:
        if j >= 0:
            npred[j] += 1
    succ: list[list[int]] = [[] for _ in range(n)]
    for pos, d in enumerate(deps):
        if d:
            npred[pos] += len(d)
            for p in d:
                succ[p].append(pos)
    partner = _pairs(instructions, Opcode.CORE_BARRIER)
    partner.update(_pairs(instructions, Opcode.SENDRECV))
    cores = sp.cores
    start, end, ready, why = [0.0] * n, [0.0] * n, [0.0] * n, [-1] * n
    qfree, qlast = [0.0] * (cores * QUEUES_PER_CORE), [-1] * (cores * QUEUES_PER_CORE)
    port_free = [[0.0, 0.0, 0.0] for _ in range(cores)]  # indexed by port bit
    port_last = [[-1, -1, -1] for _ in range(cores)]
    dma_free = [[0.0] * n_dma for _ in range(cores)]
    dma_last = [[-1] * n_dma for _ in range(cores)]
    all_engines = tuple(range(n_dma))
    # per core: its engines as (free time, engine) in ascending order, None while all are
    # free at the same time (every DMA so far used all engines: no list to maintain)
    dma_by_free: list[list[tuple[float, int]] | None] = [None] * cores
    engines_of: dict[int, tuple[int, ...]] = {}
    queue_ids = range(DMA_QUEUES)
    # per core and DMA queue: its DMAs in program order and the index of the queue's head
    dma_order: list[list[list[int]]] = [[[] for _ in range(DMA_QUEUES)] for _ in range(cores)]
    for pos, plan in plans.items():
        if kind[pos] == TRANSFER:
            dma_order[core_of[pos]][plan.queue].append(pos)
    dma_head = [[0] * DMA_QUEUES for _ in range(cores)]
    dma_len = [[len(q) for q in per_core] for per_core in dma_order]
    dma_ready = [False] * n
    dma_wake = [-1.0] * cores
    hbm_free, hbm_last, hbm_busy = [0.0] * cores, [-1] * cores, [0.0] * cores
    arrived: dict[int, float] = {}
    heap: list[tuple[float, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    done = [0]
    tensor_code = ENGINE_ORDER.index(Engine.TENSOR)

    def enqueue(s: int) -> None:
        """All predecessors of `s` are done: queue it at its earliest start."""
        key = ready[s]
        k = kind[s]
        if k == TRANSFER:
            key += lat[s]
        elif k == COMPUTE or k == BARRIER:
            q = queue[s]
            if qfree[q] > key:
                key = qfree[q]
                why[s] = qlast[q]
        push(heap, (key, s))

    def release(pos: int) -> None:
        """`pos` has its end time: wake its successors and the next of its queue."""
        e = end[pos]
        e_sync = e + sync
        mine = eng[pos]
        # TensorE only writes PSUM and never reads it: a later TensorE instruction that
        # depends on it accumulates into (or overwrites) the same bank, in pipeline order
        e_same = e - lat[pos] if mine == tensor_code else e
        done[0] += 1
        for s in succ[pos]:
            # a DMA's fixed issue latency already covers the semaphore hop
            if eng[s] == mine:
                r = e_same
            else:
                r = e if kind[s] == TRANSFER else e_sync
            if r > ready[s]:
                ready[s] = r
                why[s] = pos
            npred[s] -= 1
            if npred[s] == 0:
                enqueue(s)
        j = qnext[pos]
        if j >= 0:
            npred[j] -= 1
            if npred[j] == 0:
                enqueue(j)

    def dispatch_dma(core: int, now: float) -> None:
        """Start ready queue heads, earliest in program order first, while engines are free.

        A DMA split over k engines takes the k least recently freed (ties: lowest index),
        read off `by_free`, the core's engines as (free time, engine) in ascending order.
        """
        order, head, lens = dma_order[core], dma_head[core], dma_len[core]
        frees, lasts = dma_free[core], dma_last[core]
        while True:
            pos = -1
            for qi in queue_ids:
                h = head[qi]
                if h < lens[qi]:
                    p = order[qi][h]
                    if dma_ready[p] and (pos < 0 or p < pos):
                        pos, chosen_queue = p, qi
            if pos < 0:
                return
            plan = plans[pos]
            by_free = dma_by_free[core]
            k = plan.engines
            if by_free is None:  # all engines freed together (the last DMA used them all)
                avail = frees[0]
            elif k >= n_dma:
                avail = by_free[-1][0]
            else:
                avail = by_free[k - 1][0]
            if avail > now:
                if not (now < dma_wake[core] <= avail):
                    dma_wake[core] = avail
                    push(heap, (avail, -core - 1))
                return
            head[chosen_queue] += 1
            if now > ready[pos] + plan.latency_s:  # it waited for engines
                # the first engine (in chosen order) that became free last
                binding = (lasts[0] if by_free is None
                           else lasts[by_free[bisect_left(by_free, (avail, -1))][1]])
                if binding >= 0:
                    why[pos] = binding
            finish = now + plan.piece_s
            if plan.hbm_s > 0.0:
                h0 = hbm_free[core] if hbm_free[core] > now else now
                h_end = h0 + plan.hbm_s
                if h_end > finish:
                    finish = h_end
                    if h0 > now:
                        why[pos] = hbm_last[core]
                hbm_free[core], hbm_last[core] = h_end, pos
                hbm_busy[core] += plan.hbm_s
            # engines stay busy until the data has moved
            if k >= n_dma:
                used = all_engines
                frees[:] = [finish] * n_dma
                lasts[:] = [pos] * n_dma
                dma_by_free[core] = None
            else:
                if by_free is None:
                    by_free = dma_by_free[core] = [(frees[0], e) for e in all_engines]
                used = tuple(sorted(e for _, e in by_free[:k]))
                del by_free[:k]
                for e in used:
                    frees[e], lasts[e] = finish, pos
                    insort(by_free, (finish, e))
            engines_of[pos] = used
            start[pos], end[pos] = now, finish
            release(pos)

    def join(pos: int, t: float) -> None:
        """A core_barrier or sendrecv: wait for the partner core, then end together."""
        other = partner.get(pos)
        if other is not None and other not in arrived:
            arrived[pos] = t
            return
        arrivals = {pos: t}
        if other is not None:
            arrivals[other] = arrived.pop(other)
            late, early = (other, pos) if arrivals[other] > t else (pos, other)
            why[early] = late  # the early core waited for the late one
        t_join = max(arrivals.values())
        transfer = max(occ[p] for p in arrivals)
        for p, t_arrive in arrivals.items():
            if kind[p] == BARRIER:
                finish = t_join + (sync if other is not None else 0.0)
                qfree[queue[p]], qlast[queue[p]] = finish, p
            else:  # sendrecv: both tiles cross once both cores are there
                finish = t_join + lat[p] + transfer
            start[p], end[p] = t_arrive, finish
        for p in arrivals:
            release(p)

    for pos in range(n):
        if npred[pos] == 0:
            enqueue(pos)
    while heap:
        t, pos = pop(heap)
        if pos < 0:  # the DMA engines of core -pos-1 free up
            dispatch_dma(-pos - 1, t)
            continue
        k = kind[pos]
        if k == COMPUTE:
            bits = ports[pos]
            if bits:
                core = core_of[pos]
                pf = port_free[core]
                limit = max(pf[SBUF_PORT] if bits & SBUF_PORT else 0.0,
                            pf[PSUM_PORT] if bits & PSUM_PORT else 0.0)
                if limit > t:  # a shared port is busy: try again when it frees
                    port = (SBUF_PORT if bits & SBUF_PORT and pf[SBUF_PORT] >= limit
                            else PSUM_PORT)
                    why[pos] = port_last[core][port]
                    push(heap, (limit, pos))
                    continue
            busy_end = t + occ[pos]
            q = queue[pos]
            qfree[q], qlast[q] = busy_end, pos
            if bits:
                for port in (SBUF_PORT, PSUM_PORT):
                    if bits & port:
                        port_free[core][port], port_last[core][port] = busy_end, pos
            start[pos], end[pos] = t, busy_end + lat[pos]
            release(pos)
        elif k == TRANSFER:
            dma_ready[pos] = True
            core = core_of[pos]
            # all engines busy until a time a wake-up is already set for: nothing can start
            free_at = dma_free[core][0]
            if not (dma_by_free[core] is None and t < dma_wake[core] <= free_at):
                dispatch_dma(core, t)
        else:
            join(pos, t)
    if done[0] != n:
        stuck = [p for p in range(n) if npred[p] > 0 or p in arrived][:3]
        where = ", ".join(f"{instructions[p].opcode.value} at {instructions[p].location}"
                          for p in stuck)
        raise ScheduleError(f"scheduled {done[0]} of {n} instructions; waiting forever: "
                            f"{where}")
    return _timeline(instructions, sp, start, end, why, hbm_busy, engines_of)


def _timeline(instructions: Sequence[Instruction], sp: StreamPlan, start: list[float],
              end: list[float], why: list[int], hbm_busy: list[float],
              engines_of: dict[int, tuple[int, ...]]) -> Timeline:
    busy_of = list(sp.occupancy_s)
    for pos, plan in sp.dma.items():
        busy_of[pos] = plan.piece_s * plan.engines
    for pos, k in enumerate(sp.kind):
        # barriers occupy nothing; a sendrecv is joined with its partner and holds no DMA
        # engine in the scheduler, so it must not count as DMA-engine busy time either
        if k == BARRIER or k == SENDRECV:
            busy_of[pos] = 0.0
    busy_by_code: dict[tuple[int, int], float] = {}
    for c, code, b in zip(sp.core, sp.engine, busy_of, strict=True):
        key = (c, code)
        busy_by_code[key] = busy_by_code.get(key, 0.0) + b
    busy = {(c, ENGINE_ORDER[code]): b for (c, code), b in busy_by_code.items()}
    path: list[int] = []
    if instructions:
        pos = max(range(len(end)), key=end.__getitem__)
        seen: set[int] = set()
        while pos >= 0 and pos not in seen:
            seen.add(pos)
            path.append(pos)
            pos = why[pos]
    path.reverse()
    return Timeline(tuple(instructions), tuple(start), tuple(end), tuple(busy_of),
                    tuple(sp.engine), max(end, default=0.0), tuple(path), busy,
                    dict(enumerate(hbm_busy)), sp.dma, engines_of)
