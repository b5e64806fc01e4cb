"""The scheduler's event loop (the model is described in `tessera.sim.timeline`)."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.grow import append, successors
from tessera.sim._loops.njit import njit
from tessera.sim._loops.ready_heaps import heap_pop, heap_push
from tessera.sim.arrays import Schedule
from tessera.sim.cost_rules import BARRIER, COMPUTE, SENDRECV, TRANSFER
from tessera.sim.facts import (
    HEURISTIC_CRITICAL_PATH,
    HEURISTIC_TRIVIAL,
    PSUM_PORT,
    QUEUES_PER_CORE,
    SBUF_PORT,
)


@njit
def before(t1, p1, t2, p2):  # pragma: no cover - compiled
    """Heap order: (t1, p1) comes before (t2, p2) (earlier time, then lower position)."""
    return t1 < t2 or (t1 == t2 and p1 < p2)


@njit
def push(heap_t, heap_p, size, t, p):  # pragma: no cover - compiled
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
        if before(heap_t[parent], heap_p[parent], t, p):
            break
        heap_t[i] = heap_t[parent]
        heap_p[i] = heap_p[parent]
        i = parent
    heap_t[i] = t
    heap_p[i] = p
    return heap_t, heap_p


@njit
def pop(heap_t, heap_p, size):  # pragma: no cover - compiled
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
        if right < size and before(heap_t[right], heap_p[right], heap_t[child],
                                    heap_p[child]):
            child = right
        if before(last_t, last_p, heap_t[child], heap_p[child]):
            break
        heap_t[i] = heap_t[child]
        heap_p[i] = heap_p[child]
        i = child
    heap_t[i] = last_t
    heap_p[i] = last_p
    return t, p


@njit
def port_limit(bits, c, port_free):  # pragma: no cover - compiled
    """When the shared ports in `bits` (SBUF_PORT | PSUM_PORT) of core c are all free."""
    limit = 0.0
    if bits & SBUF_PORT and port_free[c, SBUF_PORT] > limit:
        limit = port_free[c, SBUF_PORT]
    if bits & PSUM_PORT and port_free[c, PSUM_PORT] > limit:
        limit = port_free[c, PSUM_PORT]
    return limit


@njit
def earliest(s, kind, lat, queue, ready, qfree, qlast, why):  # pragma: no cover - compiled
    """When `s`, whose predecessors are all done, can start: its ready time, plus the fixed
    issue latency for a DMA, or when its compute queue frees (then the queue's last
    instruction is what it waited for)."""
    key = ready[s]
    if kind[s] == TRANSFER:
        key += lat[s]
    elif kind[s] == COMPUTE or kind[s] == BARRIER:
        if qfree[queue[s]] > key:
            key = qfree[queue[s]]
            why[s] = qlast[queue[s]]
    return key


@njit
def run(facts, deps, after, machine):  # pragma: no cover - compiled
    """The event loop over `FactArrays` with `Dependencies` on a `Machine`; returns a
    `Schedule` (start, end, the binding predecessor, DMA engine bits, HBM busy time per
    core, instructions finished, and what still waits, for diagnostics).

    `after` (CSR like `deps`) are issue-order edges: a position waits until each of them
    has started, not finished (`nisa.dependency.schedule`, `nl.no_reorder`)."""
    kind, eng, queue, occ, lat = facts.kind, facts.engine, facts.queue, facts.occupancy_s, \
        facts.latency_s
    ports, core, dma_k, hbm_s, dma_q = facts.ports, facts.core, facts.dma_engines, \
        facts.hbm_s, facts.dma_queue
    partner, dep_ptr, dep_idx = facts.partner, deps.ptr, deps.index
    sync, n_dma, cores, tensor_code = machine.sync_s, machine.dma_engines, machine.cores, \
        machine.tensor_code
    rank, by_rank = facts.rank, np.argsort(facts.rank)
    by_path = machine.heuristic == HEURISTIC_CRITICAL_PATH
    # TRIVIAL keeps each queue in program order; the other heuristics let a free queue start
    # any of its ready instructions (they can all start now): ASAP the one ready first,
    # CRITICAL_PATH the one with the longest path to the end; ties go by `rank` (the longest
    # path, then program order), so the source order of independent work does not decide.
    # A core's DMA queues (loads, stores, copies) take turns.
    reorder = machine.heuristic != HEURISTIC_TRIVIAL
    n = kind.shape[0]
    n_queues = cores * QUEUES_PER_CORE
    # successors as CSR, ascending; in program order each position also waits for its
    # queue predecessor
    npred = np.zeros(n, np.int64)
    qnext = np.full(n, -1, np.int64)
    last_in_queue = np.full(n_queues, -1, np.int64)
    for pos in range(n):
        if kind[pos] != TRANSFER and kind[pos] != SENDRECV and not reorder:
            q = queue[pos]
            if last_in_queue[q] >= 0:
                qnext[last_in_queue[q]] = pos
                npred[pos] += 1
            last_in_queue[q] = pos
    for pos in range(n):
        npred[pos] += dep_ptr[pos + 1] - dep_ptr[pos] + after.ptr[pos + 1] - after.ptr[pos]
    succ_ptr, succ = successors(dep_ptr, dep_idx)
    # the issue-order edges' successors: released when the producer starts
    aft_ptr, aft = successors(after.ptr, after.index)
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
    size = np.int64(0)  # typed: literal ints make numba compile callees per value
    done = 0
    released = np.empty(max(2, n_dma + 2) if n else 2, np.int64)
    scratch_t = np.empty(n_dma, np.float64)
    scratch_e = np.empty(n_dma, np.int64)
    # reordering: the ready instructions of each compute queue and of each core's DMAs
    queued = np.zeros(n, np.bool_)  # in its queue's ready set
    skipped = np.empty(16, np.int64)  # ready instructions passed over for a busy port
    skipped_k = np.empty(16, np.float64)
    qh_k = np.empty((n_queues, 16), np.float64)
    qh_p = np.empty((n_queues, 16), np.int64)
    qh_n = np.zeros(n_queues, np.int64)
    dh_k = np.empty((cores * 3, 16), np.float64)  # per core and DMA queue
    dh_p = np.empty((cores * 3, 16), np.int64)
    dh_n = np.zeros(cores * 3, np.int64)
    dh_turn = np.full(cores, 2, np.int64)  # the DMA queue served last
    for s in range(n):
        if npred[s] == 0:
            if reorder and (kind[s] == COMPUTE or kind[s] == BARRIER):
                key = ready[s]
            else:
                key = earliest(s, kind, lat, queue, ready, qfree, qlast, why)
            heap_t, heap_p = push(heap_t, heap_p, size, key, s)
            size += 1
    while size:
        t, pos = pop(heap_t, heap_p, size)
        size -= 1
        n_rel = np.int64(0)
        c = 0
        now = t
        if pos >= n:  # an engine queue may start its best ready instruction (reordering)
            q = pos - n
            if qfree[q] > t or qh_n[q] == 0:
                continue  # busy (a later wake-up is set) or nothing ready
            # the best ready instruction whose shared ports are free can start now; the
            # ones passed over go back
            pos = -1
            soonest = np.inf
            n_skip = np.int64(0)
            while qh_n[q]:
                key = qh_k[q, 0]
                cand = by_rank[heap_pop(qh_k, qh_p, qh_n, q)]
                c = core[cand]
                limit = port_limit(ports[cand], c, port_free)
                if limit <= t:
                    pos = cand
                    break
                soonest = min(soonest, limit)
                skipped_k = append(skipped_k, n_skip, key)
                skipped = append(skipped, n_skip, rank[cand])
                n_skip += 1
            for x in range(n_skip):
                qh_k, qh_p = heap_push(qh_k, qh_p, qh_n, q, skipped_k[x], skipped[x])
            if pos < 0:  # every ready instruction waits for a shared port
                heap_t, heap_p = push(heap_t, heap_p, size, soonest, n + q)
                size += 1
                continue
            c = core[pos]
            if t > ready[pos] and qlast[q] >= 0:
                why[pos] = qlast[q]  # it waited for the engine
        if pos >= 0 and reorder and (kind[pos] == COMPUTE or kind[pos] == BARRIER) \
                and not queued[pos]:
            # ready: join its queue's ready set; the queue chooses once every instruction
            # ready at this time has joined (wake-ups sort after instructions)
            queued[pos] = True
            q = queue[pos]
            qh_k, qh_p = heap_push(qh_k, qh_p, qh_n, q, 0.0 if by_path else t, rank[pos])
            heap_t, heap_p = push(heap_t, heap_p, size, t, n + q)
            size += 1
            continue
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
                        heap_t, heap_p = push(heap_t, heap_p, size, limit, pos)
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
                released = append(released, n_rel, pos)
                n_rel += 1
                if reorder:  # choose the queue's next instruction when the engine frees
                    heap_t, heap_p = push(heap_t, heap_p, size, busy_end, n + q)
                    size += 1
            elif k == TRANSFER:
                dma_ready[pos] = True
                c = core[pos]
                if reorder:
                    dh_k, dh_p = heap_push(dh_k, dh_p, dh_n, c * 3 + dma_q[pos],
                                           0.0 if by_path else t, rank[pos])
                # all engines busy until a time a wake-up is already set for: nothing starts
                dispatch = not (not by_kept[c] and t < dma_wake[c] <= dma_free[c, 0])
                now = t
            else:  # core_barrier / sendrecv: wait for the partner core, then end together
                other = partner[pos]
                if other >= 0 and not arrived[other]:
                    arrived[pos] = True
                    arrived_t[pos] = t
                    if reorder and k == BARRIER:
                        qfree[queue[pos]] = np.inf  # the engine waits at the barrier
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
                        if reorder:
                            heap_t, heap_p = push(heap_t, heap_p, size, finish,
                                                  n + queue[p])
                            size += 1
                    else:  # sendrecv: both tiles cross once both cores are there
                        finish = t_join + lat[p] + transfer
                    start[p] = t if x == 0 else t_other
                    end[p] = finish
                    released = append(released, n_rel, p)
                    n_rel += 1
        if dispatch:
            # start ready queue heads, earliest in program order first, while engines are
            # free; a DMA split over k engines takes the k least recently freed (ties:
            # lowest index)
            while True:
                pos = -1
                chosen = -1
                if reorder:
                    for i in range(1, 4):
                        qi = (dh_turn[c] + i) % 3
                        if dh_n[c * 3 + qi]:
                            chosen = qi
                            pos = by_rank[dh_p[c * 3 + qi, 0]]
                            break
                else:
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
                        heap_t, heap_p = push(heap_t, heap_p, size, avail, -c - 1)
                        size += 1
                    break
                if reorder:
                    heap_pop(dh_k, dh_p, dh_n, c * 3 + chosen)
                    dh_turn[c] = chosen
                else:
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
                released = append(released, n_rel, pos)
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
            n_aft = aft_ptr[pos + 1] - aft_ptr[pos]
            for z in range(succ_ptr[pos] - n_aft, succ_ptr[pos + 1] + 1):
                if z < succ_ptr[pos]:  # an issue-order successor: it may start now
                    s = aft[aft_ptr[pos + 1] - (succ_ptr[pos] - z)]
                    r = start[pos] if start[pos] > t else t
                    if r > ready[s]:
                        ready[s] = r
                        why[s] = pos
                elif z < succ_ptr[pos + 1]:
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
                if npred[s] == 0:
                    if reorder and (kind[s] == COMPUTE or kind[s] == BARRIER):
                        key = ready[s]
                    else:
                        key = earliest(s, kind, lat, queue, ready, qfree, qlast, why)
                    heap_t, heap_p = push(heap_t, heap_p, size, key, s)
                    size += 1
    return Schedule(start, end, why, masks, hbm_busy, done, npred, arrived)


@njit
def busy_by_engine(core, engine, busy_of, cores, codes):  # pragma: no cover - compiled
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
