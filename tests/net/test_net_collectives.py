"""Collective costs: closed forms on an ideal ring, contention, HBM, network, AUTO, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tessera import hw
from tessera.net import (
    Algorithm,
    AlgorithmNotApplicableError,
    CollectiveModel,
    CollectiveOp,
    Placement,
    PlacementError,
    SizeError,
    UnknownCollectiveError,
    applicable_algorithms,
    engine,
    from_instance,
    ideal_ring,
    load_calibration,
    size_sweep,
)
from tessera.net import collectives as coll

CAL = load_calibration()
W = 200e9  # link bandwidth, both directions together
V = 256 * 2**20
# the published 2-rank nccom-test curve the calibration was fitted on (source in the file)
PUBLISHED = (Path(__file__).resolve().parents[2] / "benchmarks" / "data"
             / "published_collectives.yaml")


def ring_model(n: int) -> CollectiveModel:
    return CollectiveModel(ideal_ring(n, W), n)


@pytest.mark.parametrize("n", [3, 4, 8, 16])
def test_ideal_bidirectional_ring_closed_forms(n: int) -> None:
    model = ring_model(n)
    for op, factor in ((CollectiveOp.ALL_GATHER, 1), (CollectiveOp.REDUCE_SCATTER, 1),
                       (CollectiveOp.ALL_REDUCE, 2)):
        cost = model.cost(op, V, algorithm=Algorithm.RING_BIDIR)
        assert cost.time_s == pytest.approx(factor * (n - 1) / n * V / W, rel=0.01)
        # busbw = algbw x 2(n-1)/n (AR) or (n-1)/n (AG, RS) = W on this ring
        assert cost.busbw_bytes_per_s == pytest.approx(W, rel=0.01)
        # AUTO (the default on an ideal ring) is never slower
        assert model.cost(op, V).time_s <= cost.time_s * (1 + 1e-9)


def test_unidirectional_ring_takes_twice_as_long() -> None:
    model = ring_model(8)
    uni = model.cost(CollectiveOp.ALL_GATHER, V, algorithm="ring").time_s
    assert uni == pytest.approx(2 * 7 / 8 * V / W, rel=0.01)


def test_latency_adds_overhead_message_issues_and_hops() -> None:
    # once 20 us; per step: 2 messages (one each way) issued at 5 us each, then one 1 us hop
    model = CollectiveModel(ideal_ring(8, W, latency_s=1e-6, message_issue_s=5e-6,
                                       overhead_s=20e-6), 8)
    cost = model.cost(CollectiveOp.ALL_REDUCE, 1024, algorithm="ring_bidir")
    assert cost.steps == 14
    assert cost.time_s == pytest.approx(20e-6 + 14 * (2 * 5e-6 + 1e-6) + 2 * 7 / 8 * 1024 / W,
                                        rel=1e-6)


def test_direct_broadcast_contends_on_the_roots_busiest_link() -> None:
    # one rank per trn1 chip; dimension-order routes from (0,0): the +x link carries the
    # 8 flows to rows 1 and 2, each with the whole message
    model = CollectiveModel(from_instance("trn1.32xlarge"), Placement(16, ranks_per_chip=1))
    cost = model.cost(CollectiveOp.BROADCAST, 2**30, algorithm="direct")
    link_bw = model.topology.link(0).bytes_per_s
    issue = hw.load_chip("trn1").core.dma.fixed_latency_s  # the root issues 15 messages
    expected = CAL.neuron_collective_overhead_s + 15 * issue + 4 * 1.5e-6 + 8 * 2**30 / link_bw
    assert cost.time_s == pytest.approx(expected, rel=1e-3)
    assert cost.busiest_link.src == "i0.chip0" and cost.busiest_link.dst == "i0.chip4"
    assert cost.busiest_link_busy_s == pytest.approx(8 * 2**30 / link_bw)


def test_direct_mesh_pays_fan_out_when_small_and_oversubscription_when_large() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge"), Placement(16, ranks_per_chip=1))
    small = model.cost(CollectiveOp.ALL_REDUCE, 1024, algorithm="auto")
    large = model.cost(CollectiveOp.ALL_REDUCE, 2**30, algorithm="auto")
    # one step per phase, but each rank issues 15 DMAs per step one after another: 4
    # halving steps of one message each beat it when latency dominates; the runtime's mesh,
    # which starts the 15 on separate DMA engines, beats both
    times = dict(small.candidates)
    assert times[Algorithm.DIRECT] > times[Algorithm.RHD] > small.time_s
    assert small.algorithm is Algorithm.MESH
    assert large.algorithm in (Algorithm.TORUS, Algorithm.RING_BIDIR)
    times = dict(large.candidates)
    assert times[Algorithm.DIRECT] > 1.5 * large.time_s
    assert times[Algorithm.MESH] > 1.5 * large.time_s  # routed writes oversubscribe links
    assert large.time_s == min(times.values())


def test_ranks_on_one_chip_are_hbm_bound() -> None:
    # 8 ranks at LNC=1 on one Trn2 chip: no link; each ring step moves V/8 per rank through
    # HBM: 2 reads + 1 write when reducing, 1 + 1 when gathering
    topo = from_instance("trn2.48xlarge")
    model = CollectiveModel(topo, Placement(8, lnc=1))
    cost = model.cost(CollectiveOp.ALL_REDUCE, V, algorithm="ring")
    hbm = hw.load_chip("trn2").hbm_bytes_per_s
    issue = hw.load_chip("trn2").core.dma.fixed_latency_s  # one message per ring step
    assert cost.busiest_link is None
    assert cost.time_s == pytest.approx(CAL.neuron_collective_overhead_s + 7 * (issue + 3 * V / hbm)
                                        + 7 * (issue + 2 * V / hbm))


def test_send_recv_between_instances_uses_the_network() -> None:
    inst = hw.load_instance("trn2.48xlarge")
    model = CollectiveModel(from_instance("trn2.48xlarge", 2), 128)
    cost = model.cost(CollectiveOp.SEND_RECV, V, group=(0, 64))
    expected = (CAL.neuron_collective_overhead_s + hw.load_chip("trn2").core.dma.fixed_latency_s
                + inst.network.p2p_latency_s
                + V / (inst.efa_bytes_per_s_per_chip * CAL.network_efficiency))
    assert cost.time_s == pytest.approx(expected, rel=1e-6)
    assert cost.busbw_bytes_per_s == pytest.approx(cost.algbw_bytes_per_s)


def test_hierarchical_beats_flat_rings_across_instances() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge", 4), 128)
    cost = model.cost(CollectiveOp.ALL_REDUCE, "256MiB", algorithm="auto")
    assert cost.algorithm is Algorithm.HIERARCHICAL
    assert model.cost(CollectiveOp.ALL_REDUCE, "256MiB").algorithm is Algorithm.HIERARCHICAL
    flat = model.cost(CollectiveOp.ALL_REDUCE, "256MiB", algorithm="ring_bidir")
    assert flat.time_s > cost.time_s
    assert flat.busiest_link.family.value == "network"


def test_mesh_from_counts_equals_the_explicit_pair_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for topo, n in ((from_instance("trn1.32xlarge", 3), 96), (from_instance("trn2-ultraserver"),
                                                                64)):
        model = CollectiveModel(topo, n)
        group = tuple(range(0, n, 1))
        results = []
        for limit in (10**9, 0):
            monkeypatch.setattr(engine, "EXPLICIT_PAIRS_LIMIT", limit)
            coll.clear_caches()
            prof = coll._profile(CollectiveOp.ALL_REDUCE, Algorithm.DIRECT, model.rank_map, None)
            results.append(prof)
        explicit, counted = results
        assert counted.time_s(1024) == pytest.approx(explicit.time_s(1024), rel=1e-9)
        assert counted.time_s(V) == pytest.approx(explicit.time_s(V), rel=1e-9)
        np.testing.assert_allclose(counted.link_busy_s_per_byte, explicit.link_busy_s_per_byte)
        del group
    coll.clear_caches()


def test_applicability_and_errors() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge"), 32)
    assert Algorithm.RHD not in applicable_algorithms("all_reduce", model.rank_map, range(6))
    assert Algorithm.TORUS in applicable_algorithms("all_reduce", model.rank_map)
    with pytest.raises(AlgorithmNotApplicableError, match="power-of-two"):
        model.cost("all_reduce", 1024, group=range(6), algorithm="rhd")
    with pytest.raises(AlgorithmNotApplicableError, match="same number of ranks"):
        model.cost("all_reduce", 1024, group=range(6), algorithm="torus")
    with pytest.raises(AlgorithmNotApplicableError, match="instances"):
        model.cost("all_reduce", 1024, algorithm="hierarchical")
    with pytest.raises(AlgorithmNotApplicableError, match="group of 2"):
        model.cost("send_recv", 1024, group=(0, 1, 2))
    with pytest.raises(AlgorithmNotApplicableError, match="only run direct"):
        model.cost("permute", 1024, algorithm="ring")
    with pytest.raises(PlacementError, match="at least 2"):
        model.cost("all_reduce", 1024, group=(3,))
    with pytest.raises(SizeError):
        model.cost("all_reduce", "lots")
    with pytest.raises(UnknownCollectiveError):
        model.cost("all_sum", 1024)
    with pytest.raises(PlacementError, match="exceed"):
        CollectiveModel.for_instance("trn1.32xlarge", 33)


def test_every_op_costs_on_every_preset_topology() -> None:
    for name in ("trn1.32xlarge", "trn2.48xlarge", "trn2-ultraserver", "inf2.24xlarge",
                 "p5.48xlarge", "trn3-ultraserver"):
        model = CollectiveModel.for_instance(name, 4)
        for op in CollectiveOp:
            group = (0, 3) if op is CollectiveOp.SEND_RECV else None
            cost = model.cost(op, "1MiB", group=group)
            assert cost.time_s > 0 and cost.algbw_bytes_per_s > 0, (name, op)


def test_auto_reports_the_fastest_candidate_and_costs_are_cached() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge", 2), 64)
    first = model.cost("all_gather", "8MiB", algorithm="auto")
    assert first.time_s == min(t for _, t in first.candidates)
    assert dict(first.candidates)[first.algorithm] == first.time_s
    hits = coll._cost.cache_info().hits
    assert model.cost("ALL_GATHER", 8 * 2**20, algorithm=Algorithm.AUTO) is first
    assert coll._cost.cache_info().hits == hits + 1
    # a new size reuses the routed profile
    misses = coll._profile.cache_info().misses
    model.cost("all_gather", "16MiB", algorithm="auto")
    assert coll._profile.cache_info().misses == misses


def test_size_sweep() -> None:
    sizes = size_sweep()
    assert sizes[0] == 1024 and sizes[-1] == 2**30 and len(sizes) == 11
    with pytest.raises(ValueError):
        size_sweep(10, 5)


def test_two_rank_all_reduce_matches_nccom_test_within_15_percent() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge"), Placement(2, ranks_per_chip=1))
    points = yaml.safe_load(PUBLISHED.read_text())["allreduce_2_ranks_fp32"]["points"]
    assert len(points) == 8
    for p in points:
        predicted = model.cost("all_reduce", p["bytes"]).time_s
        assert predicted == pytest.approx(p["time_us"] * 1e-6, rel=0.15), p
