"""Topologies built from the instance presets, routing, and rank placement."""

from __future__ import annotations

import numpy as np
import pytest

from tessera import hw
from tessera.net import (
    LinkFamily,
    Placement,
    PlacementError,
    PlacementOrder,
    RankLocation,
    TopologyError,
    from_instance,
    ideal_ring,
    load_calibration,
    place,
)

CAL = load_calibration()


def test_trn1_is_a_4x4_torus_with_four_links_per_chip() -> None:
    topo = from_instance("trn1.32xlarge")
    inst = hw.load_instance("trn1.32xlarge")
    assert topo.n_chips == 16 and topo.dims == (4, 4) and topo.is_torus
    assert topo.n_links == 16 * 4
    assert np.bincount(topo.link_src, minlength=16).tolist() == [4] * 16
    # per-link peak = the chip's published figure over its 4 links (read as per direction)
    per_link = inst.links[0].chip_bytes_per_s / 4 / CAL.neuronlink_figure_directions
    assert topo.link(0).peak_bytes_per_s == pytest.approx(per_link)
    assert topo.link(0).bytes_per_s == pytest.approx(per_link * CAL.neuronlink_efficiency)
    assert topo.link(0).latency_s == pytest.approx(inst.links[0].hop_latency_s)
    assert topo.physical_cores_per_chip == 2


def test_torus_routes_are_shortest_dimension_order_paths() -> None:
    topo = from_instance("trn1.32xlarge")
    coords = topo.chip_coords
    for a in range(16):
        for b in range(16):
            d = np.abs(coords[a] - coords[b])
            expected = int(np.minimum(d, 4 - d).sum())
            route = topo.route(a, b)
            assert len(route) == expected
            if route:  # the route is connected and ends at b
                names = [topo.link(i) for i in route]
                assert names[0].src == topo.chip_name(a) and names[-1].dst == topo.chip_name(b)
                assert all(x.dst == y.src for x, y in zip(names, names[1:], strict=False))


def test_ring_order_is_a_hamiltonian_cycle_of_neighbours() -> None:
    topo = from_instance("trn2.48xlarge")
    rm = place(topo, Placement(16, ranks_per_chip=1))
    order = rm.ring_order(np.arange(16))
    chips = rm.chip[order]
    hops = [len(topo.route(int(a), int(b))) for a, b in zip(chips, np.roll(chips, -1),
                                                            strict=True)]
    assert hops == [1] * 16


def test_hypercube_partners_are_neighbours_on_a_4x4_torus() -> None:
    topo = from_instance("trn1.32xlarge")
    label = topo.cube_label
    assert sorted(label.tolist()) == list(range(16))
    chip_of = np.argsort(label)
    for c in range(16):
        for bit in range(4):
            partner = chip_of[label[c] ^ (1 << bit)]
            assert len(topo.route(c, int(partner))) == 1


def test_ultraserver_first_dimension_crosses_servers() -> None:
    topo = from_instance("trn2-ultraserver")
    inst = hw.load_instance("trn2-ultraserver")
    assert topo.dims == (4, 4, 4) and topo.n_chips == 64
    inter = next(s for s in inst.links if s.scope is hw.LinkScope.INTER_NODE)
    (lid,) = topo.route(0, 16)  # same position, next server: one inter-server hop
    link = topo.link(lid)
    assert link.peak_bytes_per_s == pytest.approx(inter.chip_bytes_per_s / 2)
    assert link.latency_s == pytest.approx(CAL.neuronlink_fallback_hop_latency_s)
    (lid,) = topo.route(0, 1)  # inside a server
    assert topo.link(lid).peak_bytes_per_s == pytest.approx(1024e9 / 4)


