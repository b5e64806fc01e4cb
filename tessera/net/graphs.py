"""Chip graphs inside one instance, built from the presets: torus/ring, switch, single chip.

Each builder returns the instance's directed links in local chip ids, the dimension-order
route between every pair of chips, and the orders algorithms walk chips in (a Hamiltonian
cycle for rings, hypercube labels for recursive halving-doubling). `topology` replicates a
local graph over instances and joins the copies by the network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from tessera import hw
from tessera.net.collective_calibration import CollectiveCalibration
from tessera.net.errors import TopologyError


class LinkFamily(StrEnum):
    """What a link is made of; selects the calibration constants that apply to it."""

    NEURONLINK = "neuronlink"
    NVLINK = "nvlink"
    NETWORK = "network"
    IDEAL = "ideal"  # synthetic links of test topologies: peak bandwidth, given latency


class RuntimeFamily(StrEnum):
    """Which collective runtime drives the chips (sets the collective overhead)."""

    NEURON = "neuron"
    GPU = "gpu"
    IDEAL = "ideal"


def torus_coords(dims: tuple[int, ...]) -> np.ndarray:
    return np.array(list(itertools.product(*(range(d) for d in dims))), dtype=np.int64)


def _snake(dims: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Boustrophedon order: a Hamiltonian cycle of a torus whose leading dims are even."""
    if len(dims) == 1:
        return [(i,) for i in range(dims[0])]
    inner = _snake(dims[1:])
    order: list[tuple[int, ...]] = []
    for i in range(dims[0]):
        seq = inner if i % 2 == 0 else inner[::-1]
        order += [(i, *rest) for rest in seq]
    return order


