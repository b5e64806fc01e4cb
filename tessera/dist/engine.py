"""Costing steps on a topology: route flows, load links, take the slowest flow.

Within a step every flow starts at once. Each link's load is the bytes of all flows crossing
it; a flow shares each link in proportion to its bytes, so it finishes after
`load / bandwidth` of its busiest link (contention and oversubscription show up here), plus
its latency: the runtime's per-step latency and the hop latency of every link it crosses.
The step ends with its slowest flow. Reductions and copies also move bytes through HBM: a
flow reads its source once (twice when it reduces: the received partial and the local
chunk) and writes its destination once. The runtime overlaps the two halves of a chunk,
reducing one while sending the other [CCI], so HBM time overlaps the transfer and the step
takes the larger of the two.

All flow bytes are fractions of the collective's size V, so a step is summarised by lines
`latency + seconds_per_byte * V` (the upper envelope over its flows) and is costed at any V
without re-routing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from tessera.dist.placement import RankMap
from tessera.dist.schedule import Step
from tessera.dist.topology import Topology

# Mesh steps with more members than this are costed from per-chip counts rather than by
# listing n^2 flows; the two ways agree exactly (tested).
EXPLICIT_PAIRS_LIMIT = 96


@dataclass(frozen=True)
class StepProfile:
    """One step's time as a function of the collective size V (in bytes)."""

    count: int
    lines: tuple[tuple[float, float], ...]  # (latency_s, seconds per byte of V)
    base_latency_s: float
    hbm_s_per_byte: float

    def time_s(self, n_bytes: float) -> float:
        """Time of all `count` repetitions of this step at size `n_bytes`."""
        t = max(lat + s * n_bytes for lat, s in self.lines)
        return self.count * max(t, self.base_latency_s + self.hbm_s_per_byte * n_bytes)


@dataclass(frozen=True, eq=False)
class CostProfile:
    """A whole schedule: its steps and how long each link is busy per byte of V."""

    steps: tuple[StepProfile, ...]
    link_busy_s_per_byte: np.ndarray = field(repr=False)

    @property
    def n_steps(self) -> int:
        """Algorithm steps, counting repetitions."""
        return sum(s.count for s in self.steps)

    def time_s(self, n_bytes: float) -> float:
        """Predicted time of the collective at size `n_bytes`."""
        return sum(s.time_s(n_bytes) for s in self.steps)

    def busiest_link(self) -> tuple[int, float] | None:
        """(link id, busy seconds per byte of V) of the most loaded link; None if no link."""
        if self.link_busy_s_per_byte.size == 0:
            return None
        i = int(np.argmax(self.link_busy_s_per_byte))
        busy = float(self.link_busy_s_per_byte[i])
        return (i, busy) if busy > 0 else None


