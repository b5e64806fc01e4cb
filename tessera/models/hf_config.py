"""`from_hf_config`: a `ModelConfig` from a Hugging Face config.json (no torch, no transformers).

One reader per model_type maps the file's keys onto ModelConfig's fields. A key the file may
leave out takes Hugging Face's default; a required key that is missing or null, a value of
the wrong type, an unknown model_type or a feature no field describes is a
`ModelConfigError` naming the key (`text_config.<key>` inside Llama-4's nested config).
`rope_scaling` is not read: it changes no shape or parameter count.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tessera.models.model_config import ModelConfig
from tessera.models.parts import (
    Activation,
    MlaConfig,
    ModelConfigError,
    ModelFamily,
    MoeConfig,
    RouterKind,
)

_MISSING: Any = object()
_ACTIVATIONS = {"silu": Activation.SILU, "swish": Activation.SILU, "gelu": Activation.GELU,
                "gelu_new": Activation.GELU_TANH, "gelu_pytorch_tanh": Activation.GELU_TANH}


class _Keys:
    """Typed reads of one config.json object; every error names the key. A null value reads
    as an absent key (config.json writes `"sliding_window": null` for "none")."""

    def __init__(self, config: Mapping[str, Any], prefix: str = "") -> None:
        self.config, self.prefix = config, prefix

    def name(self, key: str) -> str:
        return self.prefix + key

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        value = self.config.get(key)
        if value is None:
            if default is _MISSING:
                raise ModelConfigError(f"{self.name(key)}: missing from the config")
            return default
        return value

    def integer(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and (not isinstance(value, int) or isinstance(value, bool)):
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not an integer")
        return value

    def number(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and (not isinstance(value, int | float)
                                     or isinstance(value, bool)):
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not a number")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not true or false")
        return value

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and not isinstance(value, str):
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not a string")
        return value

    def items(self, key: str) -> list[Any] | None:
        value = self.raw(key, None)
        if value is not None and not isinstance(value, list):
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not a list")
        return value

    def activation(self, key: str, default: str) -> Activation:
        value = self.text(key, default)
        if value not in _ACTIVATIONS:
            raise ModelConfigError(f"{self.name(key)}: {value!r} is not one of "
                                   f"{', '.join(_ACTIVATIONS)}")
        return _ACTIVATIONS[value]


def from_hf_config(config: Mapping[str, Any] | str | Path) -> ModelConfig:
    """A `ModelConfig` from a Hugging Face config.json (its parsed dict, or its path).

    Reads model_type llama, llama4 (its text_config), mistral, mixtral, qwen2, qwen3,
    qwen3_moe, gpt_oss, deepseek_v3, gpt2 and bert; anything else, and any key it cannot
    read, raises `ModelConfigError` naming the key.
    """
    if isinstance(config, str | Path):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelConfigError(f"config: cannot read {config}: {err}") from err
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"config: expected a JSON object, got {type(config).__name__}")
    keys = _Keys(config)
    model_type = keys.text("model_type")
    if model_type == "llama4":
        # the multimodal checkpoint: the language model's keys are in text_config
        nested = keys.raw("text_config")
        if not isinstance(nested, Mapping):
            raise ModelConfigError(f"text_config: {nested!r} is not a JSON object")
        keys = _Keys(nested, "text_config.")
    reader = _READERS.get(model_type)
    if reader is None:
        raise ModelConfigError(f"model_type: {model_type!r} is not one of "
                               f"{', '.join(_READERS)}")
    return ModelConfig(**reader(keys))


def _decoder(keys: _Keys, bias: bool = False) -> dict[str, Any]:
    """The fields every Llama-family config.json spells the same way."""
    hidden, heads = keys.integer("hidden_size"), keys.integer("num_attention_heads")
    head_dim = keys.integer("head_dim", 0)
    if heads and not hidden % heads and head_dim == hidden // heads:
        head_dim = 0  # stored as the default, so equal configs compare equal
    bias = keys.flag("attention_bias", bias)
    return dict(
        family=ModelFamily.LLAMA, vocab_size=keys.integer("vocab_size"), hidden_size=hidden,
        num_layers=keys.integer("num_hidden_layers"), num_heads=heads,
        num_kv_heads=keys.integer("num_key_value_heads", heads),
        intermediate_size=keys.integer("intermediate_size"),
        max_position_embeddings=keys.integer("max_position_embeddings"),
        norm_eps=keys.number("rms_norm_eps", 1e-6),
        activation=keys.activation("hidden_act", "silu"), rope_theta=_rope_theta(keys),
        tie_word_embeddings=keys.flag("tie_word_embeddings", False),
        attention_head_dim=head_dim, attention_bias=bias, attention_out_bias=bias)


def _rope_theta(keys: _Keys) -> Any:
    """rope_theta, or (newer files) rope_parameters.rope_theta, else 10000."""
    nested = keys.raw("rope_parameters", {})
    if not isinstance(nested, Mapping):
        raise ModelConfigError(f"{keys.name('rope_parameters')}: {nested!r} is not an object")
    inner = _Keys(nested, keys.name("rope_parameters."))
    return keys.number("rope_theta", inner.number("rope_theta", 10000.0))


def _llama(keys: _Keys) -> dict[str, Any]:
    return {**_decoder(keys), "mlp_bias": keys.flag("mlp_bias", False)}


def _mistral(keys: _Keys) -> dict[str, Any]:
    # the window, when set, applies to every layer
    return {**_decoder(keys), "sliding_window": keys.integer("sliding_window", 0)}


def _mixtral(keys: _Keys) -> dict[str, Any]:
    values = _mistral(keys)
    values["moe"] = MoeConfig(
        num_experts=keys.integer("num_local_experts"),
        experts_per_token=keys.integer("num_experts_per_tok"),
        expert_intermediate_size=values["intermediate_size"])
    return values


def _qwen_full_attention(keys: _Keys) -> None:
    # Qwen slides a window over the layers from max_window_layers on; no field says that
    if keys.flag("use_sliding_window", False):
        raise ModelConfigError(f"{keys.name('use_sliding_window')}: Qwen's sliding window "
                               "from max_window_layers on is not modelled")


def _qwen2(keys: _Keys) -> dict[str, Any]:
    _qwen_full_attention(keys)
    # Qwen2 always biases q, k and v, never o; its config.json has no key for it
    return {**_decoder(keys), "attention_bias": True, "attention_out_bias": False}


def _qwen3(keys: _Keys) -> dict[str, Any]:
    _qwen_full_attention(keys)
    return {**_decoder(keys), "qk_norm": True}


def _qwen3_moe(keys: _Keys) -> dict[str, Any]:
    values = _qwen3(keys)
    dense = keys.items("mlp_only_layers") or []
    if sorted(dense) != list(range(len(dense))):
        raise ModelConfigError(f"{keys.name('mlp_only_layers')}: {dense!r}: only leading "
                               "dense layers are modelled (first_dense_layers)")
    values["moe"] = MoeConfig(
        num_experts=keys.integer("num_experts"),
        experts_per_token=keys.integer("num_experts_per_tok"),
        expert_intermediate_size=keys.integer("moe_intermediate_size"),
        layer_step=keys.integer("decoder_sparse_step", 1), first_dense_layers=len(dense))
    return values


def _gpt_oss(keys: _Keys) -> dict[str, Any]:
    values = _decoder(keys, bias=True)
    layers = values["num_layers"]
    # Hugging Face's default: sliding on even layers (0, 2, ...), full on odd ones
    default = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)]
    every = _global_every(keys, "layer_types", keys.items("layer_types") or default,
                          "sliding_attention", layers)
    experts_per_token = keys.integer("num_experts_per_tok", None)
    if experts_per_token is None:
        experts_per_token = keys.integer("experts_per_token")
    values.update(
        attention_sinks=True, mlp_bias=True,
        sliding_window=keys.integer("sliding_window", 128) if every != 1 else 0,
        global_attention_every=0 if every == 1 else every,
        moe=MoeConfig(num_experts=keys.integer("num_local_experts"),
                      experts_per_token=experts_per_token,
                      expert_intermediate_size=values["intermediate_size"], router_bias=True))
    return values


def _llama4(keys: _Keys) -> dict[str, Any]:
    values = _decoder(keys)
    layers, step = values["num_layers"], keys.integer("interleave_moe_layer_step", 1)
    moe_layers = keys.items("moe_layers")
    if moe_layers is not None and moe_layers != list(range(step - 1, layers, step)):
        raise ModelConfigError(f"{keys.name('moe_layers')}: {moe_layers!r} is not every "
                               f"{step}-th layer (interleave_moe_layer_step)")
    chunk = keys.integer("attention_chunk_size", 0)
    types = keys.items("layer_types")
    if types is None:
        # no_rope_layers[i] is 1 where layer i uses RoPE and chunked attention
        rope = keys.items("no_rope_layers")
        interval = keys.integer("no_rope_layer_interval", 4)
        if not rope:
            rope = [int((i + 1) % interval != 0) for i in range(layers)]
        key, types = "no_rope_layers", ["chunked" if used else "full" for used in rope]
    else:
        key, types = "layer_types", ["chunked" if t == "chunked_attention" else t for t in types]
    every = _global_every(keys, key, types, "chunked", layers) if chunk else 1
    expert_width = values["intermediate_size"]
    values.update(
        intermediate_size=keys.integer("intermediate_size_mlp"),
        attention_chunk_size=0 if every == 1 else chunk,
        global_attention_every=0 if every == 1 else every,
        moe=MoeConfig(num_experts=keys.integer("num_local_experts"),
                      experts_per_token=keys.integer("num_experts_per_tok"),
                      expert_intermediate_size=expert_width, num_shared_experts=1,
                      shared_expert_intermediate_size=expert_width, layer_step=step,
                      router=RouterKind.SIGMOID))
    return values


def _deepseek_v3(keys: _Keys) -> dict[str, Any]:
    values = _decoder(keys)
    if values["attention_bias"]:
        raise ModelConfigError(f"{keys.name('attention_bias')}: biased MLA projections are "
                               "not modelled")
    if keys.integer("moe_layer_freq", 1) != 1:
        raise ModelConfigError(f"{keys.name('moe_layer_freq')}: only 1 (every layer after "
                               "first_k_dense_replace) is modelled")
    scoring = keys.text("scoring_func", "sigmoid")
    routers = {"sigmoid": RouterKind.SIGMOID, "softmax": RouterKind.SOFTMAX}
    if scoring not in routers:
        raise ModelConfigError(f"{keys.name('scoring_func')}: {scoring!r} is not sigmoid or "
                               "softmax")
    width, shared = keys.integer("moe_intermediate_size"), keys.integer("n_shared_experts", 0)
    values.update(
        attention_head_dim=0, attention_out_bias=False,  # head_dim there is the rope width
        mla=MlaConfig(q_lora_rank=keys.integer("q_lora_rank", 0),
                      kv_lora_rank=keys.integer("kv_lora_rank"),
                      qk_nope_head_dim=keys.integer("qk_nope_head_dim"),
                      qk_rope_head_dim=keys.integer("qk_rope_head_dim"),
                      v_head_dim=keys.integer("v_head_dim")),
        moe=MoeConfig(num_experts=keys.integer("n_routed_experts"),
                      experts_per_token=keys.integer("num_experts_per_tok"),
                      expert_intermediate_size=width, num_shared_experts=shared,
                      shared_expert_intermediate_size=width if shared else 0,
                      first_dense_layers=keys.integer("first_k_dense_replace", 0),
                      router=routers[scoring], expert_groups=keys.integer("n_group", 1),
                      expert_groups_per_token=keys.integer("topk_group", 1)))
    return values


def _global_every(keys: _Keys, key: str, types: list[Any], local: str, layers: int) -> int:
    """n such that every n-th layer is global and the rest `local` (0: all local, 1: none)."""
    if len(types) != layers:
        raise ModelConfigError(f"{keys.name(key)}: {len(types)} entries for {layers} layers")
    is_local = [t == local for t in types]
    if all(is_local):
        return 0
    every = is_local.index(False) + 1
    if is_local != [(i + 1) % every != 0 for i in range(layers)]:
        raise ModelConfigError(f"{keys.name(key)}: local and global layers do not alternate "
                               "as every n-th layer global")
    return every


def _gpt2(keys: _Keys) -> dict[str, Any]:
    def first(*names: str) -> Any:
        for name in names[:-1]:
            if keys.raw(name, None) is not None:
                return keys.integer(name)
        return keys.integer(names[-1])

    hidden, heads = first("hidden_size", "n_embd"), first("num_attention_heads", "n_head")
    return dict(
        family=ModelFamily.GPT2, vocab_size=keys.integer("vocab_size"), hidden_size=hidden,
        num_layers=first("num_hidden_layers", "n_layer"), num_heads=heads, num_kv_heads=heads,
        intermediate_size=keys.integer("n_inner", 4 * hidden),
        max_position_embeddings=first("max_position_embeddings", "n_positions"),
        norm_eps=keys.number("layer_norm_epsilon", 1e-5),
        activation=keys.activation("activation_function", "gelu_new"),
        tie_word_embeddings=keys.flag("tie_word_embeddings", True))


def _bert(keys: _Keys) -> dict[str, Any]:
    heads = keys.integer("num_attention_heads")
    return dict(
        family=ModelFamily.BERT, vocab_size=keys.integer("vocab_size"),
        hidden_size=keys.integer("hidden_size"), num_layers=keys.integer("num_hidden_layers"),
        num_heads=heads, num_kv_heads=heads, intermediate_size=keys.integer("intermediate_size"),
        max_position_embeddings=keys.integer("max_position_embeddings"),
        type_vocab_size=keys.integer("type_vocab_size", 2),
        norm_eps=keys.number("layer_norm_eps", 1e-12),
        activation=keys.activation("hidden_act", "gelu"))


_READERS: dict[str, Callable[[_Keys], dict[str, Any]]] = {
    "llama": _llama, "llama4": _llama4, "llama4_text": _llama4, "mistral": _mistral,
    "mixtral": _mixtral, "qwen2": _qwen2, "qwen3": _qwen3, "qwen3_moe": _qwen3_moe,
    "gpt_oss": _gpt_oss, "deepseek_v3": _deepseek_v3, "gpt2": _gpt2, "bert": _bert,
}
