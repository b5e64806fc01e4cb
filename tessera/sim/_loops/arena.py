"""The allocator's loops: liveness, placement (next or best fit) and spilling (policy:
`tessera.sim.allocation`)."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.grow import append, min_heap_pop, min_heap_push, sort_range
from tessera.sim._loops.njit import njit
from tessera.sim.arrays import Placed


@njit
def liveness(stream, tensors):  # pragma: no cover - compiled
    """First and last stream position of each tensor's on-chip accesses (-1: none)."""
    ap_ptr, ap_tensor, ap_onchip = stream.ap_ptr, stream.ap_tensor, stream.ap_onchip
    first = np.full(tensors, -1, np.int64)
    last = np.full(tensors, -1, np.int64)
    for pos in range(ap_ptr.shape[0] - 1):
        for a in range(ap_ptr[pos], ap_ptr[pos + 1]):
            if ap_onchip[a]:
                t = ap_tensor[a]
                if first[t] < 0:
                    first[t] = pos
                last[t] = pos
    return first, last


@njit
def segment_at(starts, n, x):  # pragma: no cover - compiled
    """Index of the segment (of the first `n`, sorted by start) that contains unit `x`."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if starts[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@njit
def uses_of(stream, tensors):  # pragma: no cover - compiled
    """Each tensor's on-chip access positions, ascending, as CSR (ptr [tensors + 1], pos)."""
    ap_ptr, ap_tensor, ap_onchip = stream.ap_ptr, stream.ap_tensor, stream.ap_onchip
    ptr = np.zeros(tensors + 1, np.int64)
    for a in range(ap_tensor.shape[0]):
        if ap_onchip[a]:
            ptr[ap_tensor[a] + 1] += 1
    for t in range(tensors):
        ptr[t + 1] += ptr[t]
    pos_of = np.empty(ptr[tensors], np.int64)
    fill = ptr[:tensors].copy()
    for pos in range(ap_ptr.shape[0] - 1):
        for a in range(ap_ptr[pos], ap_ptr[pos + 1]):
            if ap_onchip[a]:
                t = ap_tensor[a]
                pos_of[fill[t]] = pos
                fill[t] += 1
    return ptr, pos_of


