"""The Neuron runtime's algorithm policy, its Mesh / KangaRing / hierarchy, and in-graph costs."""

from __future__ import annotations

import numpy as np
import pytest

from tessera import hw
from tessera.net import (
    Algorithm,
    AlgorithmNotApplicableError,
    CollectiveModel,
    CollectiveOp,
    Placement,
    applicable_algorithms,
    engine,
    from_instance,
    ideal_ring,
    load_calibration,
)
from tessera.net import collectives as coll
from tessera.net.hierarchy import Hierarchy
from tessera.net.policy import runtime_choice

CAL = load_calibration()
MIB = 2**20
AR = CollectiveOp.ALL_REDUCE


def trn2_tp(ranks: int = 64, **kw: object) -> CollectiveModel:
    """`ranks` contiguous ranks on one trn2.48xlarge (LNC=2: 4 per chip)."""
    return CollectiveModel(from_instance("trn2.48xlarge"), Placement(ranks, **kw))


@pytest.mark.parametrize(("size", "expected"), [
    (4, Algorithm.MESH), (MIB - 1, Algorithm.MESH), (MIB, Algorithm.RHD),
    (56 * MIB - 1, Algorithm.RHD), (56 * MIB, Algorithm.KANGARING),
    (2**30, Algorithm.KANGARING)])
def test_runtime_policy_picks_mesh_rdh_kangaring_at_the_documented_sizes(
        size: int, expected: Algorithm) -> None:
    # [CCI] Algorithm Summary: Mesh < 1MB, RDH 1-56MB, KangaRing > 56MB (a 64-rank TP group)
    for op in (AR, CollectiveOp.ALL_GATHER, CollectiveOp.REDUCE_SCATTER):
        cost = trn2_tp().cost(op, size)
        assert cost.algorithm is expected, (op, size)
        assert cost.chosen_by.startswith("runtime:") and "[CCI" in cost.chosen_by
    assert CAL.runtime_mesh_max_bytes == MIB and CAL.runtime_rdh_max_bytes == 56 * MIB


def test_runtime_policy_falls_back_to_ring_where_the_docs_say() -> None:
    # one rank per chip: "Ring is used rather than KangaRing" [CCI]
    one_per_chip = trn2_tp(16, ranks_per_chip=1)
    assert one_per_chip.cost(AR, 64 * MIB).algorithm is Algorithm.RING
    # part of a chip's ranks only: not a TP group of whole chips
    partial = trn2_tp(64)
    assert partial.cost(AR, 64 * MIB, group=range(0, 64, 2)).algorithm is Algorithm.RING
    # RDH needs 2^p ranks: 12 ranks (3 chips x 4) fall back to ring in RDH's range
    twelve = trn2_tp(12)
    cost = twelve.cost(AR, 4 * MIB)
    assert cost.algorithm is Algorithm.RING and "fallback" in cost.chosen_by
    assert twelve.cost(AR, 64 * MIB).algorithm is Algorithm.KANGARING


def test_runtime_policy_goes_hierarchical_across_instances() -> None:
    model = CollectiveModel(from_instance("trn2.48xlarge", 2), 128)
    small = model.cost(AR, 64 * 1024)
    large = model.cost(AR, 256 * MIB)
    # several ranks per instance: intra stage by the intra-node rule at the buffer's size,
    # inter stage the fastest of mesh, RDH and ring [CCX]
    assert small.algorithm is large.algorithm is Algorithm.HIERARCHICAL
    assert small.schedule.startswith("hierarchical(mesh+")
    assert large.schedule.startswith("hierarchical(kangaring|ring+")
    assert {a.inter for a, _ in large.candidates} <= {Algorithm.MESH, Algorithm.RHD,
                                                      Algorithm.RING}
    assert all(isinstance(a, Hierarchy) for a, _ in large.candidates)
    # one rank per instance: the fastest of mesh, RDH and ring (no published thresholds)
    one_each = model.cost(AR, 64 * 1024, group=(0, 64))
    assert one_each.algorithm in (Algorithm.MESH, Algorithm.RHD, Algorithm.RING)
    assert one_each.time_s == min(t for _, t in one_each.candidates)


def test_runtime_hierarchy_steps_scale_the_inter_stage_by_ranks_per_instance() -> None:
    model = CollectiveModel(from_instance("trn1.32xlarge", 2), 64)
    key = Hierarchy((Algorithm.RING_BIDIR,), Algorithm.RHD)
    composed = coll._profile(AR, key, model.rank_map, None)
    fixed = coll._profile(AR, Algorithm.HIERARCHICAL, model.rank_map, None)
    # bidirectional ring inside + RDH across is exactly the fixed hierarchical schedule
    for size in (1024, MIB, 2**30):
        assert composed.time_s(size) == pytest.approx(fixed.time_s(size), rel=1e-12)
    np.testing.assert_allclose(composed.link_busy_s_per_byte, fixed.link_busy_s_per_byte)


