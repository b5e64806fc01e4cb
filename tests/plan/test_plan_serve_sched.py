"""Serving simulation, schedulers: a lone request's TTFT and TPOT are the step times, the
Neuron scheduler keeps prefill and decode apart and admits within its bounds, vLLM's mixes
them and preempts when KV blocks run out, prefix caching skips the cached prompt tokens,
static batching loses to continuous batching under load, Little's law holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from tessera.plan.serve_linear import LinearStepCost
from tessera.plan.serve_load import closed_loop_load, random_load
from tessera.plan.serve_sim import simulate
from tessera.plan.serve_types import (
    SchedulerConfig,
    SchedulerKind,
    ServeError,
    ServeLoad,
    ServeRequest,
    StepBatch,
    StepCostModel,
)

A, B, C = 10e-3, 0.08e-3, 0.05e-3  # fixed, per prefill token, per decoding sequence
NEURON, VLLM, STATIC = SchedulerKind.NEURON, SchedulerKind.VLLM, SchedulerKind.STATIC


@dataclass
class RecordingCost:
    """LinearStepCost that also keeps every batch it was asked about."""

    kv_blocks: int = 4096
    block_size: int = 32
    seen: list[StepBatch] = field(default_factory=list)

    def step_s(self, batch: StepBatch) -> float:
        self.seen.append(batch)
        return A + B * batch.prefill_tokens + C * batch.decode_seqs


def _one(*reqs: ServeRequest, concurrency: int | None = None) -> ServeLoad:
    return ServeLoad(tuple(reqs), concurrency)


def test_serve_recording_cost_is_a_step_cost_model() -> None:
    assert isinstance(RecordingCost(), StepCostModel)
    assert isinstance(LinearStepCost(), StepCostModel)


@pytest.mark.parametrize("kind", list(SchedulerKind))
def test_serve_lone_request_ttft_is_prefill_step_tpot_is_decode_step(kind) -> None:
    res = simulate(LinearStepCost(), _one(ServeRequest(0.0, 100, 10)),
                   SchedulerConfig(kind=kind))
    m = res.metrics()
    assert m["mean_ttft_ms"] == pytest.approx((A + 100 * B) * 1e3)
    assert m["mean_tpot_ms"] == pytest.approx((A + C) * 1e3)
    assert m["median_itl_ms"] == pytest.approx((A + C) * 1e3)
    assert m["mean_e2el_ms"] == pytest.approx((A + 100 * B + 9 * (A + C)) * 1e3)
    assert m["total_output_tokens"] == 10 and m["completed"] == 1


def test_serve_long_prompt_is_prefilled_in_budget_sized_segments() -> None:
    cost = RecordingCost()
    res = simulate(cost, _one(ServeRequest(0.0, 3000, 2)),
                   SchedulerConfig(max_num_batched_tokens=1024))
    assert [b.prefill_tokens for b in cost.seen[:3]] == [1024, 1024, 952]
    assert [b.max_context_tokens for b in cost.seen[:3]] == [1024, 2048, 3000]
    assert res.ttft_s[0] == pytest.approx(3 * A + 3000 * B)


def test_serve_neuron_never_mixes_prefill_and_decode_vllm_does() -> None:
    load = random_load(60, 300, 40, range_ratio=0.5, rate_per_s=20.0, seed=2)
    neuron, vllm = RecordingCost(), RecordingCost()
    simulate(neuron, load, SchedulerConfig(kind=NEURON, max_num_seqs=8))
    simulate(vllm, load, SchedulerConfig(kind=VLLM, max_num_seqs=8))
    assert all(not (b.prefill_seqs and b.decode_seqs) for b in neuron.seen)
    assert max(b.prefill_seqs for b in neuron.seen) == 1  # one prefill per step
    assert any(b.prefill_seqs and b.decode_seqs for b in vllm.seen)
    assert max(b.prefill_seqs for b in vllm.seen) > 1


def test_serve_neuron_prefill_hides_running_decodes() -> None:
    # B arrives while A decodes: A gets no token during B's prefill step (prefill priority)
    a = ServeRequest(0.0, 100, 50)
    b = ServeRequest(0.1, 1000, 5)
    res = simulate(LinearStepCost(), _one(a, b), SchedulerConfig(kind=NEURON))
    a_tokens = res.token_s[res.token_offsets[0]:res.token_offsets[1]]
    gap = np.diff(a_tokens).max()
    assert gap == pytest.approx((A + 1000 * B) + (A + 2 * C))  # B's prefill + a decode of 2
    # B's first token: its prefill ran as soon as A's decode step in flight ended
    assert res.first_token_s[1] - res.send_s[1] < (A + C) + (A + 1000 * B) + 1e-12


def test_serve_neuron_admission_respects_max_num_seqs_and_kv_bound() -> None:
    # 256 blocks x 32 tokens hold 4 requests of max_model_len 2048: at most 4 run at once
    cost = LinearStepCost(kv_blocks=256, block_size=32)
    load = _one(*(ServeRequest(0.0, 200, 100) for _ in range(12)))
    res = simulate(cost, load, SchedulerConfig(kind=NEURON, max_num_seqs=8,
                                               max_model_len=2048))
    assert res.timeline.running_seqs.max() == 4
    assert res.counters.preemptions == 0
    res = simulate(LinearStepCost(), load, SchedulerConfig(kind=NEURON, max_num_seqs=8))
    assert res.timeline.running_seqs.max() == 8


def test_serve_vllm_preempts_when_kv_blocks_run_out_neuron_does_not() -> None:
    cost = LinearStepCost(kv_blocks=64, block_size=16)  # 1024 tokens of KV
    load = _one(*(ServeRequest(0.0, 200, 300) for _ in range(8)))
    cfg = SchedulerConfig(kind=VLLM, max_num_seqs=8, max_model_len=1024)
    res = simulate(cost, load, cfg)
    assert res.counters.preemptions > 0 and res.preemptions.sum() == res.counters.preemptions
    assert (res.output_tokens == 300).all()  # recomputed, every token still delivered
    # recompute: the prompt tokens computed exceed the prompts by the preempted contexts
    assert res.counters.prompt_tokens_computed > 8 * 200
    assert (res.timeline.kv_used_frac <= 1.0).all()
    neuron = simulate(cost, load, SchedulerConfig(kind=NEURON, max_num_seqs=8,
                                                  max_model_len=1024))
    assert neuron.counters.preemptions == 0
    assert neuron.timeline.running_seqs.max() == 1  # 64 blocks hold one 1024-token request


@pytest.mark.parametrize("kind", [NEURON, VLLM])
def test_serve_prefix_caching_skips_cached_prompt_tokens(kind) -> None:
    # 20 requests share a 512-token system prompt (16 full blocks of 32), one after another
    load = _one(*(ServeRequest(0.0, 600, 5, prefix_id=0, prefix_tokens=512)
                  for _ in range(20)), concurrency=1)
    on = simulate(LinearStepCost(), load, SchedulerConfig(kind=kind))
    off = simulate(LinearStepCost(), load,
                   SchedulerConfig(kind=kind, enable_prefix_caching=False))
    assert off.counters.prompt_tokens_computed == 20 * 600
    assert on.counters.prompt_tokens_computed == 600 + 19 * (600 - 512)
    assert on.counters.prefix_hit_tokens == 19 * 512
    assert on.ttft_s[1:] == pytest.approx(np.full(19, A + 88 * B))
    assert on.metrics()["mean_ttft_ms"] < off.metrics()["mean_ttft_ms"]


def test_serve_prefix_hit_leaves_the_last_token_to_compute() -> None:
    # a prompt that is exactly its cached prefix still computes its last block's tokens
    load = _one(*(ServeRequest(0.0, 512, 3, prefix_id=7, prefix_tokens=512)
                  for _ in range(2)), concurrency=1)
    res = simulate(LinearStepCost(), load, SchedulerConfig())
    assert res.counters.prefix_hit_tokens == 480
    assert res.counters.prompt_tokens_computed == 512 + 32


def test_serve_static_batching_loses_to_continuous_under_load() -> None:
    load = random_load(300, 512, 256, range_ratio=0.9, rate_per_s=6.0, seed=3)
    res = {k: simulate(LinearStepCost(), load, SchedulerConfig(kind=k, max_num_seqs=16))
           .metrics() for k in SchedulerKind}
    for kind in (NEURON, VLLM):
        assert res[kind]["request_throughput"] > 1.3 * res[STATIC]["request_throughput"]
        assert res[kind]["mean_ttft_ms"] < 0.5 * res[STATIC]["mean_ttft_ms"]


def test_serve_static_batch_admits_nothing_until_it_ends() -> None:
    cost = RecordingCost()
    load = _one(ServeRequest(0.0, 100, 2), ServeRequest(0.0, 100, 20),
                ServeRequest(0.001, 100, 2))
    res = simulate(cost, load, SchedulerConfig(kind=STATIC))
    assert res.first_token_s[2] > res.finish_s[1]  # the third waited for the whole batch
    # the first request, done after 2 tokens, is still padding in its batch's 19 decodes;
    # the third then decodes alone (every step here differs, so none was memoised away)
    assert [b.decode_seqs for b in cost.seen if b.decode_seqs] == [2] * 19 + [1]


@pytest.mark.parametrize("kind", [NEURON, VLLM])
def test_serve_littles_law_holds(kind) -> None:
    load = random_load(500, 400, 120, range_ratio=0.5, rate_per_s=5.0, seed=11)
    res = simulate(LinearStepCost(), load, SchedulerConfig(kind=kind, max_num_seqs=16))
    m = res.metrics()
    tl = res.timeline
    held = np.diff(np.append(tl.start_s, res.duration_s))  # each sample holds to the next
    in_system = np.sum((tl.running_seqs + tl.queued) * held) / res.duration_s
    assert in_system == pytest.approx(m["request_throughput"] * m["mean_e2el_ms"] / 1e3,
                                      rel=0.02)


def test_serve_closed_loop_of_one_runs_requests_one_by_one() -> None:
    res = simulate(LinearStepCost(), closed_loop_load(20, 1, 200, 30, range_ratio=0.5),
                   SchedulerConfig(kind=VLLM))
    assert res.send_s[1:] == pytest.approx(res.finish_s[:-1])
    assert res.duration_s == pytest.approx(res.e2el_s.sum())
    assert res.metrics()["max_concurrent_requests"] == 1
    assert (res.timeline.running_seqs <= 1).all()


def test_serve_closed_loop_keeps_n_in_flight() -> None:
    res = simulate(LinearStepCost(), closed_loop_load(100, 6, 200, 30, range_ratio=0.5),
                   SchedulerConfig(kind=NEURON, max_num_seqs=16))
    assert res.metrics()["max_concurrent_requests"] == 6
    assert (res.timeline.running_seqs + res.timeline.queued).max() == 6


def test_serve_replicas_share_the_load_least_loaded() -> None:
    load = random_load(400, 512, 128, range_ratio=0.5, rate_per_s=12.0, seed=5)
    one = simulate(LinearStepCost(), load, SchedulerConfig(max_num_seqs=16))
    two = simulate(LinearStepCost(), load, SchedulerConfig(max_num_seqs=16), replicas=2)
    counts = np.bincount(two.replica, minlength=2)
    assert abs(counts[0] - counts[1]) <= 0.1 * len(load.requests)
    assert two.metrics()["request_throughput"] > 1.5 * one.metrics()["request_throughput"]
    assert len(two.counters.busy_s) == 2


def test_serve_rejects_requests_and_caches_that_cannot_fit() -> None:
    with pytest.raises(ServeError, match="request 1 needs 4000 prompt"):
        simulate(LinearStepCost(), _one(ServeRequest(0.0, 10, 1), ServeRequest(0.0, 4000, 200)),
                 SchedulerConfig(max_model_len=4096))
    with pytest.raises(ServeError, match="less than one request of --max-model-len 4096"):
        simulate(LinearStepCost(kv_blocks=10), _one(ServeRequest(0.0, 10, 1)))
    with pytest.raises(ServeError, match="--max-num-batched-tokens 4 is smaller than "
                                         "--max-num-seqs 8"):
        SchedulerConfig(max_num_batched_tokens=4)
    with pytest.raises(ServeError, match="--replicas: 0"):
        simulate(LinearStepCost(), _one(ServeRequest(0.0, 10, 1)), replicas=0)
