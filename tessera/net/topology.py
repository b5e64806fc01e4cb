"""Topologies: accelerators and directed links with bandwidth and latency, built from presets.

A `Topology` is one or more identical instances (a trn1.32xlarge, a Trn2 UltraServer, a p5
node) joined by the instance network. Inside an instance the chips are wired as the preset's
`topology.kind` says: a torus (trn1/trn2 4x4, the UltraServer's 4x4x4 whose first dimension
crosses servers), a ring (inf2), or a switch (NVSwitch). Between instances every chip has an
up- and a down-link to a non-blocking network with its share of the instance's EFA bandwidth
(Trn2 has one NIC per chip [TRN2]).

Links are stored as arrays (src, dst, bandwidth per direction, latency) so that routing and
costing stay vectorised on 1,000-chip clusters. Routes are deterministic: dimension-order
shortest paths on a torus (the way NeuronLink routes a write to a remote chip), through the
switch on a star, and straight up/down the network between instances.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from tessera import hw
from tessera.net.collective_calibration import CollectiveCalibration, load_calibration
from tessera.net.errors import TopologyError
from tessera.net.graphs import LinkFamily, LocalGraph, RuntimeFamily, local_graph, ring_graph


@dataclass(frozen=True)
class Link:
    """One directed link. `bytes_per_s` is what the model uses (peak x efficiency)."""

    index: int
    src: str
    dst: str
    family: LinkFamily
    bytes_per_s: float
    peak_bytes_per_s: float
    latency_s: float

    def __str__(self) -> str:
        return (f"{self.src} -> {self.dst} ({self.family.value}, "
                f"{self.bytes_per_s / 1e9:.3g} GB/s effective)")


@dataclass(frozen=True, eq=False)
class Topology:
    """Chips of `instances` identical instances and the links between them (see module doc).

    Global chip id = instance x chips_per_instance + local chip. Link ids: instance i's
    internal links are `i * links_per_instance + local id`; the network up-link of chip c is
    `up_base + c` and its down-link `down_base + c`.
    """

    name: str
    key: str
    runtime: RuntimeFamily
    instances: int
    chips_per_instance: int
    physical_cores_per_chip: int
    lnc_allowed: tuple[int, ...]
    lnc_default: int
    dims: tuple[int, ...]  # shape of the chip graph inside an instance
    is_torus: bool  # chips wired as a torus/ring (dims) rather than through a switch
    hbm_bytes_per_s: float  # per chip; inf for ideal topologies
    # Latency split (see engine): once per collective, and once per message a rank issues.
    # `collective_overhead_s` is what a standalone collective pays (as nccom-test times
    # it); `in_graph_overhead_s` what one inside a compiled graph pays instead (see
    # calibration/collectives.yaml and docs/net.md).
    collective_overhead_s: float
    message_issue_s: float
    in_graph_overhead_s: float
    dma_engines_per_core: int  # engines a physical core's DMAs can start on at once
    node_names: tuple[str, ...] = field(repr=False)
    link_src: np.ndarray = field(repr=False)
    link_dst: np.ndarray = field(repr=False)
    link_family: tuple[LinkFamily, ...] = field(repr=False)
    link_bytes_per_s: np.ndarray = field(repr=False)
    link_peak_bytes_per_s: np.ndarray = field(repr=False)
    link_latency_s: np.ndarray = field(repr=False)
    links_per_instance: int = 0
    local_paths: np.ndarray = field(repr=False, default=None)  # (m, m, H) local ids, -1 pad
    up_base: int = -1
    down_base: int = -1
    ring_position: np.ndarray = field(repr=False, default=None)  # Hamiltonian-cycle order
    cube_label: np.ndarray = field(repr=False, default=None)  # hypercube label (RHD order)
    chip_coords: np.ndarray = field(repr=False, default=None)  # (m, len(dims))
    # The Neuron runtime's Mesh / RDH message-size bounds (`policy`; unused elsewhere).
    runtime_size_bounds: tuple[int, int] = (0, 0)

    @property
    def n_chips(self) -> int:
        """Accelerators in the whole topology."""
        return self.instances * self.chips_per_instance

    @property
    def n_links(self) -> int:
        """Directed links in the whole topology."""
        return int(self.link_src.shape[0])

    def link(self, index: int) -> Link:
        """The link with id `index`, as a readable record."""
        return Link(index=index, src=self.node_names[self.link_src[index]],
                    dst=self.node_names[self.link_dst[index]],
                    family=self.link_family[index],
                    bytes_per_s=float(self.link_bytes_per_s[index]),
                    peak_bytes_per_s=float(self.link_peak_bytes_per_s[index]),
                    latency_s=float(self.link_latency_s[index]))

    def route(self, src_chip: int, dst_chip: int) -> tuple[int, ...]:
        """Link ids a transfer from `src_chip` to `dst_chip` crosses (empty on one chip)."""
        for chip in (src_chip, dst_chip):
            if not 0 <= chip < self.n_chips:
                raise TopologyError(f"chip {chip} is not in {self.name} "
                                    f"({self.n_chips} chips)")
        if src_chip == dst_chip:
            return ()
        m = self.chips_per_instance
        si, sl = divmod(src_chip, m)
        di, dl = divmod(dst_chip, m)
        if si != di:
            return (self.up_base + src_chip, self.down_base + dst_chip)
        local = self.local_paths[sl, dl]
        return tuple(int(x) + si * self.links_per_instance for x in local if x >= 0)

    def chip_name(self, chip: int) -> str:
        """Readable name of a global chip id."""
        return self.node_names[chip]


# --- construction helpers -------------------------------------------------------------------

def _assemble(name: str, key: str, runtime: RuntimeFamily, spec_fields: dict,
              local: LocalGraph, instances: int, network: tuple[float, float] | None
              ) -> Topology:
    """Replicate the local graph `instances` times and join the copies by the network."""
    m = local.paths.shape[0]
    n_local_links = len(local.links.src)
    n_local_nodes = m + len(local.extra_nodes)
    names: list[str] = []
    for i in range(instances):
        names += [f"i{i}.chip{c}" for c in range(m)]
    switch_names = [f"i{i}.{x}" for i in range(instances) for x in local.extra_nodes]
    names += switch_names
    net_node = len(names)
    names.append("network")

    def node(i: int, local_id: int) -> int:
        if local_id < m:
            return i * m + local_id
        return instances * m + i * len(local.extra_nodes) + (local_id - m)

    lsrc = np.array(local.links.src, dtype=np.int64)
    ldst = np.array(local.links.dst, dtype=np.int64)
    src = [np.array([node(i, s) for s in lsrc], dtype=np.int64) for i in range(instances)]
    dst = [np.array([node(i, d) for d in ldst], dtype=np.int64) for i in range(instances)]
    fam = list(local.links.family) * instances
    eff = list(local.links.eff) * instances
    peak = list(local.links.peak) * instances
    lat = list(local.links.lat) * instances
    up_base = down_base = -1
    if instances > 1:
        assert network is not None
        per_chip_bw, p2p_latency = network
        eff_net = per_chip_bw * spec_fields.pop("network_efficiency")
        n = instances * m
        up_base = instances * n_local_links
        down_base = up_base + n
        chips = np.arange(n, dtype=np.int64)
        src += [chips, np.full(n, net_node, dtype=np.int64)]
        dst += [np.full(n, net_node, dtype=np.int64), chips]
        fam += [LinkFamily.NETWORK] * (2 * n)
        eff += [eff_net] * (2 * n)
        peak += [per_chip_bw] * (2 * n)
        lat += [p2p_latency / 2] * (2 * n)  # half of the point-to-point latency each way
    else:
        spec_fields.pop("network_efficiency", None)
    del n_local_nodes
    return Topology(
        name=name, key=key, runtime=runtime, instances=instances, chips_per_instance=m,
        dims=local.dims, node_names=tuple(names),
        link_src=np.concatenate(src) if src else np.zeros(0, dtype=np.int64),
        link_dst=np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64),
        link_family=tuple(fam), link_bytes_per_s=np.array(eff, dtype=float),
        link_peak_bytes_per_s=np.array(peak, dtype=float),
        link_latency_s=np.array(lat, dtype=float), links_per_instance=n_local_links,
        local_paths=local.paths, up_base=up_base, down_base=down_base,
        ring_position=local.ring_position, cube_label=local.cube_label,
        chip_coords=local.coords, **spec_fields)


@functools.lru_cache(maxsize=64)
def _from_instance(name: str, instances: int, cal: CollectiveCalibration) -> Topology:
    try:
        inst = hw.load_instance(name)
    except hw.UnknownPresetError as exc:
        raise TopologyError(str(exc)) from None
    if instances < 1:
        raise TopologyError(f"instances must be >= 1, not {instances}")
    local = local_graph(inst, cal)
    chip = inst.chip
    neuron = isinstance(chip, hw.ChipSpec)
    network = None
    if instances > 1:
        per_chip = inst.efa_bytes_per_s_per_chip
        if per_chip is None:
            raise TopologyError(f"{inst.name} has no published EFA bandwidth, so a cluster of "
                                f"{instances} cannot be modelled; use one instance")
        p2p = inst.network.p2p_latency_s
        network = (per_chip, p2p if p2p is not None else cal.network_fallback_p2p_latency_s)
    if neuron:
        # each peer transfer is a DMA started by a semaphore from the peer ([DMABW] ~1.3 us)
        issue = chip.core.dma.fixed_latency_s
        engines = chip.core.dma.engines_per_core
        if issue is None or engines is None:
            raise TopologyError(f"{chip.name}: no DMA fixed latency or engine count in the "
                                f"preset")
    else:
        issue, engines = cal.gpu_message_issue_s, 1
    fields = dict(
        physical_cores_per_chip=chip.physical_cores if neuron else 1,
        lnc_allowed=tuple(chip.lnc_allowed) if neuron else (1,),
        lnc_default=chip.lnc_default if neuron else 1,
        hbm_bytes_per_s=chip.hbm.bytes_per_s,
        collective_overhead_s=(cal.neuron_collective_overhead_s if neuron
                               else cal.gpu_collective_overhead_s),
        # GPU: no in-graph figure, so an in-graph collective costs what a standalone one does
        in_graph_overhead_s=(cal.neuron_in_graph_overhead_s if neuron
                             else cal.gpu_collective_overhead_s),
        message_issue_s=issue,
        dma_engines_per_core=int(engines),
        runtime_size_bounds=(cal.runtime_mesh_max_bytes, cal.runtime_rdh_max_bytes),
        network_efficiency=cal.network_efficiency,
    )
    label = inst.name if instances == 1 else f"{instances} x {inst.name}"
    fields["is_torus"] = inst.topology.kind in (
        hw.TopologyKind.TORUS_2D, hw.TopologyKind.TORUS_3D, hw.TopologyKind.RING)
    return _assemble(label, f"{inst.name}x{instances}|{cal.key}",
                     RuntimeFamily.NEURON if neuron else RuntimeFamily.GPU, fields, local,
                     instances, network)


def from_instance(name: str, instances: int = 1,
                  calibration: CollectiveCalibration | None = None) -> Topology:
    """Topology of `instances` copies of the instance preset `name`, joined by its network.

    Cached: the same arguments return the same object. Raises `TopologyError` for unknown
    presets and for clusters of instances without a published network bandwidth.
    """
    return _from_instance(name, int(instances), calibration or load_calibration())


def ideal_ring(n_chips: int, link_bytes_per_s: float, latency_s: float = 0.0,
               message_issue_s: float = 0.0, overhead_s: float = 0.0) -> Topology:
    """A ring of `n_chips` single-core devices; `link_bytes_per_s` counts both directions.

    No efficiency, no HBM limit: the textbook setting in which ring collectives have
    closed-form times, used to check the cost engine exactly. `latency_s` is each link's
    hop latency, `message_issue_s` the cost of issuing one message (one DMA engine) and
    `overhead_s` the fixed cost of a collective, in a graph or not (no runtime to launch).
    """
    if n_chips < 2:
        raise TopologyError("an ideal ring needs at least 2 devices")
    local = ring_graph(n_chips, link_bytes_per_s / 2, latency_s)
    fields = dict(physical_cores_per_chip=1, lnc_allowed=(1,), lnc_default=1,
                  hbm_bytes_per_s=math.inf, collective_overhead_s=overhead_s,
                  in_graph_overhead_s=overhead_s, message_issue_s=message_issue_s,
                  dma_engines_per_core=1, is_torus=True)
    key = (f"ideal_ring:{n_chips}:{link_bytes_per_s!r}:{latency_s!r}:{message_issue_s!r}:"
           f"{overhead_s!r}")
    return _assemble(f"ideal ring of {n_chips}", key, RuntimeFamily.IDEAL, fields, local, 1,
                     None)


def instance_names() -> list[str]:
    """Names of the instance presets a topology can be built from."""
    return [info.name for info in hw.list_presets("instance")]
