"""Routing batches of steps on a topology: link loads, per-class slopes, HBM traffic.

Links are addressed per instance in an extended space of `E` ids: the instance's local links,
then the up-link and the down-link of each of its chips to the network, then 'no link'. A
flow inside an instance crosses its dimension-order route; a flow between instances crosses
its sender's up-link and its receiver's down-link. Every instance is a copy of the first, so
bandwidths and routes are per-instance tables.

A batch holds the distinct steps of one or more schedules, routed with a fixed number of
numpy passes whatever the number of steps (the cost on slow hosts is per numpy call). In a
`rep` batch each flow list is the one-instance representative of a symmetric step: its
loads land on one instance row, which stands for every instance of the step (what the
representative's receivers get is what each instance's chips get, by the symmetry).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tessera.net.placement import RankMap
from tessera.net.topology import Topology

# per step: src ranks, dst ranks, fraction, the sender chip's extra HBM accesses per flow
Items = list[tuple[np.ndarray, np.ndarray, float, int]]


@dataclass(frozen=True, eq=False)
class Tables:
    """Per-topology routing tables in instance-local, extended link ids."""

    m: int  # chips per instance
    g: int  # instances
    n_local: int  # local links per instance (ids 0 .. n_local - 1)
    e: int  # extended ids per instance: local, up (m), down (m), 'no link' (e - 1)
    paths: np.ndarray  # (m * m, hops >= 2) extended ids of the route between two chips
    net_paths: np.ndarray  # (m * m, hops) ids of the same chips in different instances
    bw: np.ndarray  # (e,) bytes/s of each extended id; inf for 'no link'
    level_of_pair: np.ndarray  # (m * m,) hop-latency class of each chip pair
    level_lat_s: tuple[float, ...]  # latency of each class; the last is the network's


@functools.lru_cache(maxsize=32)
def tables(topo: Topology) -> Tables:
    """Routing tables of `topo` (cached)."""
    m, nl, n = topo.chips_per_instance, topo.links_per_instance, topo.n_chips
    e = nl + 2 * m + 1
    local = topo.local_paths.reshape(m * m, -1)
    paths = np.full((m * m, max(local.shape[1], 2)), e - 1, dtype=np.int64)
    paths[:, :local.shape[1]] = np.where(local >= 0, local, e - 1)
    src_chip, dst_chip = np.divmod(np.arange(m * m), m)
    net_paths = np.full_like(paths, e - 1)
    net_paths[:, 0] = nl + src_chip  # the sender's up-link
    net_paths[:, 1] = nl + m + dst_chip  # the receiver's down-link
    lat = np.r_[topo.link_latency_s[:nl], np.zeros(2 * m + 1)]
    levels, level_of_pair = np.unique(lat[paths].sum(axis=1), return_inverse=True)
    bw = np.full(e, np.inf)
    bw[:nl] = topo.link_bytes_per_s[:nl]
    net_lat = 0.0
    if topo.instances > 1:  # instances are identical: the first one's chips stand for all
        bw[nl:nl + m] = topo.link_bytes_per_s[topo.up_base:topo.up_base + m]
        bw[nl + m:nl + 2 * m] = topo.link_bytes_per_s[topo.down_base:topo.down_base + m]
        # every chip's network links have the same latency; max keeps it an upper bound
        net_lat = float(topo.link_latency_s[topo.up_base:topo.up_base + n].max()
                        + topo.link_latency_s[topo.down_base:topo.down_base + n].max())
    return Tables(m, topo.instances, nl, e, paths, net_paths, bw, level_of_pair.ravel(),
                  (*levels.tolist(), net_lat))


@dataclass(frozen=True, eq=False)
class Batch:
    """Routing result of S distinct steps (one repetition each, fraction included)."""

    lines: list[list[tuple[float, float]]]  # per step: (hop latency, busy s/B) per class
    hbm_reduce_s_per_byte: list[float]  # per step; the sender reads two operands
    hbm_copy_s_per_byte: list[float]
    busy: np.ndarray  # (S, rows, e) busy seconds per byte of V of each extended link id
    # Plain batches: the instance of each row (instances no flow touches have none).
    row_instances: np.ndarray | None
    # Representative batches: one row per step, repeated over these instances.
    instances: Sequence[np.ndarray] | None = None


def _finish(smax: np.ndarray, sends: np.ndarray, receives: np.ndarray, frac: np.ndarray,
            busy: np.ndarray, topo: Topology, t: Tables, row_instances: np.ndarray | None,
            instances: Sequence[np.ndarray] | None, extra: np.ndarray | None = None) -> Batch:
    """Lines of the classes present, and HBM seconds per byte of the busiest chip.

    A chip's HBM accesses per step: one read per flow it sends (plus `extra` per flow), one
    write per flow it receives, and one more read per flow it sends when reducing.
    """
    lats = t.level_lat_s
    lines: list[list[tuple[float, float]]] = [[] for _ in range(smax.shape[0])]
    present = (smax != -np.inf).nonzero()
    for s, k, v in zip(*(x.tolist() for x in present), smax[present].tolist(), strict=True):
        lines[s].append((lats[k], v))
    scale = frac / topo.hbm_bytes_per_s
    both = sends + receives
    if extra is not None and extra.any():
        both = both + sends * extra[:, None]
    return Batch(lines, ((both + sends).max(axis=1) * scale).tolist(),
                 (both.max(axis=1) * scale).tolist(), busy, row_instances, instances)


def route_flows(items: Items, rm: RankMap, t: Tables,
                instances: Sequence[np.ndarray] | None) -> Batch:
    """Route the flow lists of S steps together (`instances` set: representatives)."""
    topo = rm.topology
    n_steps, m, e = len(items), t.m, t.e
    src = np.concatenate([it[0] for it in items])
    nf = src.size
    ends = rm.chip[np.concatenate([src, *(it[1] for it in items)])]
    inst, loc = np.divmod(ends, m)
    if instances is not None:  # representatives: one row, chips-in-instance for all
        rows, row_instances, row, slot = 1, None, 0 * inst, loc
    else:  # one row per instance the flows touch
        touched = np.bincount(inst, minlength=t.g) > 0
        row_instances = touched.nonzero()[0]
        rows = row_instances.size
        row = inst if rows == t.g else (touched.cumsum() - 1)[inst]
        slot = row * m + loc
    frac = np.array([it[2] for it in items])
    extra = np.array([it[3] for it in items], dtype=float)
    sid = np.repeat(np.arange(n_steps), [it[0].size for it in items])
    sl, dl = loc[:nf], loc[nf:]
    pair = sl * m + dl
    # inside an instance: the route; between instances: sender's up-, receiver's down-link
    same = inst[:nf] == inst[nf:]
    ids = np.where(same[:, None], t.paths[pair], t.net_paths[pair])
    cls = np.where(same, t.level_of_pair[pair], len(t.level_lat_s) - 1)
    if rows > 1:  # the down-link is in the receiver's row (no shift for local flows)
        ids[:, 1] += (row[nf:] - row[:nf]) * e
    keys = ids + ((sid * rows + row[:nf]) * e)[:, None]
    load = np.bincount(keys.ravel(), frac[sid].repeat(ids.shape[1]),
                       minlength=n_steps * rows * e)
    busy = load.reshape(-1, e) / t.bw
    smax = np.full(n_steps * len(t.level_lat_s), -np.inf)
    np.maximum.at(smax, sid * len(t.level_lat_s) + cls, busy.ravel()[keys].max(axis=1))
    slots = rows * m
    where = sid * slots
    counts = np.bincount(np.concatenate((where + slot[:nf], where + slot[nf:]
                                         + n_steps * slots)), minlength=2 * n_steps * slots)
    counts = counts.reshape(2, n_steps, slots)
    return _finish(smax.reshape(n_steps, -1), counts[0], counts[1], frac,
                   busy.reshape(n_steps, rows, e), topo, t, row_instances, instances, extra)


def mesh_by_counts(chips: np.ndarray, frac: float, rm: RankMap, t: Tables,
                   symmetry: bool) -> Batch:
    """Mesh among one set of ranks from per-chip rank counts (no n^2 flow list).

    Gives the same lines, link loads and HBM traffic as listing every pair (tested).
    """
    m, g, e, nl = t.m, t.g, t.e, t.n_local
    per_inst = np.bincount(chips, minlength=g * m).astype(float).reshape(g, m)
    total = per_inst.sum()
    sym = symmetry and g > 1 and bool((per_inst == per_inst[0]).all())
    occupied = per_inst.sum(axis=1).nonzero()[0]
    r = per_inst[:1] if sym else per_inst[occupied]  # instances without members carry nothing
    rows = r.shape[0]
    weight = r[:, :, None] * r[:, None, :]  # rank pairs per chip pair
    idx = np.arange(m)
    weight[:, idx, idx] = r * (r - 1)  # ranks sharing a chip: no link, HBM only
    weight = weight.reshape(-1) * frac
    used = weight.nonzero()[0]  # (row, chip pair) with flows, as row * m^2 + pair
    pair = used % (m * m)
    keys = t.paths[pair] + (used // (m * m) * e)[:, None]
    load = np.bincount(keys.ravel(), weights=weight[used].repeat(keys.shape[1]),
                       minlength=rows * e).reshape(rows, e)
    smax = np.full(len(t.level_lat_s), -np.inf)
    np.maximum.at(smax, t.level_of_pair[pair], (load / t.bw).ravel()[keys].max(axis=1))
    if occupied.size >= 2:
        # each rank on chip c sends to and receives from every rank of the other instances
        remote = (total - r.sum(axis=1, keepdims=True)) * r * frac
        load[:, nl:nl + m] = remote
        load[:, nl + m:nl + 2 * m] = remote
        smax[-1] = max((remote / t.bw[nl:nl + m]).max(),
                       (remote / t.bw[nl + m:nl + 2 * m]).max())
    flows = (r * (total - 1)).reshape(1, -1)
    return _finish(smax[None], flows, flows, np.array([frac]), (load / t.bw)[None],
                   rm.topology, t, None if sym else occupied, [np.arange(g)] if sym else None)


def pairs(labels: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of members that share a label."""
    order = np.argsort(labels, kind="stable")
    g, lab = members[order], labels[order]
    starts = np.r_[0, np.flatnonzero(np.diff(lab)) + 1]
    sizes = np.diff(np.r_[starts, lab.size])
    size_of = np.repeat(sizes, sizes)
    a = np.repeat(np.arange(lab.size), size_of)  # each member once per member of its label
    offset = np.arange(a.size) - np.repeat(np.cumsum(size_of) - size_of, size_of)
    b = np.repeat(np.repeat(starts, sizes), size_of) + offset
    keep = a != b
    return g[a[keep]], g[b[keep]]


