"""Hugging Face config.json import for the zoo's families: round trips to the presets, the
counts of transformers' own models, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.models import (
    PRESETS,
    AttentionKind,
    LocalAttention,
    ModelConfigError,
    RouterKind,
    from_hf_config,
)

# trimmed copies of the published config.json files (the keys that shape the model; the
# sources are the URLs on the presets in tessera/models/zoo.py)
LLAMA31_405B = {
    "model_type": "llama", "vocab_size": 128256, "hidden_size": 16384,
    "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8,
    "intermediate_size": 53248, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": False,
    "attention_bias": False, "mlp_bias": False,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
MISTRAL_7B = {
    "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "hidden_act": "silu", "sliding_window": 4096,
    "tie_word_embeddings": False,
}
MIXTRAL_8X7B = {
    **MISTRAL_7B, "model_type": "mixtral", "rope_theta": 1e6, "sliding_window": None,
    "num_local_experts": 8, "num_experts_per_tok": 2,
}
# https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json (no preset: qwen2 reader)
QWEN25_7B = {
    "model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "intermediate_size": 18944, "max_position_embeddings": 131072, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "hidden_act": "silu", "sliding_window": 131072,
    "use_sliding_window": False, "max_window_layers": 28, "tie_word_embeddings": False,
}
QWEN3_8B = {
    "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 4096,
    "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "intermediate_size": 12288, "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "hidden_act": "silu",
    "attention_bias": False, "sliding_window": None, "use_sliding_window": False,
    "max_window_layers": 36, "tie_word_embeddings": False,
}
QWEN3_32B = {
    **QWEN3_8B, "hidden_size": 5120, "num_hidden_layers": 64, "num_attention_heads": 64,
    "intermediate_size": 25600, "max_window_layers": 64,
}
QWEN3_30B_A3B = {
    "model_type": "qwen3_moe", "vocab_size": 151936, "hidden_size": 2048,
    "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
    "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
    "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
    "mlp_only_layers": [], "norm_topk_prob": True, "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "hidden_act": "silu",
    "attention_bias": False, "use_sliding_window": False, "tie_word_embeddings": False,
}
QWEN3_235B_A22B = {
    **QWEN3_30B_A3B, "hidden_size": 4096, "num_hidden_layers": 94,
    "num_attention_heads": 64, "intermediate_size": 12288, "moe_intermediate_size": 1536,
}
GPT_OSS_120B = {
    "model_type": "gpt_oss", "vocab_size": 201088, "hidden_size": 2880,
    "num_hidden_layers": 36, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "intermediate_size": 2880, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 150000, "hidden_act": "silu",
    "attention_bias": True, "sliding_window": 128, "num_local_experts": 128,
    "num_experts_per_tok": 4, "experts_per_token": 4, "swiglu_limit": 7.0,
    "initial_context_length": 4096, "tie_word_embeddings": False,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
}
GPT_OSS_20B = {
    **GPT_OSS_120B, "num_hidden_layers": 24, "num_local_experts": 32,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
}
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "moe_layer_freq": 1, "n_group": 8, "topk_group": 4, "scoring_func": "sigmoid",
    "topk_method": "noaux_tc", "norm_topk_prob": True, "routed_scaling_factor": 2.5,
    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "v_head_dim": 128, "num_nextn_predict_layers": 1,
    "max_position_embeddings": 163840, "rms_norm_eps": 1e-06, "rope_theta": 10000,
    "hidden_act": "silu", "attention_bias": False, "tie_word_embeddings": False,
}
LLAMA4_SCOUT_TEXT = {
    "model_type": "llama4_text", "vocab_size": 202048, "hidden_size": 5120,
    "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
    "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
    "attention_chunk_size": 8192, "no_rope_layers": [], "use_qk_norm": True,
    "max_position_embeddings": 10485760, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "hidden_act": "silu", "attention_bias": False, "tie_word_embeddings": False,
}
LLAMA4_MAVERICK_TEXT = {
    **LLAMA4_SCOUT_TEXT, "num_local_experts": 128, "interleave_moe_layer_step": 2,
    "use_qk_norm": False, "max_position_embeddings": 1048576,
}
# the published checkpoints are multimodal: the language model sits in text_config
VISION = {"model_type": "llama4_vision_model", "hidden_size": 1408, "num_hidden_layers": 34}
LLAMA4_SCOUT = {"model_type": "llama4", "text_config": LLAMA4_SCOUT_TEXT,
                "vision_config": VISION}
LLAMA4_MAVERICK = {"model_type": "llama4", "text_config": LLAMA4_MAVERICK_TEXT,
                   "vision_config": VISION}

ROUND_TRIPS = {
    "llama3.1-405b": LLAMA31_405B, "mistral-7b": MISTRAL_7B, "mixtral-8x7b": MIXTRAL_8X7B,
    "qwen3-8b": QWEN3_8B, "qwen3-32b": QWEN3_32B, "qwen3-30b-a3b": QWEN3_30B_A3B,
    "qwen3-235b-a22b": QWEN3_235B_A22B, "gpt-oss-20b": GPT_OSS_20B,
    "gpt-oss-120b": GPT_OSS_120B, "deepseek-v3": DEEPSEEK_V3, "llama4-scout": LLAMA4_SCOUT,
    "llama4-maverick": LLAMA4_MAVERICK,
}
HF_MODELS = {**ROUND_TRIPS, "qwen2.5-7b": QWEN25_7B}


def _without(config: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != key}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_hf_import_gives_the_preset(name: str) -> None:
    assert from_hf_config(ROUND_TRIPS[name]) == PRESETS[name]


def test_hf_import_llama4_text_config_alone() -> None:
    # a llama4_text config.json (the text model saved on its own) reads the same
    assert from_hf_config(LLAMA4_SCOUT_TEXT) == PRESETS["llama4-scout"]


def test_hf_import_qwen2_biases_q_k_v_only() -> None:
    config = from_hf_config(QWEN25_7B)
    assert config.attention_bias and not config.attention_out_bias
    assert config.local_attention is LocalAttention.NONE  # use_sliding_window false
    # https://huggingface.co/Qwen/Qwen2.5-7B: 7.61B parameters
    assert config.num_parameters() == 7_615_616_512


def test_hf_import_reads_the_variants() -> None:
    oss = from_hf_config(GPT_OSS_20B)
    assert oss.attention_sinks and oss.mlp_bias and oss.moe is not None and oss.moe.router_bias
    assert (oss.sliding_window, oss.global_attention_every) == (128, 2)
    scout = from_hf_config(LLAMA4_SCOUT)
    assert scout.intermediate_size == 16384 and scout.moe is not None
    assert scout.moe.expert_intermediate_size == 8192 and scout.moe.router is RouterKind.SIGMOID
    assert (scout.attention_chunk_size, scout.global_attention_every) == (8192, 4)
    deepseek = from_hf_config(DEEPSEEK_V3)
    assert deepseek.attention_kind is AttentionKind.MLA and deepseek.mla is not None
    assert deepseek.mla.q_lora_rank == 1536 and deepseek.head_dim == 192
    assert from_hf_config({**DEEPSEEK_V3, "q_lora_rank": None}).mla.q_lora_rank == 0


def test_hf_import_layer_patterns() -> None:
    full = from_hf_config({**GPT_OSS_20B, "layer_types": ["full_attention"] * 24})
    assert full.local_attention is LocalAttention.NONE and full.sliding_window == 0
    local = from_hf_config({**GPT_OSS_20B, "layer_types": ["sliding_attention"] * 24})
    assert (local.sliding_window, local.global_attention_every) == (128, 0)
    # without layer_types Hugging Face alternates, sliding first
    assert from_hf_config(_without(GPT_OSS_20B, "layer_types")) == PRESETS["gpt-oss-20b"]
    # Llama-4: an explicit no_rope_layers list, and the interval form
    rope = [int((i + 1) % 4 != 0) for i in range(48)]
    listed = {**LLAMA4_SCOUT_TEXT, "no_rope_layers": rope}
    assert from_hf_config(listed) == PRESETS["llama4-scout"]
    every_8 = from_hf_config({**LLAMA4_SCOUT_TEXT, "no_rope_layer_interval": 8})
    assert every_8.global_attention_every == 8
    no_chunks = from_hf_config({**LLAMA4_SCOUT_TEXT, "attention_chunk_size": None})
    assert no_chunks.local_attention is LocalAttention.NONE
    qwen = from_hf_config({**QWEN3_30B_A3B, "mlp_only_layers": [0, 1]})
    assert qwen.moe is not None and qwen.moe.first_dense_layers == 2
    assert not qwen.is_moe_layer(1) and qwen.is_moe_layer(2)


def _text(config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A Llama-4 checkpoint config with `changes` in its text_config."""
    return {**config, "text_config": {**config["text_config"], **changes}}


