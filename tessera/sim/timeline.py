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

Cost: O((instructions + dependencies) log n). The event loop (`_run`) runs compiled over
arrays (see `tessera.sim._jit`).
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


@jit
def _push(heap_t, heap_p, size, t, p):  # pragma: no cover - compiled
    """Push (t, p) on a binary min-heap ordered by (t, p); returns the (grown) arrays."""
    if size == heap_t.shape[0]:
        grown_t = np.empty(2 * size + 16, np.float64)
        grown_p = np.empty(2 * size + 16, np.int64)
        grown_t[:size] = heap_t[:size]
        grown_p[:size] = heap_p[:size]
        heap_t, heap_p = grown_t, grown_p
    i = size
    while i > 0:
        parent = (i - 1) // 2
        if heap_t[parent] < t or (heap_t[parent] == t and heap_p[parent] < p):
            break
        heap_t[i] = heap_t[parent]
        heap_p[i] = heap_p[parent]
        i = parent
    heap_t[i] = t
    heap_p[i] = p
    return heap_t, heap_p


@jit
def _pop(heap_t, heap_p, size):  # pragma: no cover - compiled
    """Remove and return the smallest (t, p) of a heap of `size` entries."""
    t, p = heap_t[0], heap_p[0]
    size -= 1
    last_t, last_p = heap_t[size], heap_p[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (heap_t[right] < heap_t[child] or (
                heap_t[right] == heap_t[child] and heap_p[right] < heap_p[child])):
            child = right
        if last_t < heap_t[child] or (last_t == heap_t[child] and last_p < heap_p[child]):
            break
        heap_t[i] = heap_t[child]
        heap_p[i] = heap_p[child]
        i = child
    heap_t[i] = last_t
    heap_p[i] = last_p
    return t, p


@jit
def _run(kind, eng, queue, occ, lat, ports, core, dma_k, hbm_s, dma_q, dep_ptr, dep_idx,
         partner, sync, n_dma, cores, tensor_code):  # pragma: no cover - compiled
    """The event loop. Returns start, end, why (the binding predecessor), DMA engine bits,
    HBM busy time per core, instructions finished, and npred / arrived for diagnostics."""
    n = kind.shape[0]
    n_queues = cores * QUEUES_PER_CORE
    # successors as CSR, ascending; each position also waits for its queue predecessor
    npred = np.zeros(n, np.int64)
    qnext = np.full(n, -1, np.int64)
    last_in_queue = np.full(n_queues, -1, np.int64)
    for pos in range(n):
        if kind[pos] != TRANSFER and kind[pos] != SENDRECV:
            q = queue[pos]
            if last_in_queue[q] >= 0:
                qnext[last_in_queue[q]] = pos
                npred[pos] += 1
            last_in_queue[q] = pos
    succ_ptr = np.zeros(n + 1, np.int64)
    for pos in range(n):
        npred[pos] += dep_ptr[pos + 1] - dep_ptr[pos]
        for d in range(dep_ptr[pos], dep_ptr[pos + 1]):
            succ_ptr[dep_idx[d] + 1] += 1
    for pos in range(n):
        succ_ptr[pos + 1] += succ_ptr[pos]
    succ = np.empty(succ_ptr[n], np.int64)
    fill = succ_ptr[:n].copy()
    for pos in range(n):
        for d in range(dep_ptr[pos], dep_ptr[pos + 1]):
            p = dep_idx[d]
            succ[fill[p]] = pos
            fill[p] += 1
    start = np.zeros(n, np.float64)
    end = np.zeros(n, np.float64)
    ready = np.zeros(n, np.float64)
    why = np.full(n, -1, np.int64)
    qfree = np.zeros(n_queues, np.float64)
    qlast = np.full(n_queues, -1, np.int64)
    port_free = np.zeros((cores, 3), np.float64)  # indexed by port bit
    port_last = np.full((cores, 3), -1, np.int64)
    dma_free = np.zeros((cores, n_dma), np.float64)
    dma_last = np.full((cores, n_dma), -1, np.int64)
    # per core: its engines as (free time, engine) in ascending order; not kept while all
    # are free at the same time (every DMA so far used all engines)
    by_t = np.zeros((cores, n_dma), np.float64)
    by_e = np.zeros((cores, n_dma), np.int64)
    by_kept = np.zeros(cores, np.bool_)
    masks = np.zeros(n, np.int64)
    # per core and DMA queue: its transfers in program order, and the queue's head
    order_ptr = np.zeros(cores * 3 + 1, np.int64)
    for pos in range(n):
        if kind[pos] == TRANSFER:
            order_ptr[core[pos] * 3 + dma_q[pos] + 1] += 1
    for i in range(cores * 3):
        order_ptr[i + 1] += order_ptr[i]
    order = np.empty(order_ptr[cores * 3], np.int64)
    head = order_ptr[:cores * 3].copy()
    for pos in range(n):
        if kind[pos] == TRANSFER:
            i = core[pos] * 3 + dma_q[pos]
            order[head[i]] = pos
            head[i] += 1
    head = order_ptr[:cores * 3].copy()
    dma_ready = np.zeros(n, np.bool_)
    dma_wake = np.full(cores, -1.0)
    hbm_free = np.zeros(cores, np.float64)
    hbm_last = np.full(cores, -1, np.int64)
    hbm_busy = np.zeros(cores, np.float64)
    arrived = np.zeros(n, np.bool_)
    arrived_t = np.zeros(n, np.float64)
    heap_t = np.empty(n + 16, np.float64)
    heap_p = np.empty(n + 16, np.int64)
    size = 0
    done = 0
    released = np.empty(max(2, n_dma + 2) if n else 2, np.int64)
    scratch_t = np.empty(n_dma, np.float64)
    scratch_e = np.empty(n_dma, np.int64)
    for s in range(n):
        if npred[s] == 0:  # enqueue at its earliest start
            key = ready[s]
            if kind[s] == TRANSFER:
                key += lat[s]
            elif kind[s] == COMPUTE or kind[s] == BARRIER:
                if qfree[queue[s]] > key:
                    key = qfree[queue[s]]
                    why[s] = qlast[queue[s]]
            heap_t, heap_p = _push(heap_t, heap_p, size, key, s)
            size += 1
    while size:
        t, pos = _pop(heap_t, heap_p, size)
        size -= 1
        n_rel = 0
        c = 0
        now = t
        if pos < 0:
            c = -pos - 1
            dispatch = True
            now = t
        else:
            dispatch = False
            k = kind[pos]
            if k == COMPUTE:
                bits = ports[pos]
                c = core[pos]
                if bits:
                    limit = 0.0
                    if bits & SBUF_PORT and port_free[c, SBUF_PORT] > limit:
                        limit = port_free[c, SBUF_PORT]
                    if bits & PSUM_PORT and port_free[c, PSUM_PORT] > limit:
                        limit = port_free[c, PSUM_PORT]
                    if limit > t:  # a shared port is busy: try again when it frees
                        port = PSUM_PORT
                        if bits & SBUF_PORT and port_free[c, SBUF_PORT] >= limit:
                            port = SBUF_PORT
                        why[pos] = port_last[c, port]
                        heap_t, heap_p = _push(heap_t, heap_p, size, limit, pos)
                        size += 1
                        continue
                busy_end = t + occ[pos]
                q = queue[pos]
                qfree[q] = busy_end
                qlast[q] = pos
                if bits & SBUF_PORT:
                    port_free[c, SBUF_PORT] = busy_end
                    port_last[c, SBUF_PORT] = pos
                if bits & PSUM_PORT:
                    port_free[c, PSUM_PORT] = busy_end
                    port_last[c, PSUM_PORT] = pos
                start[pos] = t
                end[pos] = busy_end + lat[pos]
                released[0] = pos
                n_rel = 1
            elif k == TRANSFER:
                dma_ready[pos] = True
                c = core[pos]
                # all engines busy until a time a wake-up is already set for: nothing starts
                dispatch = not (not by_kept[c] and t < dma_wake[c] <= dma_free[c, 0])
                now = t
            else:  # core_barrier / sendrecv: wait for the partner core, then end together
                other = partner[pos]
                if other >= 0 and not arrived[other]:
                    arrived[pos] = True
                    arrived_t[pos] = t
                    continue
                t_join = t
                transfer = occ[pos]
                t_other = 0.0
                if other >= 0:
                    t_other = arrived_t[other]
                    arrived[other] = False
                    if t_other > t:
                        why[pos] = other
                        t_join = t_other
                    else:
                        why[other] = pos
                    if occ[other] > transfer:
                        transfer = occ[other]
                for x in range(2 if other >= 0 else 1):
                    p = pos if x == 0 else other
                    if kind[p] == BARRIER:
                        finish = t_join + (sync if other >= 0 else 0.0)
                        qfree[queue[p]] = finish
                        qlast[queue[p]] = p
                    else:  # sendrecv: both tiles cross once both cores are there
                        finish = t_join + lat[p] + transfer
                    start[p] = t if x == 0 else t_other
                    end[p] = finish
                    released[n_rel] = p
                    n_rel += 1
        if dispatch:
            # start ready queue heads, earliest in program order first, while engines are
            # free; a DMA split over k engines takes the k least recently freed (ties:
            # lowest index)
            while True:
                pos = -1
                chosen = -1
                for qi in range(3):
                    i = c * 3 + qi
                    if head[i] < order_ptr[i + 1]:
                        p = order[head[i]]
                        if dma_ready[p] and (pos < 0 or p < pos):
                            pos = p
                            chosen = i
                if pos < 0:
                    break
                k = dma_k[pos]
                if not by_kept[c]:
                    avail = dma_free[c, 0]
                elif k >= n_dma:
                    avail = by_t[c, n_dma - 1]
                else:
                    avail = by_t[c, k - 1]
                if avail > now:
                    if not (now < dma_wake[c] <= avail):
                        dma_wake[c] = avail
                        heap_t, heap_p = _push(heap_t, heap_p, size, avail, -c - 1)
                        size += 1
                    break
                head[chosen] += 1
                if now > ready[pos] + lat[pos]:  # it waited for engines
                    if not by_kept[c]:
                        binding = dma_last[c, 0]
                    else:  # the first engine (in chosen order) that became free last
                        j = 0
                        while by_t[c, j] < avail:
                            j += 1
                        binding = dma_last[c, by_e[c, j]]
                    if binding >= 0:
                        why[pos] = binding
                finish = now + occ[pos]
                if hbm_s[pos] > 0.0:
                    h0 = hbm_free[c] if hbm_free[c] > now else now
                    h_end = h0 + hbm_s[pos]
                    if h_end > finish:
                        finish = h_end
                        if h0 > now:
                            why[pos] = hbm_last[c]
                    hbm_free[c] = h_end
                    hbm_last[c] = pos
                    hbm_busy[c] += hbm_s[pos]
                # engines stay busy until the data has moved
                mask = 0
                if k >= n_dma:
                    for e in range(n_dma):
                        dma_free[c, e] = finish
                        dma_last[c, e] = pos
                        mask |= 1 << e
                    by_kept[c] = False
                else:
                    if not by_kept[c]:
                        for e in range(n_dma):
                            by_t[c, e] = dma_free[c, 0]
                            by_e[c, e] = e
                        by_kept[c] = True
                    for e in range(k):
                        mask |= 1 << by_e[c, e]
                    # the rest keep their order; the k used ones come back at `finish`
                    m = 0
                    for e in range(k, n_dma):
                        scratch_t[m] = by_t[c, e]
                        scratch_e[m] = by_e[c, e]
                        m += 1
                    for e in range(n_dma):
                        if mask >> e & 1:
                            dma_free[c, e] = finish
                            dma_last[c, e] = pos
                            j = m  # insert (finish, e) in order
                            while j > 0 and (scratch_t[j - 1] > finish or (
                                    scratch_t[j - 1] == finish and scratch_e[j - 1] > e)):
                                scratch_t[j] = scratch_t[j - 1]
                                scratch_e[j] = scratch_e[j - 1]
                                j -= 1
                            scratch_t[j] = finish
                            scratch_e[j] = e
                            m += 1
                    for e in range(n_dma):
                        by_t[c, e] = scratch_t[e]
                        by_e[c, e] = scratch_e[e]
                masks[pos] = mask
                start[pos] = now
                end[pos] = finish
                if n_rel == released.shape[0]:
                    more = np.empty(2 * n_rel, np.int64)
                    more[:n_rel] = released
                    released = more
                released[n_rel] = pos
                n_rel += 1
        for x in range(n_rel):  # wake the successors and the next of the queue
            pos = released[x]
            e_end = end[pos]
            e_sync = e_end + sync
            mine = eng[pos]
            # TensorE only writes PSUM and never reads it: a later TensorE instruction that
            # depends on it accumulates into (or overwrites) the same bank, in pipeline order
            e_same = e_end - lat[pos] if mine == tensor_code else e_end
            done += 1
            for z in range(succ_ptr[pos], succ_ptr[pos + 1] + 1):
                if z < succ_ptr[pos + 1]:
                    s = succ[z]
                    # a DMA's fixed issue latency already covers the semaphore hop
                    if eng[s] == mine:
                        r = e_same
                    elif kind[s] == TRANSFER:
                        r = e_end
                    else:
                        r = e_sync
                    if r > ready[s]:
                        ready[s] = r
                        why[s] = pos
                else:
                    s = qnext[pos]
                    if s < 0:
                        continue
                npred[s] -= 1
                if npred[s] == 0:  # enqueue at its earliest start
                    key = ready[s]
                    if kind[s] == TRANSFER:
                        key += lat[s]
                    elif kind[s] == COMPUTE or kind[s] == BARRIER:
                        if qfree[queue[s]] > key:
                            key = qfree[queue[s]]
                            why[s] = qlast[queue[s]]
                    heap_t, heap_p = _push(heap_t, heap_p, size, key, s)
                    size += 1
    return start, end, why, masks, hbm_busy, done, npred, arrived


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
    start, end, why, masks, hbm_busy, done, npred, arrived = _run(
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