def add_busy(total: np.ndarray, batch: Batch, mult: np.ndarray, topo: Topology,
             t: Tables) -> None:
    """Add `mult`-weighted link busy times of a batch's steps to the whole-topology array."""
    n, g, nl, m = topo.n_chips, t.g, t.n_local, t.m
    views = [(total[:g * nl].reshape(g, nl), slice(0, nl))]
    if g > 1:
        views += [(total[topo.up_base:topo.up_base + n].reshape(g, m), slice(nl, nl + m)),
                  (total[topo.down_base:topo.down_base + n].reshape(g, m),
                   slice(nl + m, nl + 2 * m))]
    if batch.instances is None:  # plain batch: one row per touched instance
        insts = batch.row_instances
        summed = (mult @ batch.busy.reshape(mult.size, -1)).reshape(insts.size, -1)
        for view, cols in views:
            if insts.size == g:
                view += summed[:, cols]
            else:
                view[insts] += summed[:, cols]
        return
    # one row per step, repeated over its instances: sum the rows of each instance set first
    sets: dict[int, list[int]] = {}
    for s, insts in enumerate(batch.instances):
        if mult[s]:
            sets.setdefault(id(insts), []).append(s)
    for members in sets.values():
        insts = batch.instances[members[0]]
        row = mult[members] @ batch.busy[members, 0]
        for view, cols in views:
            if insts.size == g:  # every instance (distinct ids): no fancy indexing
                view += row[cols]
            else:
                view[insts] += row[cols]