@pytest.mark.parametrize(("config", "key"), [
    ({**QWEN3_8B, "model_type": "falcon"}, "model_type"),
    ({**QWEN3_8B, "model_type": 3}, "model_type"),
    (_without(LLAMA4_SCOUT, "text_config"), "text_config"),
    ({**LLAMA4_SCOUT, "text_config": [1]}, "text_config"),
    (_text(LLAMA4_SCOUT, hidden_size=None), "text_config.hidden_size"),
    (_text(LLAMA4_SCOUT, moe_layers=[0, 2]), "text_config.moe_layers"),
    (_text(LLAMA4_SCOUT, intermediate_size_mlp="16384"), "text_config.intermediate_size_mlp"),
    (_text(LLAMA4_SCOUT, no_rope_layers=[1, 1, 0] + [1] * 45), "text_config.no_rope_layers"),
    ({**QWEN3_8B, "hidden_size": None}, "hidden_size"),
    ({**QWEN3_8B, "use_sliding_window": True}, "use_sliding_window"),
    ({**QWEN3_8B, "rope_theta": "1e6"}, "rope_theta"),
    ({**QWEN3_8B, "rope_parameters": 5, "rope_theta": None}, "rope_parameters"),
    ({**QWEN3_8B, "rms_norm_eps": True}, "rms_norm_eps"),
    ({**QWEN3_8B, "tie_word_embeddings": 0}, "tie_word_embeddings"),
    ({**QWEN3_8B, "hidden_act": 7}, "hidden_act"),
    (_without(QWEN3_30B_A3B, "moe_intermediate_size"), "moe_intermediate_size"),
    ({**QWEN3_30B_A3B, "mlp_only_layers": [5]}, "mlp_only_layers"),
    ({**QWEN3_30B_A3B, "mlp_only_layers": 5}, "mlp_only_layers"),
    ({**QWEN3_30B_A3B, "num_experts_per_tok": 200}, "moe.experts_per_token"),
    ({**MIXTRAL_8X7B, "num_local_experts": "8"}, "num_local_experts"),
    ({**MISTRAL_7B, "sliding_window": 4096.0}, "sliding_window"),
    ({**GPT_OSS_20B, "layer_types": ["full_attention"] * 3}, "layer_types"),
    ({**GPT_OSS_20B, "layer_types": ["full_attention", "sliding_attention"] * 12},
     "layer_types"),
    (_without(_without(GPT_OSS_20B, "num_experts_per_tok"), "experts_per_token"),
     "experts_per_token"),
    ({**DEEPSEEK_V3, "moe_layer_freq": 2}, "moe_layer_freq"),
    ({**DEEPSEEK_V3, "scoring_func": "relu"}, "scoring_func"),
    ({**DEEPSEEK_V3, "attention_bias": True}, "attention_bias"),
    ({**DEEPSEEK_V3, "n_group": 7}, "moe.expert_groups"),
    (_without(DEEPSEEK_V3, "kv_lora_rank"), "kv_lora_rank"),
    ({**DEEPSEEK_V3, "qk_rope_head_dim": 63}, "mla.qk_rope_head_dim"),
])
def test_hf_import_errors_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        from_hf_config(config)
    message = str(info.value)
    assert message.startswith(f"{key}:"), message
    assert "\n" not in message