@njit
def next_use(ptr, pos_of, t, pos):  # pragma: no cover - compiled
    """The first access of tensor t at or after `pos` (-1: none)."""
    lo, hi = ptr[t], ptr[t + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if pos_of[mid] < pos:
            lo = mid + 1
        else:
            hi = mid
    return pos_of[lo] if lo < ptr[t + 1] else -1


@njit
def find_run(starts, ends, owners, lasts, n, cursor, need_units, candidates,
             best_fit):  # pragma: no cover - compiled
    """Free segments j..stop-1 that hold `need_units` from starts[j] (-1: none).

    Next fit: from the segment at the cursor on, the first `candidates` runs that fit, the
    one whose previous occupants were last used earliest (a never-used run at once). Best
    fit: of the maximal free runs that fit, the shortest (ties: the lowest address)."""
    best_i = -1
    best_stop = -1
    if best_fit:
        best_len = -1
        j = 0
        while j < n:
            if owners[j] >= 0:
                j += 1
                continue
            q = j
            while q < n and owners[q] < 0:
                q += 1
            length = ends[q - 1] - starts[j]
            if length >= need_units and (best_i < 0 or length < best_len):
                need = starts[j] + need_units
                stop = j
                while ends[stop] < need:
                    stop += 1
                best_i, best_stop, best_len = j, stop + 1, length
            j = q
        return best_i, best_stop
    best_score = 0
    j = segment_at(starts, n, cursor)
    seen = 0
    for _ in range(n):
        if owners[j] < 0:  # extend a free run from segment j until it holds size
            need = starts[j] + need_units
            stop = j
            while stop < n and owners[stop] < 0 and ends[stop] < need:
                stop += 1
            if stop < n and owners[stop] < 0:
                stop += 1
                score = lasts[j]
                for q in range(j + 1, stop):
                    if lasts[q] > score:
                        score = lasts[q]
                if best_i < 0 or score < best_score:
                    best_i, best_stop, best_score = j, stop, score
                seen += 1
                if score < 0 or seen >= candidates:
                    break
        j += 1
        if j == n:
            j = 0
    return best_i, best_stop


@njit
def place(keys, arenas, candidates, best_fit, uses_ptr, uses,
          fixed):  # pragma: no cover - compiled
    """Placement of every tensor with an arena (`Arenas`), in birth order: next fit, best
    fit with `best_fit`, or at the starts `fixed` gives (when it is not empty).

    `keys` are the births and deaths in order: (position * 2 + death) * tensors + tensor
    (births sort before deaths at the same position). Each arena (a core's SBUF bytes or
    PSUM banks) is a list of segments tiling [0, capacity): live (owner >= 0) or free with
    its previous occupant and that occupant's last access (-1: never used). Free segments
    are not merged, so every reuse edge survives.

    In an arena that may spill (`Arenas.spillable`), a tensor that finds no room evicts
    live tensors that the current instruction does not access, the one used again last
    first (Belady), until a free run holds it; an evicted tensor is placed again just
    before its next access (`uses_ptr`/`uses`: `uses_of`). Returns a `Placed`: the
    placements, the reuse records, the spills and, if a tensor does not fit, its id with
    the arena's segments then.
    """
    arena_of, size, capacity = arenas.arena_of, arenas.size_units, arenas.capacity_units
    max_segments, spillable = arenas.max_segments, arenas.spillable
    n_t = arena_of.shape[0]
    n_a = capacity.shape[0]
    k = keys.shape[0]
    width = max(1, max_segments.max()) if n_a else 1
    s_start = np.zeros((n_a, width), np.int64)
    s_end = np.zeros((n_a, width), np.int64)
    s_owner = np.full((n_a, width), -1, np.int64)
    s_last = np.full((n_a, width), -1, np.int64)
    s_prev = np.full((n_a, width), -1, np.int64)
    n_seg = np.ones(n_a, np.int64)
    for a in range(n_a):
        s_end[a, 0] = capacity[a]
    cursor = np.zeros(n_a, np.int64)
    live = np.zeros(n_a, np.int64)
    peak = np.zeros(n_a, np.int64)
    start_of = np.full(n_t, -1, np.int64)
    born = np.empty(max(16, k // 2), np.int64)
    n_born = 0
    r_tensor = np.empty(16, np.int64)
    r_prod_ptr = np.zeros(17, np.int64)
    r_prod = np.empty(16, np.int64)
    r_held_ptr = np.zeros(17, np.int64)
    held_t = np.empty(16, np.int64)  # previous occupant of each shared range
    held_lo = np.empty(16, np.int64)  # and the range, in arena units
    held_hi = np.empty(16, np.int64)
    n_r = 0
    # spills: the tensor, the position whose instruction needed the room, and the position
    # of its next access (where it is placed again); re-placements wait in a min-heap of
    # keys (position * 2) * tensors + tensor, taken before the births of that position
    sp_t = np.empty(16, np.int64)
    sp_at = np.empty(16, np.int64)
    sp_back = np.empty(16, np.int64)
    n_sp = 0
    rb = np.empty(16, np.int64)
    n_rb = 0
    e = 0
    while e < k or n_rb:
        if n_rb and (e >= k or rb[0] // n_t <= keys[e] // n_t):
            key = min_heap_pop(rb, n_rb)
            n_rb -= 1
        else:
            key = keys[e]
            e += 1
        i = key % n_t
        pos = key // n_t // 2
        a = arena_of[i]
        starts, ends = s_start[a], s_end[a]
        owners, lasts, prevs = s_owner[a], s_last[a], s_prev[a]
        n = n_seg[a]
        if (key // n_t) % 2 == 1:  # death: free the tensor's segment, keep who held it
            j = segment_at(starts, n, start_of[i])
            live[a] -= ends[j] - start_of[i]
            prevs[j] = i
            owners[j] = -1
            lasts[j] = pos
            continue
        need_units = size[i]
        best_i, best_stop = -1, -1
        if fixed.shape[0] and need_units <= capacity[a]:
            x = fixed[i]
            j = segment_at(starts, n, x)
            if owners[j] < 0 and starts[j] < x:  # split the free segment at x
                for q in range(n - 1, j - 1, -1):
                    starts[q + 1] = starts[q]
                    ends[q + 1] = ends[q]
                    owners[q + 1] = owners[q]
                    lasts[q + 1] = lasts[q]
                    prevs[q + 1] = prevs[q]
                ends[j] = x
                starts[j + 1] = x
                n += 1
                n_seg[a] = n
                j += 1
            stop = j
            while stop < n and owners[stop] < 0 and ends[stop] < x + need_units:
                stop += 1
            if stop < n and owners[stop] < 0 and starts[j] == x:
                best_i, best_stop = j, stop + 1
        elif need_units <= capacity[a]:
            while True:
                best_i, best_stop = find_run(starts, ends, owners, lasts, n, cursor[a],
                                             need_units, candidates, best_fit)
                if best_i >= 0 or not spillable[a]:
                    break
                victim = -1
                victim_j = -1
                victim_next = -1
                for j in range(n):
                    o = owners[j]
                    if o < 0:
                        continue
                    nxt = next_use(uses_ptr, uses, o, pos)
                    if nxt == pos or nxt < 0:
                        continue  # an operand of this instruction stays
                    if nxt > victim_next:
                        victim, victim_j, victim_next = o, j, nxt
                if victim < 0:
                    break
                live[a] -= ends[victim_j] - starts[victim_j]
                prevs[victim_j] = victim
                owners[victim_j] = -1
                lasts[victim_j] = pos
                sp_t = append(sp_t, n_sp, victim)
                sp_at = append(sp_at, n_sp, pos)
                sp_back = append(sp_back, n_sp, victim_next)
                n_sp += 1
                rb = min_heap_push(rb, n_rb, (victim_next * 2) * n_t + victim)
                n_rb += 1
        if best_i < 0:
            return Placed(born[:n_born], start_of, peak, r_tensor[:n_r],
                          r_prod_ptr[:n_r + 1], r_prod[:r_prod_ptr[n_r]],
                          r_held_ptr[:n_r + 1], held_t[:r_held_ptr[n_r]],
                          held_lo[:r_held_ptr[n_r]], held_hi[:r_held_ptr[n_r]], i,
                          starts[:n].copy(), ends[:n].copy(), owners[:n].copy(),
                          sp_t[:n_sp], sp_at[:n_sp], sp_back[:n_sp])
        j, stop = best_i, best_stop
        start = starts[j]
        end = start + need_units
        # the reuse record: previous occupants' last accesses (sorted, unique) and ranges
        n_edges = 0
        for q in range(j, stop):
            if lasts[q] >= 0:
                n_edges += 1
        if n_edges:
            base = r_prod_ptr[n_r]
            m = np.int64(0)
            for q in range(j, stop):
                p = lasts[q]
                if p >= 0:
                    dup = False
                    for z in range(base, base + m):
                        if r_prod[z] == p:
                            dup = True
                    if not dup:
                        r_prod = append(r_prod, base + m, p)
                        m += 1
            sort_range(r_prod, base, base + m)
            r_prod_ptr = append(r_prod_ptr, n_r + 1, base + m)
            h = r_held_ptr[n_r]
            for q in range(j, stop):
                if prevs[q] >= 0:
                    held_t = append(held_t, h, prevs[q])
                    held_lo = append(held_lo, h, starts[q])
                    held_hi = append(held_hi, h, min(ends[q], end))
                    h += 1
            r_held_ptr = append(r_held_ptr, n_r + 1, h)
            r_tensor = append(r_tensor, n_r, i)
            n_r += 1
        # replace segments j..stop-1 by the new one and, if the last one was longer, the
        # rest of it (free, with its history)
        tail_end, tail_last, tail_prev = ends[stop - 1], lasts[stop - 1], prevs[stop - 1]
        new = 2 if tail_end > end else 1
        shift = new - (stop - j)
        if shift > 0:
            for q in range(n - 1, stop - 1, -1):
                starts[q + shift] = starts[q]
                ends[q + shift] = ends[q]
                owners[q + shift] = owners[q]
                lasts[q + shift] = lasts[q]
                prevs[q + shift] = prevs[q]
        elif shift < 0:
            for q in range(stop, n):
                starts[q + shift] = starts[q]
                ends[q + shift] = ends[q]
                owners[q + shift] = owners[q]
                lasts[q + shift] = lasts[q]
                prevs[q + shift] = prevs[q]
        n_seg[a] = n + shift
        starts[j], ends[j], owners[j], lasts[j], prevs[j] = start, end, i, -1, -1
        if new == 2:
            starts[j + 1], ends[j + 1] = end, tail_end
            owners[j + 1], lasts[j + 1], prevs[j + 1] = -1, tail_last, tail_prev
        cursor[a] = end if end < capacity[a] else 0
        live[a] += need_units
        if live[a] > peak[a]:
            peak[a] = live[a]
        start_of[i] = start
        born = append(born, n_born, i)
        n_born += 1
    return Placed(born[:n_born], start_of, peak, r_tensor[:n_r], r_prod_ptr[:n_r + 1],
                  r_prod[:r_prod_ptr[n_r]], r_held_ptr[:n_r + 1], held_t[:r_held_ptr[n_r]],
                  held_lo[:r_held_ptr[n_r]], held_hi[:r_held_ptr[n_r]], np.int64(-1),
                  np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                  sp_t[:n_sp], sp_at[:n_sp], sp_back[:n_sp])
