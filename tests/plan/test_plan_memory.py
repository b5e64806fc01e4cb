"""Device memory: optimizer/weight bytes per data-parallel mode, activations against
Korthikanti et al.'s closed forms, overflow messages."""

from __future__ import annotations

import pytest

from tessera.models.config import Activation, ModelConfig, ModelFamily
from tessera.plan.layers import Shard, block_ops
from tessera.plan.memory import MemoryBreakdown, in_flight, saved_bytes, state_bytes
from tessera.plan.space import DataParallel, ParallelConfig, PipelineSchedule, Recompute
from tessera.plan.workload import AttentionImpl

S, B, H, A = 2048, 2, 1024, 16


def _gpt() -> ModelConfig:
    return ModelConfig(family=ModelFamily.GPT2, vocab_size=51200, hidden_size=H, num_layers=4,
                       num_heads=A, num_kv_heads=A, intermediate_size=4 * H,
                       max_position_embeddings=S, norm_eps=1e-5, activation=Activation.GELU)


def _layer_bytes(tp: int, sp: bool, rc: Recompute) -> int:
    shard = Shard(B, S, tp, sp, attention=AttentionImpl.MATERIALIZED, dropout=True)
    ops = block_ops(_gpt(), 1, shard)
    return saved_bytes(ops, rc, shard.norm_rows * H * 2)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_activations_match_korthikanti_without_recompute(tp: int) -> None:
    sbh = S * B * H
    # Korthikanti et al. 2022, eq. (2): sbh (10 + 24/t + 5as/(ht)) bytes per layer
    expected = sbh * (10 + 24 / tp + 5 * A * S / (H * tp))
    assert _layer_bytes(tp, False, Recompute.NONE) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("tp", [2, 8])
def test_activations_with_sequence_parallel_and_selective(tp: int) -> None:
    sbh = S * B * H
    # eq. (4): sbh/t (34 + 5as/h) with sequence parallelism; eq. (5): 34 sbh/t with
    # selective recomputation added
    assert _layer_bytes(tp, True, Recompute.NONE) == pytest.approx(
        sbh / tp * (34 + 5 * A * S / H), rel=1e-9)
    assert _layer_bytes(tp, True, Recompute.SELECTIVE) == pytest.approx(34 * sbh / tp,
                                                                         rel=1e-9)
    # full recomputation keeps only the block input: 2 sbh, split by sequence parallelism
    assert _layer_bytes(tp, True, Recompute.FULL) == 2 * sbh // tp


def test_state_bytes_per_data_parallel_mode() -> None:
    n = 1_000_000
    rep = state_bytes(ParallelConfig(dp=8), n, 0, 1000)
    assert rep == (2 * n, 4 * n, 12 * n)  # bf16 weight, fp32 grad, master + moments
    z1 = state_bytes(ParallelConfig(dp=8, dp_mode=DataParallel.ZERO1), n, 0, 1000)
    assert z1 == (2 * n, 4 * n, 12 * n / 8)
    fsdp = state_bytes(ParallelConfig(dp=8, dp_mode=DataParallel.FSDP, dp_shard=8), n, 0,
                       1000)
    assert fsdp == (4 * n / 8 + 2 * 1000 * 2, 4 * n / 8, 8 * n / 8)
    lora = state_bytes(ParallelConfig(dp=8), 10, n, 1000)  # frozen base: bf16 only
    assert lora == (2 * (n + 10), 40, 120)


def test_in_flight_micro_batches_by_schedule() -> None:
    assert in_flight(ParallelConfig(pp=1), 64) == 1
    assert in_flight(ParallelConfig(pp=4, schedule=PipelineSchedule.GPIPE), 64) == 64
    assert in_flight(ParallelConfig(pp=4), 64) == 4
    inter = ParallelConfig(pp=4, schedule=PipelineSchedule.INTERLEAVED_1F1B, virtual_stages=2)
    assert in_flight(inter, 64) == pytest.approx(4 * (1 + 3 / 8))


def test_overflow_names_the_largest_term() -> None:
    gib = 2**30
    m = MemoryBreakdown(1 * gib, 1 * gib, 6 * gib, 20 * gib, 1 * gib, 16 * gib)
    assert not m.fits
    assert m.overflow() == ("needs 29.0 GiB of 16.0 GiB per device (13.0 GiB over; largest "
                            "term: activations 20.0 GiB)")
    ok = MemoryBreakdown(1, 1, 1, 1, 1, 10)
    assert ok.fits and ok.overflow() == "" and ok.headroom_bytes == 5