def test_inf2_is_a_ring_and_gpus_sit_on_a_switch() -> None:
    ring = from_instance("inf2.48xlarge")
    assert ring.dims == (12,) and ring.n_links == 24
    assert len(ring.route(0, 6)) == 6 and len(ring.route(0, 11)) == 1
    p5 = from_instance("p5.48xlarge")
    route = p5.route(0, 7)
    assert len(route) == 2 and p5.link(route[0]).dst == "i0.sw"
    assert p5.link(route[0]).family is LinkFamily.NVLINK
    assert p5.link(route[0]).peak_bytes_per_s == pytest.approx(450e9)  # 900 GB/s both ways


def test_cluster_joins_instances_through_per_chip_network_links() -> None:
    topo = from_instance("trn2.48xlarge", instances=4)
    inst = hw.load_instance("trn2.48xlarge")
    assert topo.n_chips == 64
    route = topo.route(3, 16 + 3)
    up, down = (topo.link(i) for i in route)
    assert up.family is LinkFamily.NETWORK and up.dst == "network" and down.src == "network"
    assert up.peak_bytes_per_s == pytest.approx(inst.efa_bytes_per_s_per_chip)
    assert up.latency_s + down.latency_s == pytest.approx(inst.network.p2p_latency_s)
    # trn1 publishes no point-to-point latency: the calibration stand-in applies
    trn1 = from_instance("trn1.32xlarge", instances=2)
    up, down = (trn1.link(i) for i in trn1.route(0, 16))
    assert up.latency_s + down.latency_s == pytest.approx(CAL.network_fallback_p2p_latency_s)


def test_topology_errors() -> None:
    with pytest.raises(TopologyError, match="unknown instance"):
        from_instance("trn9.huge")
    with pytest.raises(TopologyError, match="no published EFA"):
        from_instance("inf2.48xlarge", instances=2)
    with pytest.raises(TopologyError):
        from_instance("trn1.32xlarge", instances=0)
    with pytest.raises(TopologyError):
        from_instance("trn1.32xlarge").route(0, 99)
    assert from_instance("trn1.32xlarge") is from_instance("trn1.32xlarge")  # cached


def test_ideal_ring_links() -> None:
    topo = ideal_ring(8, link_bytes_per_s=100e9)
    assert topo.n_links == 16
    assert topo.link(0).bytes_per_s == pytest.approx(50e9)  # half of W each way
    assert np.isinf(topo.hbm_bytes_per_s)


def test_contiguous_placement_fills_chips_then_instances() -> None:
    rm = place(from_instance("trn2.48xlarge", instances=2), Placement(128))
    assert rm.lnc == 2 and rm.ranks_per_chip == 4  # 8 cores / LNC 2
    assert rm.location(5) == RankLocation(instance=0, chip=1, core=2)
    assert rm.location(64) == RankLocation(instance=1, chip=0, core=0)
    lnc1 = place(from_instance("trn2.48xlarge"), Placement(128, lnc=1))
    assert lnc1.ranks_per_chip == 8 and lnc1.location(9) == RankLocation(0, 1, 1)


def test_round_robin_placement_spreads_ranks_over_chips() -> None:
    rm = place(from_instance("trn1.32xlarge"),
               Placement(32, order=PlacementOrder.ROUND_ROBIN))
    assert rm.location(1) == RankLocation(0, 1, 0)
    assert rm.location(17) == RankLocation(0, 1, 1)


@pytest.mark.parametrize(("placement", "match"), [
    (Placement(33), "exceed"),
    (Placement(4, lnc=3), "logical core size"),
    (Placement(4, ranks_per_chip=3), "ranks_per_chip"),
    (Placement(0), "world size"),
])
def test_placement_errors(placement: Placement, match: str) -> None:
    topo = from_instance("trn1.32xlarge") if placement.lnc is None else from_instance(
        "trn2.48xlarge")
    with pytest.raises(PlacementError, match=match):
        place(topo, placement)


def test_group_checks() -> None:
    rm = place(from_instance("trn1.32xlarge"), Placement(8))
    with pytest.raises(PlacementError, match="only ranks 0..7"):
        rm.check_group((0, 9))
    with pytest.raises(PlacementError, match="twice"):
        rm.check_group((1, 1))
    with pytest.raises(PlacementError):
        rm.location(8)
