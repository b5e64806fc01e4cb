"""Pricing collectives that a kernel issues (`nki.collectives`) for the timing model.

`tessera.sim` schedules a kernel's instruction stream but sits below `net` in the layers, so
this module registers `in_kernel_seconds` with `tessera.sim.collective_cost` when `tessera.net`
is imported. A collective of `ranks` members is priced as `CollectiveModel.cost(op, n_bytes,
in_graph=True)` (a collective inside a compiled graph: no standalone launch overhead) on the
instance preset of the kernel's chip, ranks placed contiguously with one rank per physical
core (each rank of a multi-rank kernel run is an LNC=1 launch), so small rank-lists stay on
one chip as the runtime would place them. A rank-list of one moves its bytes within its own
HBM: one read and one write at the core's share of the chip's HBM bandwidth, plus the cost of
issuing one message.
"""

from __future__ import annotations

import functools
import math

from tessera import hw
from tessera.net.collectives import CollectiveModel
from tessera.net.placement import Placement
from tessera.net.topology import Topology, from_instance, instance_names
from tessera.sim.collective_cost import set_collective_pricer


@functools.cache
def instance_for_chip(chip: str) -> str:
    """The instance preset a chip's in-kernel collectives are priced on: of the instances
    built from `chip`, the one of fewest nodes, then most chips (trn2 -> trn2.48xlarge)."""
    found = []
    for name in instance_names():
        spec = hw.load_instance(name)
        if getattr(spec.chip, "name", spec.chip) == chip:
            found.append((spec.nodes, -spec.chip_count, name))
    if not found:
        raise ValueError(f"no instance preset is built from chip {chip!r}; in-kernel "
                         "collectives are priced on an instance topology")
    return min(found)[2]


@functools.cache
def _model(instance: str, ranks: int) -> CollectiveModel:
    topo = from_instance(instance)
    lnc = 1 if 1 in topo.lnc_allowed else topo.lnc_default
    per_instance = topo.n_chips * (topo.physical_cores_per_chip // lnc)
    instances = max(1, math.ceil(ranks / per_instance))
    if instances > 1:
        topo = from_instance(instance, instances)
    return CollectiveModel(topo, Placement(ranks, lnc=lnc))


def _local_seconds(topo: Topology, n_bytes: int) -> float:
    per_core = topo.hbm_bytes_per_s / max(1, topo.physical_cores_per_chip)
    return topo.in_graph_overhead_s + topo.message_issue_s + 2.0 * n_bytes / per_core


def in_kernel_seconds(op: str, n_bytes: int, ranks: int, chip: str) -> float:
    """Seconds of one in-kernel collective `op` moving `n_bytes` (net's convention,
    `tessera.net.ops`) among `ranks` ranks of a kernel traced for `chip`."""
    instance = instance_for_chip(chip)
    if ranks < 2:
        return _local_seconds(from_instance(instance), n_bytes)
    cost = _model(instance, ranks).cost(op, max(1, int(n_bytes)), in_graph=True)
    return cost.time_s


set_collective_pricer(in_kernel_seconds)
