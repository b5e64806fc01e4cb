"""ModelConfig's attention, MoE and MLA variants: validation, attention spans, MoE layers,
per-layer counts, and the reference Llama with head widths, biases and q/k norms."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tessera.models import (
    PRESETS,
    TINY_GPT2,
    TINY_LLAMA,
    AttentionKind,
    LocalAttention,
    MlaConfig,
    ModelConfig,
    ModelConfigError,
    MoeConfig,
    RouterKind,
    build_model,
)

MOE = MoeConfig(num_experts=4, experts_per_token=2, expert_intermediate_size=32)
MLA = MlaConfig(q_lora_rank=16, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=4,
                v_head_dim=8)
TINY_MOE = dataclasses.replace(TINY_LLAMA, moe=MOE)


def _replace(config: ModelConfig, **changes: Any) -> ModelConfig:
    return dataclasses.replace(config, **changes)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(("base", "changes", "field"), [
    (TINY_LLAMA, {"attention_head_dim": -1}, "attention_head_dim"),
    (TINY_LLAMA, {"attention_head_dim": 15}, "attention_head_dim"),  # odd: no RoPE pairs
    (TINY_LLAMA, {"qk_norm": 1}, "qk_norm"),
    (TINY_LLAMA, {"attention_bias": None}, "attention_bias"),
    (TINY_LLAMA, {"attention_sinks": "yes"}, "attention_sinks"),
    (TINY_LLAMA, {"sliding_window": -4}, "sliding_window"),
    (TINY_LLAMA, {"sliding_window": 16, "attention_chunk_size": 32}, "attention_chunk_size"),
    (TINY_LLAMA, {"global_attention_every": 2}, "global_attention_every"),  # no window
    (TINY_LLAMA, {"sliding_window": 16, "global_attention_every": 1}, "global_attention_every"),
    (TINY_LLAMA, {"moe": {"num_experts": 4}}, "moe"),
    (TINY_LLAMA, {"moe": dataclasses.replace(MOE, first_dense_layers=2)}, "moe"),  # no MoE
    (TINY_LLAMA, {"moe": dataclasses.replace(MOE, layer_step=3)}, "moe"),  # 2 layers only
    (TINY_LLAMA, {"mla": (16, 8)}, "mla"),
    (TINY_LLAMA, {"mla": MLA, "attention_head_dim": 16}, "attention_head_dim"),
    (TINY_LLAMA, {"mla": MLA, "qk_norm": True}, "qk_norm"),
    (TINY_LLAMA, {"mla": MLA, "attention_bias": True}, "attention_bias"),
    (TINY_GPT2, {"moe": MOE}, "moe"),
    (TINY_GPT2, {"qk_norm": True}, "qk_norm"),
    (TINY_GPT2, {"sliding_window": 16}, "sliding_window"),
    (TINY_GPT2, {"mla": MLA}, "mla"),
])
def test_variant_fields_are_validated(base: ModelConfig, changes: dict, field: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        _replace(base, **changes)
    assert str(info.value).startswith(f"{field}:"), str(info.value)


@pytest.mark.parametrize(("changes", "field"), [
    ({"num_experts": 0}, "moe.num_experts"),
    ({"experts_per_token": 5}, "moe.experts_per_token"),
    ({"expert_intermediate_size": True}, "moe.expert_intermediate_size"),
    ({"num_shared_experts": 1}, "moe.shared_expert_intermediate_size"),  # width 0
    ({"shared_expert_intermediate_size": 32}, "moe.shared_expert_intermediate_size"),
    ({"first_dense_layers": -1}, "moe.first_dense_layers"),
    ({"layer_step": 0}, "moe.layer_step"),
    ({"router": "softmax"}, "moe.router"),
    ({"router_bias": 1}, "moe.router_bias"),
    ({"expert_groups": 3}, "moe.expert_groups"),
    ({"expert_groups": 2, "expert_groups_per_token": 3}, "moe.expert_groups_per_token"),
    # 2 groups of 2 experts, 1 group per token: at most 2 experts reachable
    ({"expert_groups": 2, "experts_per_token": 3}, "moe.experts_per_token"),
])
def test_moe_config_is_validated(changes: dict, field: str) -> None:
    with pytest.raises(ModelConfigError, match=f"^{field}:"):
        dataclasses.replace(MOE, **changes)


@pytest.mark.parametrize(("changes", "field"), [
    ({"q_lora_rank": -1}, "mla.q_lora_rank"),
    ({"kv_lora_rank": 0}, "mla.kv_lora_rank"),
    ({"qk_rope_head_dim": 3}, "mla.qk_rope_head_dim"),
    ({"v_head_dim": 0}, "mla.v_head_dim"),
])
def test_mla_config_is_validated(changes: dict, field: str) -> None:
    with pytest.raises(ModelConfigError, match=f"^{field}:"):
        dataclasses.replace(MLA, **changes)


def test_explicit_head_dim_frees_hidden_size() -> None:
    # Qwen3-32B: 64 heads of 128 on a 5120-wide stream (80 would be hidden / heads)
    qwen = PRESETS["qwen3-32b"]
    assert qwen.head_dim == 128 and qwen.hidden_size // qwen.num_heads == 80
    assert PRESETS["gpt-oss-120b"].head_dim == 64  # 2880 / 64 is 45
    odd = _replace(TINY_LLAMA, hidden_size=66, attention_head_dim=16)
    assert odd.head_dim == 16 and odd.value_head_dim == 16
    assert TINY_LLAMA.head_dim == 16 and TINY_LLAMA.attention_head_dim == 0


def test_attention_kinds() -> None:
    assert PRESETS["llama2-7b"].attention_kind is AttentionKind.MHA
    assert PRESETS["llama3-8b"].attention_kind is AttentionKind.GQA
    deepseek = PRESETS["deepseek-v3"]
    assert deepseek.attention_kind is AttentionKind.MLA
    assert (deepseek.head_dim, deepseek.value_head_dim) == (192, 128)
    assert PRESETS["bert-base"].attention_kind is AttentionKind.MHA


# ------------------------------------------------------------------ attention spans
def test_attention_span_full_attention() -> None:
    llama = PRESETS["llama3-8b"]
    assert llama.local_attention is LocalAttention.NONE
    assert [llama.attention_span(layer, 8192) for layer in (0, 31)] == [8192, 8192]
    assert PRESETS["bert-large"].attention_span(23, 512) == 512


def test_attention_span_sliding_window_on_every_layer() -> None:
    mistral = PRESETS["mistral-7b"]
    assert mistral.local_attention is LocalAttention.SLIDING
    assert mistral.attention_span(0, 2048) == 2048  # shorter than the window
    assert mistral.attention_span(31, 32768) == 4096
    assert not any(mistral.is_global_layer(layer) for layer in range(32))


def test_attention_span_alternating_sliding_and_full() -> None:
    oss = PRESETS["gpt-oss-20b"]
    spans = [oss.attention_span(layer, 8192) for layer in range(4)]
    assert spans == [128, 8192, 128, 8192]  # sliding first
    assert oss.attention_span(22, 100) == 100 and oss.attention_span(23, 100) == 100


def test_attention_span_chunked_with_global_every_fourth() -> None:
    scout = PRESETS["llama4-scout"]
    assert scout.local_attention is LocalAttention.CHUNKED
    spans = [scout.attention_span(layer, 131072) for layer in range(8)]
    assert spans == [8192, 8192, 8192, 131072] * 2
    assert [layer for layer in range(48) if scout.is_global_layer(layer)] == \
        list(range(3, 48, 4))


@pytest.mark.parametrize(("layer", "seq_len", "argument"), [
    (-1, 16, "layer"), (2, 16, "layer"), (True, 16, "layer"), (0, 0, "seq_len"),
    (0, 1.5, "seq_len"),
])
def test_attention_span_rejects_bad_arguments(layer: Any, seq_len: Any, argument: str) -> None:
    with pytest.raises(ValueError, match=f"^{argument}:"):
        TINY_LLAMA.attention_span(layer, seq_len)


# ------------------------------------------------------------------ MoE layers
def test_moe_layers() -> None:
    deepseek = PRESETS["deepseek-v3"]
    assert [deepseek.is_moe_layer(i) for i in range(5)] == [False, False, False, True, True]
    assert sum(deepseek.is_moe_layer(i) for i in range(61)) == 58
    maverick = PRESETS["llama4-maverick"]
    assert [maverick.is_moe_layer(i) for i in range(4)] == [False, True, False, True]
    assert all(PRESETS["llama4-scout"].is_moe_layer(i) for i in range(48))
    assert not any(PRESETS["llama3-70b"].is_moe_layer(i) for i in range(80))
    stepped = _replace(TINY_LLAMA, num_layers=9,
                       moe=dataclasses.replace(MOE, first_dense_layers=3, layer_step=3))
    assert [i for i in range(9) if stepped.is_moe_layer(i)] == [5, 8]
    with pytest.raises(ValueError, match="^layer:"):
        stepped.is_moe_layer(9)


def test_routers() -> None:
    assert PRESETS["mixtral-8x7b"].moe.router is RouterKind.SOFTMAX
    deepseek = PRESETS["deepseek-v3"].moe
    assert deepseek.router is RouterKind.SIGMOID
    assert (deepseek.expert_groups, deepseek.expert_groups_per_token) == (8, 4)


# ------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parts_add_up_to_the_total(name: str) -> None:
    config = PRESETS[name]
    layers = [config.layer_parameters(i) for i in range(config.num_layers)]
    assert config.embedding_parameters() + sum(layers) + config.head_parameters() == \
        config.num_parameters()
    experts = [config.layer_expert_parameters(i) for i in range(config.num_layers)]
    assert all(0 <= e < total for e, total in zip(experts, layers, strict=True))
    assert (sum(experts) > 0) == (config.moe is not None)


def test_moe_layer_counts_by_hand() -> None:
    h, e, i = TINY_MOE.hidden_size, 4, 32
    attention = 2 * h * h + 2 * h * (2 * 16)  # q, o; k, v of 2 heads of 16
    layer = attention + e * 3 * h * i + h * e + 2 * h  # experts, router, norms
    assert TINY_MOE.layer_parameters(0) == layer
    assert TINY_MOE.layer_expert_parameters(0) == e * 3 * h * i
    # active: 2 of 4 experts per layer
    assert TINY_MOE.num_parameters() - TINY_MOE.num_active_parameters() == 2 * 2 * 3 * h * i
    shared = _replace(TINY_MOE, moe=dataclasses.replace(
        MOE, num_shared_experts=2, shared_expert_intermediate_size=8, router_bias=True))
    assert shared.layer_parameters(0) - layer == 2 * 3 * h * 8 + e
    biased = _replace(TINY_MOE, mlp_bias=True)
    assert biased.layer_expert_parameters(0) - TINY_MOE.layer_expert_parameters(0) == \
        e * (2 * i + h)


def test_attention_variant_counts_by_hand() -> None:
    h = TINY_LLAMA.hidden_size
    base = TINY_LLAMA.layer_parameters(0)
    assert _replace(TINY_LLAMA, qk_norm=True).layer_parameters(0) - base == 2 * 16
    assert _replace(TINY_LLAMA, attention_bias=True).layer_parameters(0) - base == 64 + 2 * 32
    assert _replace(TINY_LLAMA, attention_out_bias=True).layer_parameters(0) - base == h
    assert _replace(TINY_LLAMA, attention_sinks=True).layer_parameters(0) - base == 4
    wide = _replace(TINY_LLAMA, attention_head_dim=32)  # q, o 128 wide; k, v 64
    assert wide.layer_parameters(0) - base == 2 * h * (128 - 64) + 2 * h * (64 - 32)
    mla = _replace(TINY_LLAMA, mla=MLA)
    q = h * 16 + 16 + 16 * 4 * 12  # q_a_proj, q_a_layernorm, q_b_proj to 4 heads of 8 + 4
    kv = h * (8 + 4) + 8 + 8 * 4 * (8 + 8)  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj
    mlp_and_norms = base - (2 * h * h + 2 * h * 32)
    assert mla.layer_parameters(0) == q + kv + 4 * 8 * h + mlp_and_norms
    no_q_lora = _replace(TINY_LLAMA, mla=dataclasses.replace(MLA, q_lora_rank=0))
    assert no_q_lora.layer_parameters(0) - mla.layer_parameters(0) == h * 48 - q


def test_active_parameters_without_embeddings() -> None:
    table = TINY_LLAMA.vocab_size * TINY_LLAMA.hidden_size
    assert TINY_LLAMA.num_active_parameters(embedding=False) == \
        TINY_LLAMA.num_parameters() - table
    # a tied table is also the LM head, which every token multiplies by
    tied = _replace(TINY_LLAMA, tie_word_embeddings=True)
    assert tied.num_active_parameters(embedding=False) == tied.num_parameters()
    gpt2 = PRESETS["gpt2"]  # tied: only the learned positions are left out
    assert gpt2.num_parameters() - gpt2.num_active_parameters(embedding=False) == 1024 * 768


# ------------------------------------------------------------------ reference models
@pytest.mark.parametrize(("config", "field"), [
    (TINY_MOE, "moe"),
    (_replace(TINY_LLAMA, mla=MLA), "mla"),
    (_replace(TINY_LLAMA, sliding_window=16), "sliding_window"),
    (_replace(TINY_LLAMA, attention_chunk_size=16, global_attention_every=2),
     "attention_chunk_size"),
    (_replace(TINY_LLAMA, attention_sinks=True), "attention_sinks"),
    (_replace(TINY_GPT2, attention_head_dim=32), "attention_head_dim"),
])
def test_build_model_refuses_what_it_cannot_build(config: ModelConfig, field: str) -> None:
    with pytest.raises(ModelConfigError, match=f"^{field}:"):
        build_model(config)
    from tessera.models.llama import LlamaModel

    if field != "attention_head_dim":
        with pytest.raises(ModelConfigError, match=f"^{field}:"):
            LlamaModel(config)  # built directly, as tessera.models.pretrained does


QWEN_LIKE = {
    "qwen3": _replace(TINY_LLAMA, qk_norm=True, attention_head_dim=32, norm_eps=1e-6),
    "qwen2": _replace(TINY_LLAMA, attention_bias=True),
    "llama-biased": _replace(TINY_LLAMA, attention_bias=True, attention_out_bias=True,
                             mlp_bias=True),
}


@pytest.mark.parametrize("name", sorted(QWEN_LIKE))
def test_reference_llama_variants_count_exactly(name: str) -> None:
    torch = pytest.importorskip("torch")
    config = QWEN_LIKE[name]
    model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters()
    with torch.no_grad():
        logits = model(torch.randint(0, config.vocab_size, (2, 8)))
    assert logits.shape == (2, 8, config.vocab_size) and torch.isfinite(logits).all()


HF_TINY = {
    "qwen3": {"model_type": "qwen3", "head_dim": 32, "attention_bias": False},
    "qwen2": {"model_type": "qwen2"},
    "llama": {"model_type": "llama", "head_dim": 8, "attention_bias": True, "mlp_bias": True},
}


@pytest.mark.parametrize("name", sorted(HF_TINY))
def test_reference_llama_matches_transformers(name: str) -> None:
    # transformers' own model, random weights (norm scales and biases too), loaded into the
    # reference Llama: the logits agree, so head widths, biases and q/k norms sit where
    # Hugging Face puts them
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from tessera.models.pretrained import reference_llama

    keys = {"vocab_size": 96, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 80,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "tie_word_embeddings": False, **HF_TINY[name]}
    model_type = keys.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **keys)
    hf_config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    hf_model = transformers.AutoModelForCausalLM.from_config(hf_config).eval()
    with torch.no_grad():
        for param in hf_model.parameters():
            param.copy_(torch.randn_like(param) * 0.1 + (1.0 if param.dim() == 1 else 0.0))
    ours = reference_llama(hf_model)
    ids = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        expected = hf_model(input_ids=ids, use_cache=False).logits
        actual = ours(ids)
    assert torch.allclose(actual, expected, atol=1e-4, rtol=1e-4)
