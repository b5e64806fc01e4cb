"""Inference model: buckets pad each step as the stacks do, memory and the largest batch,
weight and KV precision, the search, SLOs and the emitted serving configuration."""

from __future__ import annotations

import json

import pytest

from tessera.models import PRESETS
from tessera.plan.devices import Device, load_instance
from tessera.plan.emit_serving import nxdi_config, serve_command, vllm_config
from tessera.plan.errors import NoFeasibleConfigError, PlanError
from tessera.plan.infer import InferPins, InferWorkload, evaluate, infer
from tessera.plan.infer_step import InferCost
from tessera.plan.kv import kv_bytes_per_seq
from tessera.plan.serving import (
    ServingConfig,
    ServingStack,
    WeightDtype,
    bucket_of,
    default_stack,
    powers_of_two,
)

LLAMA8 = PRESETS["llama3-8b"]


def _cfg(**kw) -> ServingConfig:
    base = dict(stack=ServingStack.VLLM, tp=8, lnc=2, max_num_seqs=8, max_model_len=4096,
                max_num_batched_tokens=2048)
    return ServingConfig(**{**base, **kw})


def test_bucket_ladders_follow_the_stacks() -> None:
    assert powers_of_two(128, 2048) == (128, 256, 512, 1024, 2048)
    assert powers_of_two(128, 3000) == (128, 256, 512, 1024, 2048, 3000)
    v = _cfg()
    assert v.prefill_ladder == (128, 256, 512, 1024, 2048)
    assert v.seq_ladder == (1, 2, 4, 8)
    # without context buckets vLLM Neuron reads every block of max_model_len
    assert v.context_ladder == (4096,)
    assert _cfg(context_buckets=True).context_ladder[-1] == 4096
    n = _cfg(stack=ServingStack.NXDI)
    assert n.prefill_ladder[-1] == 4096 and n.seq_ladder == (8,)
    assert bucket_of(300, v.prefill_ladder, "x") == 512
    with pytest.raises(PlanError, match="exceeds the largest bucket 2048"):
        bucket_of(5000, v.prefill_ladder, "x")


def test_default_stack_by_chip() -> None:
    assert default_stack(load_instance("trn2.48xlarge")) is ServingStack.VLLM
    assert default_stack(load_instance("trn1.32xlarge")) is ServingStack.NXDI
    assert default_stack(load_instance("inf2.48xlarge")) is ServingStack.NXDI


def test_steps_are_priced_at_their_bucket() -> None:
    cost = InferCost(LLAMA8, Device.create("trn2.48xlarge"), _cfg())
    assert cost.prefill_s(300) == cost.prefill_s(512)  # both run the 512-token graph
    assert cost.prefill_s(513) > cost.prefill_s(512)
    assert cost.decode_s(3, 100) == cost.decode_s(4, 100)
    # vLLM Neuron without context buckets: the KV read does not depend on the context
    assert cost.decode_s(4, 100) == cost.decode_s(4, 4000)
    bucketed = InferCost(LLAMA8, Device.create("trn2.48xlarge"), _cfg(context_buckets=True))
    assert bucketed.decode_s(4, 100) < bucketed.decode_s(4, 4000)
    assert bucketed.decode_s(4, 100) < cost.decode_s(4, 100)


def test_decode_is_bound_by_weights_and_cheaper_in_fp8() -> None:
    dev = Device.create("trn2.48xlarge")
    bf16 = InferCost(LLAMA8, dev, _cfg()).decode(1, 1024)
    fp8 = InferCost(LLAMA8, dev, _cfg(weight_dtype=WeightDtype.FP8)).decode(1, 1024)
    assert fp8.compute_s < 0.7 * bf16.compute_s
    # the step at least streams each device's share of the weights once
    weights = LLAMA8.num_parameters() * 2 / 8
    assert bf16.compute_s >= weights / dev.hbm_bytes_per_s


