"""The search: pins fix dimensions, infeasible spaces name what overflows, rows are ranked by
the objective, the Pareto front is non-dominated, LoRA and precision options behave."""

from __future__ import annotations

import pytest

from tessera.plan.devices import Device
from tessera.plan.errors import NoFeasibleConfigError, PlanError
from tessera.plan.search import Objective, Pins, configs, train
from tessera.plan.space import DataParallel, ParallelConfig, Recompute, check
from tessera.plan.workload import TrainWorkload

PINNED = Pins(tp=8, pp=1, micro_batch=1, recompute=Recompute.SELECTIVE,
              dp_mode=DataParallel.ZERO1)


def test_pinned_search_evaluates_one_configuration() -> None:
    plan = train("llama3-8b", 4096, 64, "trn1.32xlarge", [2], pins=PINNED)
    assert len(plan.rows) == 1 and plan.evaluated == 1
    c = plan.best.config
    assert (c.tp, c.pp, c.dp, c.dp_mode, c.recompute) == (8, 1, 8, DataParallel.ZERO1,
                                                          Recompute.SELECTIVE)
    assert plan.best.estimate.devices == 64
    # the price of trn1.32xlarge is known: $/hour = 2 instances x the preset's price
    assert plan.best.costs.usd_per_hour == pytest.approx(2 * plan.price.usd_per_hour)


def test_rows_are_ranked_by_objective_and_front_is_non_dominated() -> None:
    kw = dict(seq_len=2048, global_batch=64, instance="trn1.32xlarge", instances=[1, 2])
    by_cost = train("llama3-8b", objective="cost", **kw)
    costs = [r.costs.usd_per_million_tokens for r in by_cost.rows]
    assert costs == sorted(costs)
    by_speed = train("llama3-8b", objective=Objective.THROUGHPUT, **kw)
    speeds = [r.estimate.tokens_per_s for r in by_speed.rows]
    assert speeds == sorted(speeds, reverse=True)
    front = by_speed.pareto
    for a in front:
        for b in front:
            faster = b.estimate.tokens_per_s > a.estimate.tokens_per_s
            cheaper = b.costs.usd_per_million_tokens < a.costs.usd_per_million_tokens
            assert not (faster and cheaper)
    assert by_speed.rows[0].estimate.tokens_per_s == front[0].estimate.tokens_per_s


def test_every_enumerated_configuration_uses_every_device() -> None:
    w = TrainWorkload.create("llama3-8b", 8192, 256)
    dev = Device.create("trn1.32xlarge")
    seen = 0
    for cfg in configs(w, dev, 2):
        assert cfg.world == 64
        seen += 1
    assert seen > 100


def test_nothing_fits_names_the_overflow() -> None:
    with pytest.raises(NoFeasibleConfigError, match=r"closest .*GiB over; largest term"):
        train("llama3-70b", 8192, 32, "trn1.32xlarge", [1], pins=Pins(tp=32, pp=1))


def test_check_explains_invalid_degrees() -> None:
    kw = dict(world=32, per_instance=32, layers=32, global_batch=64, seq_len=4096)
    assert check(ParallelConfig(tp=8, dp=4), **kw) == ""
    assert "not the 32 devices" in check(ParallelConfig(tp=8, dp=2), **kw)
    assert "not a multiple" in check(ParallelConfig(tp=2, dp=16, micro_batch=8), **kw)
    assert "cannot fill" in check(ParallelConfig(tp=1, pp=32, dp=1), **{**kw,
                                                                          "global_batch": 8})
    assert "mixture-of-experts" in check(ParallelConfig(tp=8, dp=4, ep=2), **kw)


def test_bad_options_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="unknown model 'llama9'"):
        train("llama9", 4096, 64, "trn1.32xlarge")
    with pytest.raises(PlanError, match="unknown instance 'trn9'"):
        train("llama3-8b", 4096, 64, "trn9")
    with pytest.raises(PlanError, match="--dtype: 'fp4'"):
        train("llama3-8b", 4096, 64, "trn1.32xlarge", dtype="fp4")
    with pytest.raises(PlanError, match="mxfp8"):
        train("llama3-8b", 4096, 64, "trn2.48xlarge", dtype="mxfp8", pins=PINNED)


def test_lora_trains_adapters_only() -> None:
    full = train("llama3-8b", 4096, 64, "trn1.32xlarge", [1], pins=PINNED)
    lora = train("llama3-8b", 4096, 64, "trn1.32xlarge", [1], pins=PINNED, mode="lora",
                 lora_rank=16)
    f, lo = full.best.estimate, lora.best.estimate
    # rank-16 adapters on the seven projections: about 2 % of each device's weights
    assert lo.memory.optimizer_bytes < f.memory.optimizer_bytes / 20
    assert lo.memory.gradients_bytes < f.memory.gradients_bytes / 20
    assert lo.breakdown.backward_s < f.breakdown.backward_s  # no weight gradients
    assert lo.breakdown.dp_comm_s < f.breakdown.dp_comm_s


def test_fp8_speeds_up_matmuls_where_the_chip_has_it() -> None:
    bf16 = train("llama3-8b", 4096, 64, "trn2.48xlarge", [1], pins=PINNED)
    fp8 = train("llama3-8b", 4096, 64, "trn2.48xlarge", [1], pins=PINNED, dtype="fp8")
    assert fp8.best.estimate.breakdown.forward_s < bf16.best.estimate.breakdown.forward_s


def test_gpu_instances_search_zero_bubble_schedules() -> None:
    w = TrainWorkload.create("llama3-8b", 4096, 64)
    gpu = {c.schedule for c in configs(w, Device.create("p5.48xlarge"), 4)}
    neuron = {c.schedule for c in configs(w, Device.create("trn1.32xlarge"), 1)}
    assert {s.value for s in gpu} >= {"1f1b", "interleaved_1f1b", "interleaved_zb", "zbv"}
    assert {s.value for s in neuron} == {"1f1b", "interleaved_1f1b"}


def test_progress_is_reported_per_instance_count() -> None:
    seen = []
    train("llama3-8b", 2048, 64, "trn1.32xlarge", [1, 2], pins=PINNED,
                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