def _gray_label(coords: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Hypercube labels so that labels differing in one bit are torus neighbours.

    A ring of 4 is a 2-cube when walked in Gray-code order (0, 1, 3, 2), so a 4x4 torus is a
    4-cube, as the Neuron docs describe it [CCI]. Other sizes fall back to row-major order.
    """
    if not all(d & (d - 1) == 0 for d in dims):
        return np.ravel_multi_index(coords.T, dims)
    label = np.zeros(coords.shape[0], dtype=np.int64)
    for k, d in enumerate(dims):
        bits = d.bit_length() - 1
        c = coords[:, k]
        label = (label << bits) | (c ^ (c >> 1))
    return label


class LinkTable:
    """Accumulates links while a topology is built."""

    def __init__(self) -> None:
        self.src: list[int] = []
        self.dst: list[int] = []
        self.family: list[LinkFamily] = []
        self.peak: list[float] = []
        self.eff: list[float] = []
        self.lat: list[float] = []

    def add(self, src: int, dst: int, family: LinkFamily, peak: float, efficiency: float,
            latency_s: float) -> int:
        self.src.append(src)
        self.dst.append(dst)
        self.family.append(family)
        self.peak.append(peak)
        self.eff.append(peak * efficiency)
        self.lat.append(latency_s)
        return len(self.src) - 1


@dataclass(frozen=True)
class LocalGraph:
    """The chip graph inside one instance, in local ids."""

    dims: tuple[int, ...]
    links: LinkTable
    paths: np.ndarray
    ring_position: np.ndarray
    cube_label: np.ndarray
    coords: np.ndarray
    extra_nodes: tuple[str, ...]  # switch nodes, named per instance later


def _family(kind: hw.LinkKind) -> LinkFamily:
    return LinkFamily.NVLINK if kind.value.startswith("nvlink") else LinkFamily.NEURONLINK


def _link_params(spec: hw.LinkSpec, cal: CollectiveCalibration) -> tuple[float, float, float]:
    """(peak per-chip bytes/s per direction, efficiency, hop latency) of a link technology."""
    if spec.chip_bytes_per_s is None:
        raise TopologyError(f"link {spec.kind.value} ({spec.scope.value}) has no published "
                            "per-chip bandwidth in the presets")
    if _family(spec.kind) is LinkFamily.NVLINK:
        directions, eff, fallback = (cal.nvlink_figure_directions, cal.nvlink_efficiency,
                                     cal.nvlink_fallback_hop_latency_s)
    else:
        directions, eff, fallback = (cal.neuronlink_figure_directions, cal.neuronlink_efficiency,
                                     cal.neuronlink_fallback_hop_latency_s)
    latency = spec.hop_latency_s if spec.hop_latency_s is not None else fallback
    return spec.chip_bytes_per_s / directions, eff, latency


def _torus_graph(inst: hw.InstanceSpec, cal: CollectiveCalibration) -> LocalGraph:
    dims = tuple(inst.topology.dims)
    coords = torus_coords(dims)
    m = coords.shape[0]
    scopes = {spec.scope: spec for spec in inst.links}
    intra = scopes.get(hw.LinkScope.INTRA_NODE)
    if intra is None:
        raise TopologyError(f"{inst.name}: no intra-node link in the preset")
    # In an UltraServer the first torus dimension runs across its servers [TRN2].
    node_dim = 0 if inst.nodes > 1 and dims[0] == inst.nodes else None
    inter = scopes.get(hw.LinkScope.INTER_NODE)
    if node_dim is not None and inter is None:
        raise TopologyError(f"{inst.name}: {inst.nodes} servers but no inter-node link")
    table = LinkTable()
    # neighbour link ids: out_link[chip][dim][+1/-1]
    out_link: dict[tuple[int, int, int], int] = {}
    scope_count: dict[bool, int] = {True: 0, False: 0}
    for k, d in enumerate(dims):
        if d > 1:
            scope_count[k == node_dim] += 1 if d == 2 else 2
    for c in range(m):
        for k, d in enumerate(dims):
            if d == 1:
                continue
            across = k == node_dim
            spec = inter if across else intra
            assert spec is not None
            chip_bw, eff, lat = _link_params(spec, cal)
            per_link = chip_bw / scope_count[across]  # the chip's figure spread over its links
            for step in ((1,) if d == 2 else (1, -1)):
                nb = coords[c].copy()
                nb[k] = (nb[k] + step) % d
                dst = int(np.ravel_multi_index(tuple(nb), dims))
                lid = table.add(c, dst, _family(spec.kind), per_link, eff, lat)
                out_link[(c, k, step)] = lid
                if d == 2:
                    out_link[(c, k, -1)] = lid
    hops = sum(d // 2 for d in dims)
    paths = np.full((m, m, max(hops, 1)), -1, dtype=np.int64)
    for a in range(m):
        for b in range(m):
            cur = coords[a].copy()
            n = 0
            for k, d in enumerate(dims):
                delta = (coords[b][k] - cur[k]) % d
                step = 1 if delta <= d // 2 else -1  # shortest way round; ties go forward
                for _ in range(delta if step == 1 else d - delta):
                    here = int(np.ravel_multi_index(tuple(cur), dims))
                    paths[a, b, n] = out_link[(here, k, step)]
                    n += 1
                    cur[k] = (cur[k] + step) % d
    snake = _snake(dims)
    ring_position = np.empty(m, dtype=np.int64)
    for pos, c in enumerate(snake):
        ring_position[int(np.ravel_multi_index(c, dims))] = pos
    return LocalGraph(dims, table, paths, ring_position, _gray_label(coords, dims), coords, ())


def _switch_graph(inst: hw.InstanceSpec, cal: CollectiveCalibration) -> LocalGraph:
    m = inst.chip_count
    spec = next((s for s in inst.links if s.scope is hw.LinkScope.INTRA_NODE), None)
    if spec is None:
        raise TopologyError(f"{inst.name}: no intra-node link in the preset")
    chip_bw, eff, lat = _link_params(spec, cal)
    table = LinkTable()
    switch = m  # local node id of the switch
    up = [table.add(c, switch, _family(spec.kind), chip_bw, eff, lat) for c in range(m)]
    down = [table.add(switch, c, _family(spec.kind), chip_bw, eff, lat) for c in range(m)]
    paths = np.full((m, m, 2), -1, dtype=np.int64)
    for a in range(m):
        for b in range(m):
            if a != b:
                paths[a, b] = (up[a], down[b])
    idx = np.arange(m)
    return LocalGraph((m,), table, paths, idx, idx, idx[:, None], ("sw",))


def _single_graph() -> LocalGraph:
    z = np.zeros(1, dtype=np.int64)
    return LocalGraph((1,), LinkTable(), np.full((1, 1, 1), -1, dtype=np.int64), z, z,
                       z[:, None], ())


def local_graph(inst: hw.InstanceSpec, cal: CollectiveCalibration) -> LocalGraph:
    kind = inst.topology.kind
    if kind in (hw.TopologyKind.TORUS_2D, hw.TopologyKind.TORUS_3D, hw.TopologyKind.RING):
        return _torus_graph(inst, cal)
    if kind in (hw.TopologyKind.NVSWITCH, hw.TopologyKind.SWITCH):
        return _switch_graph(inst, cal)
    if inst.chip_count == 1:
        return _single_graph()
    raise TopologyError(f"{inst.name}: topology kind {kind.value} is not modelled")


def ring_graph(n_chips: int, per_direction_bytes_per_s: float, latency_s: float) -> LocalGraph:
    """A ring of `n_chips` with ideal links (no efficiency), routed the shorter way round."""
    table = LinkTable()
    out: dict[tuple[int, int], int] = {}
    for c in range(n_chips):
        for step in ((1,) if n_chips == 2 else (1, -1)):
            out[(c, step)] = table.add(c, (c + step) % n_chips, LinkFamily.IDEAL,
                                       per_direction_bytes_per_s, 1.0, latency_s)
        if n_chips == 2:
            out[(c, -1)] = out[(c, 1)]
    hops = max(n_chips // 2, 1)
    paths = np.full((n_chips, n_chips, hops), -1, dtype=np.int64)
    for a in range(n_chips):
        for b in range(n_chips):
            delta = (b - a) % n_chips
            step = 1 if delta <= n_chips // 2 else -1
            cur = a
            for h in range(delta if step == 1 else n_chips - delta):
                paths[a, b, h] = out[(cur, step)]
                cur = (cur + step) % n_chips
    idx = np.arange(n_chips)
    return LocalGraph((n_chips,), table, paths, idx, idx, idx[:, None], ())