def test_kv_cache_size() -> None:
    cfg = _cfg(tp=4)
    # 32 layers x (k, v) x 2 KV heads per device x 128 x 4096 tokens x 2 bytes
    assert kv_bytes_per_seq(LLAMA8, cfg) == 32 * 2 * 2 * 128 * 4096 * 2
    assert kv_bytes_per_seq(LLAMA8, _cfg(tp=4, kv_fp8=True)) == 32 * 2 * 2 * 128 * 4096
    # tp 32 > 8 KV heads: one replicated head per device
    assert kv_bytes_per_seq(LLAMA8, _cfg(tp=32)) == 32 * 2 * 1 * 128 * 4096 * 2
    # a sliding-window model keeps only the window on its local layers
    oss = PRESETS["gpt-oss-20b"]
    full = oss.num_layers * 2 * (oss.num_kv_heads // 8) * oss.head_dim * 4096 * 2
    assert kv_bytes_per_seq(oss, _cfg(tp=8)) < full


def test_evaluate_reports_ttft_tpot_and_throughput() -> None:
    w = InferWorkload(LLAMA8, "llama3-8b", 1000, 100, 4)
    e = evaluate(w, Device.create("trn2.48xlarge"), _cfg(replicas=8))
    assert 0 < e.tpot_s < e.ttft_s
    assert e.output_tokens_per_s == pytest.approx(8 * 4 * 100 / e.e2e_s)  # 8 replicas
    assert e.output_tokens_per_s_per_request == pytest.approx(1 / e.tpot_s)
    assert e.prefill_padding == pytest.approx(1 - 1000 / 1024)
    assert e.memory.fits and e.memory.max_batch > 4
    d = e.as_dict()
    for key in ("ttft_s", "tpot_s", "output_tokens_per_s", "breakdown"):
        assert key in d


def test_prefix_hits_shorten_ttft() -> None:
    dev = Device.create("trn2.48xlarge")
    cold = evaluate(InferWorkload(LLAMA8, "m", 2000, 10, 1), dev, _cfg())
    warm = evaluate(InferWorkload(LLAMA8, "m", 2000, 10, 1, prefix_hit_rate=0.75), dev,
                    _cfg())
    assert warm.ttft_s < cold.ttft_s


def test_search_slos_and_errors() -> None:
    plan = infer("llama3-8b", 512, 64, "trn2.48xlarge", batch=1)
    assert plan.rows and all(e.batch == 1 for e in plan.rows)
    ranks = [e.ttft_s + 64 * e.tpot_s for e in plan.rows]
    assert ranks == sorted(ranks)
    with pytest.raises(PlanError, match="no deployment on trn2.48xlarge meets the SLOs"):
        infer("llama3-8b", 512, 64, "trn2.48xlarge", batch=1, tpot_slo_s=1e-6)
    with pytest.raises(NoFeasibleConfigError, match="largest term: weights"):
        infer("llama3.1-405b", 512, 64, "inf2.xlarge", batch=1)
    with pytest.raises(PlanError, match="unknown model"):
        infer("llama9", 512, 64, "trn2.48xlarge")
    with pytest.raises(PlanError, match="exceeds --max-model-len"):
        infer("llama3-8b", 4000, 200, "trn2.48xlarge", batch=1,
              pins=InferPins(max_model_len=4096))


def test_emitted_configurations() -> None:
    w = InferWorkload(LLAMA8, "meta-llama/Llama-3.1-8B", 1000, 100, 4)
    e = evaluate(w, Device.create("trn2.48xlarge"), _cfg(context_buckets=True))
    cfg = vllm_config(e)
    assert cfg["tensor_parallel_size"] == 8 and cfg["max_model_len"] == 4096
    neuron = cfg["additional_config"]["neuron_config"]
    assert neuron["num_seqs_buckets"] == [1, 2, 4, 8]
    assert "decode_context_length_buckets" in neuron
    cmd = serve_command(e, w.model_name)
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-8B --tensor-parallel-size 8")
    assert json.loads(cmd.split("--additional-config ")[1].strip("'")) == \
        cfg["additional_config"]
    n = nxdi_config(evaluate(w, Device.create("trn1.32xlarge"),
                             _cfg(stack=ServingStack.NXDI, lnc=1)))
    assert n["tp_degree"] == 8 and n["enable_bucketing"]


def test_a_few_row_norm_spreads_over_partitions() -> None:
    from tessera.plan.devices import neuron_request
    from tessera.plan.workload import TrainDtype

    _, shapes, _ = neuron_request(1, "rmsnorm", {"rows": 1, "cols": 8192}, "bfloat16",
                                  TrainDtype.BF16)
    assert dict(shapes) == {"rows": 64, "cols": 128}  # same elements, 64 partitions busy
    _, shapes, _ = neuron_request(2, "add_rmsnorm", {"rows": 4, "cols": 16384}, "bfloat16",
                                  TrainDtype.BF16)
    assert dict(shapes) == {"rows": 64, "cols": 512}  # 4 x 32 rows, split over 2 cores
    _, shapes, _ = neuron_request(1, "rmsnorm", {"rows": 256, "cols": 8192}, "bfloat16",
                                  TrainDtype.BF16)
    assert dict(shapes) == {"rows": 256, "cols": 8192}  # enough rows: left as it is


def test_refine_reprices_the_top_deployment_at_simulated_fidelity(tmp_path, monkeypatch
                                                                   ) -> None:
    from tessera import cost

    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path))
    pins = InferPins(tp=1, lnc=1, replicas=1)
    rough = infer("tiny-llama", 64, 4, "trn2.48xlarge", batch=1, pins=pins)
    fine = infer("tiny-llama", 64, 4, "trn2.48xlarge", batch=1, pins=pins, refine=1)
    assert fine.refined == 1 and rough.refined == 0
    assert fine.best.fidelity is cost.Fidelity.SIMULATED
    assert rough.best.fidelity is cost.Fidelity.ROOFLINE
    # ROOFLINE is a lower bound on what the simulated kernels achieve
    assert fine.best.tpot_s >= rough.best.tpot_s > 0
    assert fine.best.ttft_s >= rough.best.ttft_s > 0
    assert fine.best.as_dict()["fidelity"] == "simulated"
