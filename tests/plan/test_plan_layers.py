"""Block op lists: weights per device add up to the model, tensor parallelism cuts the
right dimensions, MoE / MLA / windowed attention appear as the config says."""

from __future__ import annotations

import pytest

from tessera.models import PRESETS
from tessera.plan.errors import PlanError
from tessera.plan.layers import Shard, block_ops, embedding_ops, head_ops, local_heads


def _params(cfg, shard: Shard) -> int:
    total = sum(op.params for op in embedding_ops(cfg, shard))
    total += sum(op.params for op in head_ops(cfg, shard))
    for i in range(cfg.num_layers):
        total += sum(op.params for op in block_ops(cfg, i, shard))
    return total


@pytest.mark.parametrize("name", ["llama3-8b", "llama2-7b", "qwen3-8b", "mixtral-8x7b",
                                  "deepseek-v3", "gpt3-1.3b"])
def test_weights_add_up_to_the_model(name: str) -> None:
    cfg = PRESETS[name]
    # biases and the few per-head norm weights are not carried by the op list: within 0.5 %
    assert _params(cfg, Shard(1, 1024)) == pytest.approx(cfg.num_parameters(), rel=0.005)


def test_tensor_parallel_cuts_heads_and_columns() -> None:
    cfg = PRESETS["llama3-8b"]
    one, eight = block_ops(cfg, 1, Shard(1, 1024)), block_ops(cfg, 1, Shard(1, 1024, tp=8))
    p1 = sum(op.params for op in one if op.kernel == "matmul")
    p8 = sum(op.params for op in eight if op.kernel == "matmul")
    assert p8 * 8 == p1
    q = next(op for op in eight if op.name == "q_proj")
    assert dict(q.shapes) == {"M": 1024, "K": 4096, "N": 4096 // 8}
    # 8 KV heads over tp=32: each device keeps one, replicated
    assert local_heads(cfg, 32) == (1, 1)
    with pytest.raises(PlanError, match="does not divide the 32 attention heads"):
        local_heads(cfg, 3)


def test_sequence_parallel_splits_norm_rows() -> None:
    cfg = PRESETS["llama3-8b"]
    ops = block_ops(cfg, 1, Shard(2, 1024, tp=4, sequence_parallel=True))
    norm = next(op for op in ops if op.name == "attn_norm")
    assert dict(norm.shapes)["rows"] == 2 * 1024 // 4


def test_moe_layers_route_tokens_to_local_experts() -> None:
    cfg = PRESETS["mixtral-8x7b"]
    ops = block_ops(cfg, 1, Shard(1, 4096, ep=4))
    up = next(op for op in ops if op.name == "expert_up_proj")
    assert up.calls == 8 // 4  # two local experts
    # each device computes k = 2 routed copies of its 4096 tokens, over its 2 experts
    assert dict(up.shapes)["M"] == 4096 * 2 // 2
    assert any(op.name == "router" for op in ops)


def test_mla_projections_and_dense_first_layers() -> None:
    cfg = PRESETS["deepseek-v3"]
    names0 = {op.name for op in block_ops(cfg, 0, Shard(1, 1024))}
    names5 = {op.name for op in block_ops(cfg, 5, Shard(1, 1024))}
    assert {"q_a_proj", "kv_a_proj", "kv_b_proj"} <= names0
    assert "gate_proj" in names0 and "expert_gate_proj" not in names0  # dense first layers
    assert {"expert_gate_proj", "shared_gate_proj"} <= names5


def test_sliding_window_layers_attend_in_chunks() -> None:
    cfg = PRESETS["gpt-oss-20b"]
    spans = {cfg.attention_span(i, 8192) for i in range(cfg.num_layers)}
    assert spans == {128, 8192}
    local = next(i for i in range(cfg.num_layers) if cfg.attention_span(i, 8192) == 128)
    att = next(op for op in block_ops(cfg, local, Shard(1, 8192)) if op.name == "attention")
    assert dict(att.shapes)["seq"] == 128 and att.calls == 8192 // 128
