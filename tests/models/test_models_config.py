"""ModelConfig: validation, presets and their parameter counts, Hugging Face config import."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.models import (
    BERT_BASE,
    BERT_LARGE,
    GPT2_SMALL,
    LLAMA2_7B,
    LLAMA3_8B,
    PRESETS,
    TINY_BERT,
    TINY_GPT2,
    TINY_LLAMA,
    Activation,
    ModelConfig,
    ModelConfigError,
    ModelFamily,
    from_hf_config,
)

ROOT = Path(__file__).resolve().parents[2]

# trimmed copies of the public config.json files the presets cite
LLAMA3_8B_JSON = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "attention_bias": False,
}
GPT2_JSON = {
    "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
    "n_inner": None, "n_positions": 1024, "n_ctx": 1024, "layer_norm_epsilon": 1e-05,
    "activation_function": "gelu_new",
}
BERT_BASE_JSON = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
}


def test_presets_by_lowercase_name() -> None:
    # the first presets keep their names (the zoo's are checked in test_models_zoo.py)
    assert {"llama3-8b", "llama2-7b", "bert-base", "bert-large", "gpt2", "tiny-llama",
            "tiny-gpt2", "tiny-bert"} <= set(PRESETS)
    assert PRESETS["llama3-8b"] is LLAMA3_8B and PRESETS["gpt2"] is GPT2_SMALL
    assert all(name == name.lower() for name in PRESETS)


@pytest.mark.parametrize(("config", "expected", "tolerance"), [
    (LLAMA3_8B, 8.03e9, 0.01),
    (LLAMA2_7B, 6.74e9, 0.01),
    (BERT_BASE, 110e6, 0.03),
    (BERT_LARGE, 335e6, 0.03),
    (GPT2_SMALL, 124e6, 0.02),
], ids=["llama3-8b", "llama2-7b", "bert-base", "bert-large", "gpt2"])
def test_preset_parameter_counts_match_published_sizes(config: ModelConfig, expected: float,
                                                       tolerance: float) -> None:
    assert config.num_parameters() == pytest.approx(expected, rel=tolerance)


def test_preset_parameter_counts_are_exact() -> None:
    # the counts transformers reports for these checkpoints (BERT with its pooler)
    assert LLAMA3_8B.num_parameters() == 8_030_261_248
    assert LLAMA2_7B.num_parameters() == 6_738_415_616
    assert BERT_BASE.num_parameters() == 109_482_240
    assert GPT2_SMALL.num_parameters() == 124_439_808


def test_tying_removes_the_lm_head_from_the_count() -> None:
    tied = dataclasses.replace(TINY_LLAMA, tie_word_embeddings=True)
    vocab_by_hidden = TINY_LLAMA.vocab_size * TINY_LLAMA.hidden_size
    assert TINY_LLAMA.num_parameters() - tied.num_parameters() == vocab_by_hidden


def test_head_dim_and_gqa_fields() -> None:
    assert LLAMA3_8B.head_dim == 128 and LLAMA3_8B.num_kv_heads == 8
    assert BERT_LARGE.head_dim == 64 and GPT2_SMALL.head_dim == 64
    assert TINY_LLAMA.num_heads % TINY_LLAMA.num_kv_heads == 0


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY_LLAMA.hidden_size = 128  # type: ignore[misc]


@pytest.mark.parametrize(("base", "changes", "field"), [
    (TINY_LLAMA, {"vocab_size": 0}, "vocab_size"),
    (TINY_LLAMA, {"hidden_size": -64}, "hidden_size"),
    (TINY_LLAMA, {"num_layers": 1.5}, "num_layers"),
    (TINY_LLAMA, {"num_heads": True}, "num_heads"),
    (TINY_LLAMA, {"intermediate_size": 0}, "intermediate_size"),
    (TINY_LLAMA, {"max_position_embeddings": 0}, "max_position_embeddings"),
    (TINY_LLAMA, {"hidden_size": 66}, "hidden_size"),  # not divisible by 4 heads
    (TINY_LLAMA, {"num_kv_heads": 3}, "num_kv_heads"),  # does not divide 4 heads
    (TINY_LLAMA, {"norm_eps": 0.0}, "norm_eps"),
    (TINY_LLAMA, {"norm_eps": float("nan")}, "norm_eps"),
    (TINY_LLAMA, {"rope_theta": 0.0}, "rope_theta"),
    (TINY_LLAMA, {"activation": Activation.GELU}, "activation"),
    (TINY_LLAMA, {"activation": "silu"}, "activation"),
    (TINY_LLAMA, {"family": "llama"}, "family"),
    (TINY_LLAMA, {"type_vocab_size": 2}, "type_vocab_size"),
    (TINY_LLAMA, {"tie_word_embeddings": 1}, "tie_word_embeddings"),
    (TINY_LLAMA, {"hidden_size": 12, "num_heads": 4, "num_kv_heads": 4}, "hidden_size"),  # odd
    (TINY_GPT2, {"rope_theta": 10000.0}, "rope_theta"),
    (TINY_GPT2, {"num_kv_heads": 2}, "num_kv_heads"),
    (TINY_GPT2, {"activation": Activation.SILU}, "activation"),
    (TINY_BERT, {"type_vocab_size": 0}, "type_vocab_size"),
    (TINY_BERT, {"type_vocab_size": -1}, "type_vocab_size"),
    (TINY_BERT, {"tie_word_embeddings": True}, "tie_word_embeddings"),
])
def test_invalid_configs_name_the_field(base: ModelConfig, changes: dict, field: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        dataclasses.replace(base, **changes)
    message = str(info.value)
    assert message.startswith(f"{field}:"), message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_from_hf_config_llama3() -> None:
    assert from_hf_config(LLAMA3_8B_JSON) == LLAMA3_8B


def test_from_hf_config_gpt2_defaults_n_inner_to_four_times_hidden() -> None:
    config = from_hf_config(GPT2_JSON)
    assert config == GPT2_SMALL
    assert config.intermediate_size == 4 * 768
    assert config.activation is Activation.GELU_TANH and config.tie_word_embeddings


def test_from_hf_config_bert() -> None:
    assert from_hf_config(BERT_BASE_JSON) == BERT_BASE


def test_from_hf_config_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(BERT_BASE_JSON))
    assert from_hf_config(path) == BERT_BASE
    assert from_hf_config(str(path)) == BERT_BASE


def test_from_hf_config_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="^config:"):
        from_hf_config(tmp_path / "missing.json")


def test_from_hf_config_llama_defaults_and_nested_rope() -> None:
    older = {k: v for k, v in LLAMA3_8B_JSON.items()
             if k not in ("num_key_value_heads", "rope_theta", "tie_word_embeddings")}
    config = from_hf_config(older)
    assert config.num_kv_heads == config.num_heads == 32  # MHA when the key is absent
    assert config.rope_theta == 10000.0 and not config.tie_word_embeddings
    nested = {**older, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    assert from_hf_config(nested).rope_theta == 500000.0


def test_from_hf_config_gelu_variants() -> None:
    assert from_hf_config({**GPT2_JSON, "activation_function": "gelu"}).activation \
        is Activation.GELU
    assert from_hf_config({**BERT_BASE_JSON, "hidden_act": "gelu_pytorch_tanh"}).activation \
        is Activation.GELU_TANH


@pytest.mark.parametrize(("config", "key"), [
    ({**LLAMA3_8B_JSON, "model_type": "falcon"}, "model_type"),
    ({k: v for k, v in LLAMA3_8B_JSON.items() if k != "model_type"}, "model_type"),
    ({k: v for k, v in LLAMA3_8B_JSON.items() if k != "hidden_size"}, "hidden_size"),
    ({k: v for k, v in GPT2_JSON.items() if k != "n_layer"}, "n_layer"),
    ({k: v for k, v in BERT_BASE_JSON.items() if k != "intermediate_size"}, "intermediate_size"),
    ({**BERT_BASE_JSON, "hidden_act": "relu"}, "hidden_act"),
    ({**GPT2_JSON, "activation_function": "relu"}, "activation_function"),
    ({**LLAMA3_8B_JSON, "attention_bias": "yes"}, "attention_bias"),
    ({**LLAMA3_8B_JSON, "head_dim": 64.0}, "head_dim"),
    ({**LLAMA3_8B_JSON, "head_dim": 63}, "attention_head_dim"),  # odd: no RoPE pairs
    ({**LLAMA3_8B_JSON, "num_key_value_heads": 5}, "num_kv_heads"),  # our field name
])
def test_from_hf_config_errors_name_the_key(config: dict, key: str) -> None:
    with pytest.raises(ModelConfigError, match=f"^{key}:"):
        from_hf_config(config)


def test_from_hf_config_llama_biases_and_head_width() -> None:
    # once refused, now fields: Llama's attention_bias biases q, k, v and o
    biased = from_hf_config({**LLAMA3_8B_JSON, "attention_bias": True, "mlp_bias": True})
    assert biased.attention_bias and biased.attention_out_bias and biased.mlp_bias
    narrow = from_hf_config({**LLAMA3_8B_JSON, "head_dim": 64})
    assert narrow.attention_head_dim == 64 and narrow.head_dim == 64
    # a head_dim equal to hidden_size // heads is the default, so the configs compare equal
    assert from_hf_config({**LLAMA3_8B_JSON, "head_dim": 128}) == LLAMA3_8B


def test_from_hf_config_rejects_a_non_object() -> None:
    with pytest.raises(ModelConfigError, match="^config:"):
        from_hf_config([1, 2])  # type: ignore[arg-type]


def test_families_and_activations() -> None:
    assert {f.value for f in ModelFamily} == {"llama", "gpt2", "bert"}
    assert {a.value for a in Activation} == {"silu", "gelu", "gelu_tanh"}


@pytest.mark.parametrize("module", ["tessera.models", "tessera.models.config"])
def test_reading_configs_does_not_import_torch(module: str) -> None:
    # the planner reads configs on machines and in processes without torch
    code = (f"import sys, {module} as m\n"
            "from tessera.models import PRESETS, from_hf_config\n"
            "PRESETS['llama3-8b'].num_parameters()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
