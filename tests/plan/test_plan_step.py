"""Training step time: the breakdown adds up, each parallelism adds its own term, the
pipeline bubble follows each schedule's formula, and the GPU model reproduces Megatron-LM's
published iteration times."""

from __future__ import annotations

import dataclasses
import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

from tessera.plan.devices import Device
from tessera.plan.space import DataParallel, ParallelConfig, PipelineSchedule, Recompute
from tessera.plan.step import Evaluator, Overlap, _bubble, evaluate, model_flops_per_step
from tessera.plan.workload import TrainWorkload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def w8b() -> TrainWorkload:
    return TrainWorkload.create("llama3-8b", 4096, 64)


@pytest.fixture(scope="module")
def trn1() -> Device:
    return Device.create("trn1.32xlarge")


def test_breakdown_adds_up_and_rates_follow(w8b, trn1) -> None:
    cfg = ParallelConfig(tp=8, dp=4, sequence_parallel=True, dp_mode=DataParallel.ZERO1)
    e = evaluate(w8b, trn1, 1, cfg)
    assert e.step_time_s == pytest.approx(e.breakdown.total_s)
    assert e.tokens_per_s == pytest.approx(64 * 4096 / e.step_time_s)
    assert e.seq_per_s == pytest.approx(64 / e.step_time_s)
    peak = trn1.peak_flops(w8b.dtype) * 32
    assert e.mfu == pytest.approx(model_flops_per_step(w8b) / e.step_time_s / peak)
    assert 0 < e.mfu < 1 and e.hfu == pytest.approx(e.mfu)  # no recomputation
    assert e.breakdown.tp_comm_s > 0 and e.breakdown.pp_bubble_s == 0
    assert e.breakdown.dp_comm_s > 0  # ZeRO-1: reduce-scatter + all-gather, exposed on Neuron


def test_model_flops_are_six_n_plus_attention(w8b) -> None:
    cfg = w8b.model
    n_matmul = cfg.num_parameters() - cfg.vocab_size * cfg.hidden_size  # no embedding lookup
    tokens = w8b.tokens_per_step
    # the flash kernel counts the whole S x S score matrix: 4 S^2 d per head, forward
    attention = 3 * 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * 4096 * tokens
    expected = 6 * n_matmul * tokens + attention
    assert model_flops_per_step(w8b) == pytest.approx(expected, rel=0.01)


def test_tp1_has_no_tp_comm_and_recompute_adds_forward(w8b, trn1) -> None:
    base = ParallelConfig(tp=1, dp=32, dp_mode=DataParallel.FSDP, dp_shard=32)
    none = evaluate(w8b, trn1, 1, base)
    full = evaluate(w8b, trn1, 1, dataclasses.replace(base, recompute=Recompute.FULL))
    assert none.breakdown.tp_comm_s == 0
    assert full.breakdown.recompute_s == pytest.approx(full.breakdown.forward_s)
    assert full.step_time_s > none.step_time_s
    assert full.memory.activations_bytes < none.memory.activations_bytes
    assert full.hfu > full.mfu


def test_fsdp_overlap_hides_gathers_behind_compute(w8b, trn1) -> None:
    cfg = ParallelConfig(tp=1, dp=32, dp_mode=DataParallel.FSDP, dp_shard=32)
    exposed = Evaluator(w8b, trn1, 1, Overlap.NONE)(cfg)
    hidden = Evaluator(w8b, trn1, 1, Overlap.LAYER)(cfg)
    assert exposed.breakdown.fsdp_comm_s > hidden.breakdown.fsdp_comm_s >= 0
    assert exposed.step_time_s > hidden.step_time_s


def test_bubbles_follow_each_schedule() -> None:
    f, b, w = 1.0, 2.0, 0.8
    one = ParallelConfig(pp=4)
    assert _bubble(one, f, b, w) == pytest.approx(3 * 3.0)
    inter = ParallelConfig(pp=4, schedule=PipelineSchedule.INTERLEAVED_1F1B, virtual_stages=2)
    assert _bubble(inter, f, b, w) == pytest.approx(3 * 3.0 / 2)
    zb = ParallelConfig(pp=4, schedule=PipelineSchedule.INTERLEAVED_ZB, virtual_stages=2)
    assert _bubble(zb, f, b, w) == pytest.approx(3 * (3.0 - 1.6) / 2)
    zbv = ParallelConfig(pp=4, schedule=PipelineSchedule.ZBV, virtual_stages=2)
    assert _bubble(zbv, f, b, w) == pytest.approx(3 * (3.0 - 2.4))
    assert _bubble(ParallelConfig(pp=1), f, b, w) == 0


def test_pipeline_adds_bubble_and_sends(trn1) -> None:
    w = TrainWorkload.create("llama3-8b", 4096, 64)
    e = evaluate(w, trn1, 2, ParallelConfig(tp=8, pp=4, dp=2, sequence_parallel=True))
    assert e.breakdown.pp_bubble_s > 0 and e.breakdown.pp_p2p_s > 0
    assert e.micro_batches == 32


def test_moe_expert_parallel_adds_all_to_all() -> None:
    w = TrainWorkload.create("mixtral-8x7b", 4096, 64)
    dev = Device.create("trn2.48xlarge")
    e = evaluate(w, dev, 1, ParallelConfig(tp=4, dp=16, ep=8, sequence_parallel=True,
                                           dp_mode=DataParallel.FSDP, dp_shard=16, lnc=2))
    e1 = evaluate(w, dev, 1, ParallelConfig(tp=4, dp=16, ep=1, sequence_parallel=True,
                                            dp_mode=DataParallel.FSDP, dp_shard=16, lnc=2))
    assert e.breakdown.ep_comm_s > 0 and e1.breakdown.ep_comm_s == 0
    # eight times fewer experts per device: less weight memory
    assert e.memory.weights_bytes < e1.memory.weights_bytes


def test_megatron_iteration_times_within_ten_percent() -> None:
    """benchmarks/validate_training.py's rows, as a regression guard (no fitting on them)."""
    spec = importlib.util.spec_from_file_location(
        "validate_training", ROOT / "benchmarks" / "validate_training.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["validate_training"] = mod
    spec.loader.exec_module(mod)
    import yaml

    rows = yaml.safe_load(mod.ROWS.read_text())["models"]
    errors = []
    for row in rows:
        for key, rc, sp in mod.MODES:
            est = mod.predict(row, rc, sp)
            errors.append(abs(est.step_time_s / row[key] - 1))
    assert max(errors) <= 0.10
    assert statistics.fmean(errors) <= 0.05