# ------------------------------------------------- against transformers' own models
def _hf_model(config: dict[str, Any]) -> Any:
    """transformers' causal LM of a config.json, on the meta device (no memory, no init)."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    if config["model_type"] == "llama4":
        config = config["text_config"]
    hf_config = transformers.AutoConfig.for_model(
        config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(hf_config)


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_hf_import_counts_equal_transformers(name: str) -> None:
    model = _hf_model(HF_MODELS[name])
    assert sum(p.numel() for p in model.parameters()) == \
        from_hf_config(HF_MODELS[name]).num_parameters()


@pytest.mark.parametrize("name", ["deepseek-v3", "llama4-maverick", "gpt-oss-20b"])
def test_hf_import_per_layer_counts_equal_transformers(name: str) -> None:
    # per layer, per part: what a pipeline stage or an expert-parallel group holds
    model, config = _hf_model(ROUND_TRIPS[name]), PRESETS[name]
    layers = [0] * config.num_layers
    experts = [0] * config.num_layers
    embeddings = head = 0
    for param_name, param in model.named_parameters():
        parts = param_name.split(".")
        if parts[:2] == ["model", "layers"]:
            index = int(parts[2])
            layers[index] += param.numel()
            if ".experts." in param_name:
                experts[index] += param.numel()
        elif "embed_tokens" in param_name:
            embeddings += param.numel()
        else:
            head += param.numel()  # model.norm, lm_head
    assert layers == [config.layer_parameters(i) for i in range(config.num_layers)]
    assert experts == [config.layer_expert_parameters(i) for i in range(config.num_layers)]
    assert (embeddings, head) == (config.embedding_parameters(), config.head_parameters())