@pytest.mark.parametrize("instances", [2, 4])
def test_runtime_hierarchy_symmetric_shortcut_is_exact(instances: int,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    model = CollectiveModel(from_instance("trn2.48xlarge", instances), 64 * instances)
    keys = [Hierarchy(intra, inter) for intra in ((Algorithm.MESH,),
                                                  (Algorithm.KANGARING, Algorithm.RING))
            for inter in (Algorithm.MESH, Algorithm.RHD, Algorithm.RING)]
    for op in (AR, CollectiveOp.ALL_GATHER, CollectiveOp.REDUCE_SCATTER):
        for key in keys:
            profiles = []
            for symmetry in (True, False):
                monkeypatch.setattr(engine, "USE_SYMMETRY", symmetry)
                coll.clear_caches()
                profiles.append(coll._profile(op, key, model.rank_map, None))
            fast, plain = profiles
            for size in (1024, MIB, 2**28):
                assert fast.time_s(size) == pytest.approx(plain.time_s(size), rel=1e-12)
            np.testing.assert_allclose(fast.link_busy_s_per_byte, plain.link_busy_s_per_byte,
                                       rtol=1e-12, atol=0)
    coll.clear_caches()


def test_runtime_policy_leaves_undocumented_ops_to_auto_and_p2p_to_direct() -> None:
    model = trn2_tp()
    for op in (CollectiveOp.ALL_TO_ALL, CollectiveOp.BROADCAST):
        runtime = model.cost(op, MIB)
        assert runtime.time_s == model.cost(op, MIB, algorithm="auto").time_s
        assert "AUTO" in runtime.chosen_by
    assert model.cost(CollectiveOp.SEND_RECV, MIB, group=(0, 4)).algorithm is Algorithm.DIRECT
    assert model.cost(CollectiveOp.PERMUTE, MIB).algorithm is Algorithm.DIRECT


def test_auto_stays_selectable_and_is_never_slower_than_the_runtime() -> None:
    model = trn2_tp()
    assert model.default_algorithm is Algorithm.RUNTIME
    for size in (1024, 4 * MIB, 64 * MIB, 2**30):
        auto = model.cost(AR, size, algorithm="auto")
        best = min(model.cost(AR, size, algorithm=a).time_s
                   for a in applicable_algorithms(AR, model.rank_map))
        assert auto.time_s == best and auto.chosen_by == "auto"
        assert auto.time_s <= model.cost(AR, size).time_s


def test_gpu_topologies_keep_auto_and_their_costs() -> None:
    model = CollectiveModel.for_instance("p5.48xlarge", 8)
    assert model.default_algorithm is Algorithm.AUTO
    for size in (1024, 64 * MIB):
        default = model.cost(AR, size)
        assert default is model.cost(AR, size, algorithm="auto")
        # asking for the Neuron policy on NCCL hardware still gives AUTO's answer
        assert model.cost(AR, size, algorithm="runtime").time_s == default.time_s
        # no in-graph figure for GPUs: a captured collective costs what a launched one does
        assert model.cost(AR, size, in_graph=True).time_s == pytest.approx(default.time_s)
    assert runtime_choice(AR, 1024, coll._layout(model.rank_map, None)).is_auto


@pytest.mark.parametrize("size", [1024, 16 * 1024, MIB, 64 * MIB])
def test_in_graph_cost_drops_the_standalone_overhead(size: int) -> None:
    model = trn2_tp()
    standalone = model.cost(AR, size)
    in_graph = model.cost(AR, size, in_graph=True)
    gap = CAL.neuron_collective_overhead_s - CAL.neuron_in_graph_overhead_s
    assert standalone.overhead_s == CAL.neuron_collective_overhead_s
    assert in_graph.overhead_s == CAL.neuron_in_graph_overhead_s and in_graph.in_graph
    assert standalone.time_s - in_graph.time_s == pytest.approx(gap, rel=1e-9)
    assert in_graph.algorithm is standalone.algorithm  # same choice, shifted times
    assert in_graph.steps_s == pytest.approx(standalone.steps_s, rel=1e-12)
    assert in_graph.busbw_bytes_per_s > standalone.busbw_bytes_per_s
    assert model.cost(AR, size, in_graph=True) is in_graph  # cached


def test_in_graph_two_rank_all_reduce_is_two_issues_and_hops() -> None:
    topo = from_instance("trn1.32xlarge")
    model = CollectiveModel(topo, Placement(2, ranks_per_chip=1))
    issue = hw.load_chip("trn1").core.dma.fixed_latency_s
    hop = hw.load_instance("trn1.32xlarge").links[0].hop_latency_s
    cost = model.cost(AR, 1024, in_graph=True)
    expected = CAL.neuron_in_graph_overhead_s + 2 * (issue + hop) + 1024 / topo.link(0).bytes_per_s
    assert cost.time_s == pytest.approx(expected, rel=1e-9)
    # [CCI]: a collective's latency term is of 10^0 to 10^1 us
    assert 1e-6 <= cost.time_s < 1e-5
    assert "CCO" in CAL.sources["neuron_in_graph_overhead_s"]


def test_runtime_mesh_issues_its_peers_in_parallel_and_works_per_chip() -> None:
    model = trn2_tp()
    steps = coll._schedule(AR, Algorithm.MESH, model.rank_map, None)
    # RS: 15 remote chips' partials, then the chip's own; AG: bundles to 15 chips, then share
    assert [s.messages for s in steps] == [15, 3, 4, 3]
    assert all(s.issue_rounds == 1 for s in steps)  # 32 DMA engines per LNC=2 rank
    assert steps[2].fraction == pytest.approx(4 / 64)  # a chip's bundle of 4 chunks
    # on an ideal ring (one DMA engine) the mesh is the every-peer write of `direct`
    ring = CollectiveModel(ideal_ring(8, 200e9, message_issue_s=1e-6), 8)
    for op in (AR, CollectiveOp.ALL_GATHER):
        mesh = ring.cost(op, 4096, algorithm="mesh").time_s
        assert mesh == pytest.approx(ring.cost(op, 4096, algorithm="direct").time_s)


def test_kangaring_halves_the_ring_steps_and_cuts_hbm_touches() -> None:
    model = trn2_tp(8)  # 2 chips x 4 ranks
    rm = model.rank_map
    steps = coll._schedule(AR, Algorithm.KANGARING, rm, None)
    assert sum(s.count for s in steps) == 2 * (8 // 2 - 1)
    assert sum(s.count for s in coll._schedule(AR, Algorithm.RING, rm, None)) == 2 * 7
    prof = coll._profile(AR, Algorithm.KANGARING, rm, None)
    hbm = hw.load_chip("trn2").hbm_bytes_per_s
    # per chip and step: 4 primaries each send and receive V/8; reducing they read three
    # chunks and write one (4 touches), gathering they read one and write two (3) [CCI]
    reduce, gather = prof.steps
    assert reduce.hbm_s_per_byte == pytest.approx(4 * 4 / 8 / hbm)
    assert gather.hbm_s_per_byte == pytest.approx(4 * 3 / 8 / hbm)
    big = 2**30
    times = {a: model.cost(AR, big, algorithm=a).time_s
             for a in (Algorithm.KANGARING, Algorithm.RING_BIDIR, Algorithm.RING)}
    # half the steps, fewer bytes over the chip-to-chip link per phase (3/4 V against 7/8 V)
    assert times[Algorithm.KANGARING] < 0.9 * min(times[Algorithm.RING_BIDIR],
                                                  times[Algorithm.RING])


def test_kangaring_and_mesh_applicability() -> None:
    model = trn2_tp()
    with pytest.raises(AlgorithmNotApplicableError, match="every rank of each chip"):
        model.cost(AR, MIB, group=range(0, 64, 2), algorithm="kangaring")
    with pytest.raises(AlgorithmNotApplicableError, match="pairs the ranks"):
        trn2_tp(16, ranks_per_chip=1).cost(AR, MIB, algorithm="kangaring")
    cluster = CollectiveModel(from_instance("trn2.48xlarge", 2), 128)
    with pytest.raises(AlgorithmNotApplicableError, match="one instance"):
        cluster.cost(AR, MIB, algorithm="kangaring")
    with pytest.raises(AlgorithmNotApplicableError, match="hierarchical"):
        cluster.cost(AR, MIB, algorithm="mesh")
    with pytest.raises(AlgorithmNotApplicableError, match="only all-reduce"):
        model.cost(CollectiveOp.ALL_TO_ALL, MIB, algorithm="mesh")
    assert Algorithm.KANGARING in applicable_algorithms(AR, model.rank_map)


def test_runtime_policy_thresholds_are_sourced_in_the_calibration() -> None:
    for name in ("runtime_mesh_max_bytes", "runtime_rdh_max_bytes"):
        assert "[CCI]" in CAL.sources[name] and "Algorithm Summary" in CAL.sources[name]
    overridden = CAL.with_overrides(runtime_mesh_max_bytes=4096)
    model = CollectiveModel(from_instance("trn2.48xlarge", calibration=overridden), 64)
    assert model.cost(AR, 8192).algorithm is Algorithm.RHD
