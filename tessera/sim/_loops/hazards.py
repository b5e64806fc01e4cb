"""The dependency walk: data hazards, allocator reuse and barrier fences over the stream's
address boxes (the rules are described in `tessera.sim.dependencies`)."""

from __future__ import annotations

import numpy as np

from tessera.sim._loops.grow import append, sort_range
from tessera.sim._loops.njit import njit
from tessera.sim.arrays import Dependencies


@njit
def entry(pool, nxt, free, size, p0, p1, b0, b1, pos):  # pragma: no cover - compiled
    """A pool slot holding box (p0, p1, b0, b1) of access `pos`; grows the pool if full.

    Returns (slot, pool, nxt, free head, slots used)."""
    if free >= 0:
        slot = free
        free = nxt[slot]
    else:
        if size == pool.shape[0]:
            grown = np.empty((2 * size, 5), np.int64)
            grown[:size] = pool
            pool = grown
            links = np.empty(2 * size, np.int64)
            links[:size] = nxt
            nxt = links
        slot = size
        size += 1
    pool[slot, 0] = p0
    pool[slot, 1] = p1
    pool[slot, 2] = b0
    pool[slot, 3] = b1
    pool[slot, 4] = pos
    return slot, pool, nxt, free, size


@njit
def hazards(stream, reuse, tensors, cores):  # pragma: no cover - compiled
    """Dependencies of every position of a `StreamArrays` whose tensors were placed with the
    `ReuseArrays` `reuse`, as `Dependencies` (CSR, ascending). `tensors` bounds the tensor
    ids, `cores` the core numbers."""
    ap_ptr, ap_tensor, ap_write = stream.ap_ptr, stream.ap_tensor, stream.ap_write
    ap_onchip, ap_box, core, barrier = stream.ap_onchip, stream.ap_box, stream.core, \
        stream.barrier
    r_tensor, r_first, r_partitions = reuse.tensor, reuse.first, reuse.partitions
    r_row_bytes, r_start, r_pp, r_prod = reuse.row_bytes, reuse.start_bytes, \
        reuse.producer_ptr, reuse.producers
    r_hp, r_held_tensor, r_held_start = reuse.held_ptr, reuse.held_tensor, reuse.held_start
    r_held_lo, r_held_hi = reuse.held_lo, reuse.held_hi
    n = core.shape[0]
    multi = cores > 1
    n_keys = tensors * (cores + 1) if multi else tensors
    # per key: heads of its writer and reader lists in the entry pool (-1: empty) and
    # whether it has been indexed at all
    head_w = np.full(n_keys, -1, np.int64)
    head_r = np.full(n_keys, -1, np.int64)
    indexed = np.zeros(n_keys, np.bool_)
    pool = np.empty((max(16, ap_box.shape[0]), 5), np.int64)
    nxt = np.empty(pool.shape[0], np.int64)
    free = np.int64(-1)  # typed: literal ints make numba compile callees per value
    used = np.int64(0)
    zero = np.int64(0)
    written = np.zeros(tensors, np.bool_)
    for a in range(ap_tensor.shape[0]):
        if ap_write[a]:
            written[ap_tensor[a]] = True
    n_r = r_tensor.shape[0]
    seeded_at = np.full(n, -1, np.int64)  # first reuse seeded at each position
    seed_next = np.full(n_r, -1, np.int64)  # the next reuse seeded at the same position
    for r in range(n_r - 1, -1, -1):
        t = r_tensor[r]
        written[t] = True
        if r_hp[r + 1] > r_hp[r]:  # seeded when the stream reaches its first access
            if 0 <= r_first[r] < n:
                seed_next[r] = seeded_at[r_first[r]]
                seeded_at[r_first[r]] = r
    for r in range(n_r):
        if r_hp[r + 1] == r_hp[r]:  # no address detail: wait for all producers everywhere
            t = r_tensor[r]
            indexed[t] = True
            head_w[t] = -1
            head_r[t] = -1
            for k in range(r_pp[r], r_pp[r + 1]):
                slot, pool, nxt, free, used = entry(pool, nxt, free, used, zero,
                                                     r_partitions[r], zero, r_row_bytes[r],
                                                     r_prod[k])
                nxt[slot] = head_w[t]
                head_w[t] = slot
    # fences: per core, the last barrier and where its instructions since then start
    fence = np.full(cores, -1, np.int64)
    has_fence = False
    for pos in range(n):
        if barrier[pos]:
            has_fence = True
    mark = np.full(n, -1, np.int64)
    found = np.empty(n if n < 64 else 64, np.int64)
    out_ptr = np.zeros(n + 1, np.int64)
    out = np.empty(max(16, 2 * n), np.int64)
    n_out = np.int64(0)
    for pos in range(n):
        r = seeded_at[pos]
        while r >= 0:  # a reused range: the previous occupants' boxes on the shared bytes
            t = r_tensor[r]
            shift = r_start[r]
            h_w = -1
            for h in range(r_hp[r], r_hp[r + 1]):
                old = r_held_tensor[h]
                old_start, lo, hi = r_held_start[h], r_held_lo[h], r_held_hi[h]
                if not indexed[old]:  # never accessed as far as dependencies go
                    for k in range(r_pp[r], r_pp[r + 1]):
                        slot, pool, nxt, free, used = entry(
                            pool, nxt, free, used, zero, r_partitions[r], lo - shift,
                            hi - shift, r_prod[k])
                        nxt[slot] = h_w
                        h_w = slot
                    continue
                for side in range(2):
                    e = head_w[old] if side == 0 else head_r[old]
                    while e >= 0:
                        a0 = pool[e, 2] + old_start
                        a1 = pool[e, 3] + old_start
                        if a0 < hi and lo < a1:
                            slot, pool, nxt, free, used = entry(
                                pool, nxt, free, used, pool[e, 0], pool[e, 1],
                                max(a0, lo) - shift, min(a1, hi) - shift, pool[e, 4])
                            nxt[slot] = h_w
                            h_w = slot
                        e = nxt[e]
            head_w[t] = h_w
            head_r[t] = -1
            indexed[t] = True
            r = seed_next[r]
        n_found = np.int64(0)
        c = core[pos]
        for a in range(ap_ptr[pos], ap_ptr[pos + 1]):
            t = ap_tensor[a]
            w = ap_write[a]
            if not w and not written[t]:
                continue  # never written (kernel inputs): no RAW now, no WAR later
            p0, p1, b0, b1 = ap_box[a, 0], ap_box[a, 1], ap_box[a, 2], ap_box[a, 3]
            if p1 <= p0 or b1 <= b0:
                continue
            key = t + tensors * (c + 1) if multi and not ap_onchip[a] else t
            indexed[key] = True
            for side in range(2 if w else 1):
                prev = -1
                e = head_w[key] if side == 0 else head_r[key]
                while e >= 0:
                    following = nxt[e]
                    if (b0 < pool[e, 3] and pool[e, 2] < b1 and pool[e, 0] < p1
                            and p0 < pool[e, 1]):
                        q = pool[e, 4]
                        if mark[q] != pos:
                            mark[q] = pos
                            found = append(found, n_found, q)
                            n_found += 1
                        if w and (p0 <= pool[e, 0] and pool[e, 1] <= p1 and b0 <= pool[e, 2]
                                  and pool[e, 3] <= b1):
                            # covered by this write: whoever overlaps it overlaps the write
                            if prev < 0:
                                if side == 0:
                                    head_w[key] = following
                                else:
                                    head_r[key] = following
                            else:
                                nxt[prev] = following
                            nxt[e] = free
                            free = e
                            e = following
                            continue
                    prev = e
                    e = following
            slot, pool, nxt, free, used = entry(pool, nxt, free, used, p0, p1, b0, b1, pos)
            if w:
                nxt[slot] = head_w[key]
                head_w[key] = slot
            else:
                nxt[slot] = head_r[key]
                head_r[key] = slot
        if has_fence:
            if barrier[pos]:  # wait for everything the core issued since its last fence
                for q in range(fence[c] + 1 if fence[c] >= 0 else 0, pos):
                    if core[q] == c and mark[q] != pos:
                        mark[q] = pos
                        found = append(found, n_found, q)
                        n_found += 1
                fence[c] = pos
            elif fence[c] >= 0 and mark[fence[c]] != pos:
                found = append(found, n_found, fence[c])
                n_found += 1
        if n_out + n_found > out.shape[0]:
            grown = np.empty(max(2 * out.shape[0], n_out + n_found), np.int64)
            grown[:n_out] = out[:n_out]
            out = grown
        k = n_out
        for i in range(n_found):
            if found[i] != pos:
                out[k] = found[i]
                k += 1
        sort_range(out, n_out, k)
        n_out = k
        out_ptr[pos + 1] = n_out
    return Dependencies(out_ptr, out[:n_out])