def envelope(lat: np.ndarray, slope: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Lines (lat, slope) that attain max_i(lat_i + slope_i x) for some x >= 0."""
    latest = np.flatnonzero(lat == lat.max())
    steepest = np.flatnonzero(slope == slope.max())
    i_lat = int(latest[np.argmax(slope[latest])])  # the latest flow, steepest among ties
    i_slope = int(steepest[np.argmax(lat[steepest])])  # the steepest, latest among ties
    a, b = (float(lat[i_lat]), float(slope[i_lat])), (float(lat[i_slope]), float(slope[i_slope]))
    if a[1] >= b[1]:  # the latest flow is also the steepest: it bounds every other
        return (a,)
    # Usually the latest flow and the steepest flow bound all others: check at their crossing.
    cross = (a[0] - b[0]) / (b[1] - a[1])
    if (lat + slope * cross <= a[0] + a[1] * cross + 1e-15 * (1 + a[0])).all():
        return (a, b)
    order = np.lexsort((-lat, -slope))  # slope descending, then latency descending
    lat_s, slope_s = lat[order], slope[order]
    best_before = np.maximum.accumulate(np.r_[-np.inf, lat_s[:-1]])
    keep = lat_s > best_before  # Pareto: nothing steeper is also at least as late
    cand = list(zip(lat_s[keep][::-1].tolist(), slope_s[keep][::-1].tolist(), strict=True))
    hull: list[tuple[float, float]] = []  # slopes ascending, latencies descending
    for line in cand:
        while len(hull) >= 2:
            (a0, b0), (a1, b1) = hull[-2], hull[-1]
            # hull[-1] is useless if `line` overtakes hull[-2] no later than hull[-1] does
            if (a0 - line[0]) * (b1 - b0) <= (a0 - a1) * (line[1] - b0):
                hull.pop()
            else:
                break
        hull.append(line)
    return tuple(hull)


@functools.lru_cache(maxsize=32)
def _extended(topo: Topology) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Link bandwidth and latency with one extra 'no link' entry (inf bandwidth, 0 latency),
    and the local paths as (hops >= 2, m, m) padded with that entry, so that per-flow
    reductions run along long axes and a network route (up, down) fits."""
    local = topo.local_paths.transpose(2, 0, 1)
    paths_t = np.full((max(local.shape[0], 2), *local.shape[1:]), topo.n_links, dtype=np.int64)
    paths_t[:local.shape[0]] = np.where(local >= 0, local, topo.n_links)
    return np.r_[topo.link_bytes_per_s, np.inf], np.r_[topo.link_latency_s, 0.0], paths_t


@functools.lru_cache(maxsize=32)
def _flat_paths(topo: Topology) -> np.ndarray:
    """Local paths as (hops, m * m): np.take along one axis is the fastest gather."""
    paths_t = _extended(topo)[2]
    return np.ascontiguousarray(paths_t.reshape(paths_t.shape[0], -1))


def _flow_paths(topo: Topology, src_chip: np.ndarray, dst_chip: np.ndarray) -> np.ndarray:
    """(hops, flows) link ids of each flow's route, padded with the 'no link' id."""
    m, nl = topo.chips_per_instance, topo.n_links
    flat = _flat_paths(topo)
    if topo.instances == 1:  # every flow is local (or on one chip)
        return np.take(flat, src_chip * m + dst_chip, axis=1)
    si, sl = np.divmod(src_chip, m)
    di, dl = np.divmod(dst_chip, m)
    lp = np.take(flat, sl * m + dl, axis=1)
    cross = si != di
    # local routes shifted to the sender's instance; network routes go up, then down
    paths = np.where(lp < nl, lp + si * topo.links_per_instance, nl)
    paths[0] = np.where(cross, topo.up_base + src_chip, paths[0])
    paths[1] = np.where(cross, topo.down_base + dst_chip, paths[1])
    if paths.shape[0] > 2:
        paths[2:] = np.where(cross, nl, paths[2:])
    return paths


@dataclass(frozen=True, eq=False)
class _Routed:
    """A step's routing result, shared by the step and its mirror (which differs in HBM only)."""

    lines: tuple[tuple[float, float], ...]
    busy: np.ndarray  # link busy seconds per byte of V (one repetition)
    sends: np.ndarray  # flows leaving each chip (x fraction = bytes per byte of V)
    receives: np.ndarray  # flows arriving at each chip

    def hbm_s_per_byte(self, topo: Topology, frac: float, reduce: bool) -> float:
        reads = 2.0 if reduce else 1.0  # a reducing sender reads the partial and its chunk
        traffic = (self.sends * reads + self.receives) * frac
        return float(traffic.max() / topo.hbm_bytes_per_s)


def _explicit(topo: Topology, src_chip: np.ndarray, dst_chip: np.ndarray, frac: float
              ) -> _Routed:
    """Route a flow list: per-flow latency and slope, link busy time, per-chip flow counts."""
    bw, lat, _ = _extended(topo)
    paths = _flow_paths(topo, src_chip, dst_chip)
    load = np.bincount(paths.ravel(), minlength=topo.n_links + 1) * frac
    busy = load / bw
    flow_s = np.take(busy, paths).max(axis=0)
    flow_lat = topo.step_latency_s + np.take(lat, paths).sum(axis=0)
    n = topo.n_chips
    return _Routed(envelope(flow_lat, flow_s), busy[:-1],
                   np.bincount(src_chip, minlength=n).astype(float),
                   np.bincount(dst_chip, minlength=n).astype(float))


def _pairs(labels: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of members that share a label."""
    src, dst = [], []
    for lab in np.unique(labels):
        g = members[labels == lab]
        k = g.size
        a, b = np.repeat(g, k), np.tile(g, k)
        keep = a != b
        src.append(a[keep])
        dst.append(b[keep])
    return np.concatenate(src), np.concatenate(dst)


def _mesh_by_counts(topo: Topology, chips: np.ndarray, frac: float) -> _Routed:
    """Mesh among one set of ranks from per-chip rank counts (no n^2 flow list).

    Gives the same lines, link loads and HBM traffic as listing every pair (tested).
    """
    n, m, g = topo.n_chips, topo.chips_per_instance, topo.instances
    bw, lat, paths_t = _extended(topo)  # paths_t: (H, m, m) local ids, n_links = none
    nl = topo.n_links
    r = np.bincount(chips, minlength=n).astype(float)
    total = r.sum()
    per_inst = r.reshape(g, m)
    lats: list[np.ndarray] = []
    slopes: list[np.ndarray] = []
    # chip pairs inside each instance, routed on the local graph
    weight = per_inst[:, :, None] * per_inst[:, None, :]
    idx = np.arange(m)
    weight[:, idx, idx] = 0.0
    offsets = (np.arange(g) * topo.links_per_instance)[None, :, None, None]
    glob = np.where(paths_t[:, None] < nl, paths_t[:, None] + offsets, nl)  # (H, g, m, m)
    flow_w = np.broadcast_to(weight[None], glob.shape)
    load = np.bincount(glob.ravel(), weights=flow_w.ravel() * frac, minlength=nl + 1)
    load[-1] = 0.0
    if g > 1:  # each rank on chip c sends to and receives from every rank elsewhere
        remote = (total - per_inst.sum(axis=1)).repeat(m) * r * frac
        load[topo.up_base:topo.up_base + n] = remote
        load[topo.down_base:topo.down_base + n] = remote
    busy = load / bw
    used = weight > 0
    if used.any():
        pair_s = np.where(used, busy[glob].max(axis=0), -np.inf).max(axis=0)
        any_used = used.any(axis=0)
        pair_lat = topo.step_latency_s + lat[paths_t].sum(axis=0)
        lats.append(pair_lat[any_used])
        slopes.append(pair_s[any_used])
    if (r >= 2).any():  # ranks sharing a chip: no link, HBM only
        lats.append(np.array([topo.step_latency_s]))
        slopes.append(np.array([0.0]))
    if g > 1 and (per_inst.sum(axis=1) > 0).sum() >= 2:
        net = np.r_[busy[topo.up_base:topo.up_base + n], busy[topo.down_base:topo.down_base + n]]
        lats.append(np.array([topo.step_latency_s + lat[topo.up_base] + lat[topo.down_base]]))
        slopes.append(np.array([net.max()]))
    flows = r * (total - 1)
    return _Routed(envelope(np.concatenate(lats), np.concatenate(slopes)), busy[:-1], flows,
                   flows)


def _route(step: Step, rm: RankMap) -> _Routed:
    topo = rm.topology
    if step.pair_labels is None:
        return _explicit(topo, rm.chip[step.src], rm.chip[step.dst], step.fraction)
    labels, members = step.pair_labels, step.src
    if np.unique(labels).size == 1 and members.size > EXPLICIT_PAIRS_LIMIT:
        return _mesh_by_counts(topo, rm.chip[members], step.fraction)
    src, dst = _pairs(labels, members)
    return _explicit(topo, rm.chip[src], rm.chip[dst], step.fraction)


def profile_step(step: Step, rm: RankMap) -> tuple[StepProfile, np.ndarray]:
    """Summarise one step: its time lines and the busy seconds/byte it puts on each link."""
    routed = _route(step, rm)
    topo = rm.topology
    hbm = routed.hbm_s_per_byte(topo, step.fraction, step.reduce)
    return (StepProfile(step.count, routed.lines, topo.step_latency_s, hbm),
            routed.busy * step.count)


def profile(steps: list[Step], rm: RankMap) -> CostProfile:
    """Cost profile of a whole schedule.

    The all-gather half of a schedule mirrors its reduce-scatter half with the same flow
    arrays; each distinct step is routed once and only the HBM term is redone for its mirror.
    """
    topo = rm.topology
    busy_total = np.zeros(topo.n_links)
    routed: dict[tuple[int, int, float, int], _Routed] = {}
    out = []
    for step in steps:
        key = (id(step.src), id(step.dst), step.fraction, id(step.pair_labels))
        if key not in routed:
            routed[key] = _route(step, rm)
        r = routed[key]
        out.append(StepProfile(step.count, r.lines, topo.step_latency_s,
                               r.hbm_s_per_byte(topo, step.fraction, step.reduce)))
        busy_total += r.busy * step.count
    return CostProfile(tuple(out), busy_total)
