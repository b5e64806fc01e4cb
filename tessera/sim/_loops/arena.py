"""The allocator's loops: liveness and next-fit placement (policy: `tessera.sim.allocation`)."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.grow import append, sort_range
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
def place(keys, arenas, candidates):  # pragma: no cover - compiled
    """Next-fit placement of every tensor with an arena (`Arenas`), in birth order.

    `keys` are the births and deaths in order: (position * 2 + death) * tensors + tensor
    (births sort before deaths at the same position). Each arena (a core's SBUF bytes or
    PSUM banks) is a list of segments tiling [0, capacity): live (owner >= 0) or free with
    its previous occupant and that occupant's last access (-1: never used). Free segments
    are not merged, so every reuse edge survives. Returns a `Placed`: the placements, the
    reuse records and, if a tensor does not fit, its id with the arena's segments then.
    """
    arena_of, size, capacity = arenas.arena_of, arenas.size_units, arenas.capacity_units
    max_segments = arenas.max_segments
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
    born = np.empty(k // 2, np.int64)
    n_born = 0
    r_tensor = np.empty(16, np.int64)
    r_prod_ptr = np.zeros(17, np.int64)
    r_prod = np.empty(16, np.int64)
    r_held_ptr = np.zeros(17, np.int64)
    held_t = np.empty(16, np.int64)  # previous occupant of each shared range
    held_lo = np.empty(16, np.int64)  # and the range, in arena units
    held_hi = np.empty(16, np.int64)
    n_r = 0
    for e in range(k):
        key = keys[e]
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
        best_i = -1
        best_stop = -1
        best_score = 0
        if need_units <= capacity[a]:
            j = segment_at(starts, n, cursor[a])
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
        if best_i < 0:
            return Placed(born[:n_born], start_of, peak, r_tensor[:n_r],
                          r_prod_ptr[:n_r + 1], r_prod[:r_prod_ptr[n_r]],
                          r_held_ptr[:n_r + 1], held_t[:r_held_ptr[n_r]],
                          held_lo[:r_held_ptr[n_r]], held_hi[:r_held_ptr[n_r]], i,
                          starts[:n].copy(), ends[:n].copy(), owners[:n].copy())
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
        born[n_born] = i
        n_born += 1
    return Placed(born[:n_born], start_of, peak, r_tensor[:n_r], r_prod_ptr[:n_r + 1],
                  r_prod[:r_prod_ptr[n_r]], r_held_ptr[:n_r + 1], held_t[:r_held_ptr[n_r]],
                  held_lo[:r_held_ptr[n_r]], held_hi[:r_held_ptr[n_r]], np.int64(-1),
                  np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
