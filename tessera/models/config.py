"""One model-configuration type for the reference models and the planner (no torch here).

    >>> from tessera.models.config import LLAMA3_8B, from_hf_config
    >>> LLAMA3_8B.num_parameters()  # 8_030_261_248, exact for tessera.models.llama
    >>> cfg = from_hf_config("path/to/config.json")  # a Hugging Face config.json

Field names are ours, with the meaning of the Hugging Face field named in each comment, so a
config.json maps onto them one to one (`from_hf_config`). The planner reads these configs
without torch; `tessera.models.build_model` turns one into a PyTorch module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any


class ModelConfigError(ValueError):
    """A model configuration is invalid or a config.json cannot be read; the message names the
    field (or the config.json key) to change."""


class ModelFamily(Enum):
    """The architecture of a reference model (which file of tessera.models builds it)."""

    LLAMA = "llama"
    GPT2 = "gpt2"
    BERT = "bert"


class Activation(Enum):
    """The nonlinearity of the MLP (Hugging Face `hidden_act` / `activation_function`)."""

    SILU = "silu"
    GELU = "gelu"  # exact, erf form
    GELU_TANH = "gelu_tanh"  # tanh approximation ("gelu_new" in GPT-2's config)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The sizes and choices that fix a reference model's shapes and numerics.

    Invalid combinations raise `ModelConfigError` at construction (also through
    `dataclasses.replace`). Fields that one family does not use hold 0 (`rope_theta` outside
    Llama, `type_vocab_size` outside BERT).
    """

    family: ModelFamily
    vocab_size: int  # vocab_size: rows of the token embedding
    hidden_size: int  # hidden_size / n_embd: the residual stream width
    num_layers: int  # num_hidden_layers / n_layer
    num_heads: int  # num_attention_heads / n_head: query heads
    num_kv_heads: int  # num_key_value_heads: key/value heads (GQA); = num_heads for MHA
    intermediate_size: int  # intermediate_size / n_inner: MLP width
    max_position_embeddings: int  # max_position_embeddings / n_positions: longest sequence
    norm_eps: float  # rms_norm_eps / layer_norm_eps / layer_norm_epsilon
    activation: Activation  # hidden_act / activation_function
    rope_theta: float = 0.0  # rope_theta: RoPE base (Llama only)
    tie_word_embeddings: bool = False  # the LM head reuses the token embedding (decoders)
    type_vocab_size: int = 0  # type_vocab_size: token-type (segment) embeddings (BERT only)

    def __post_init__(self) -> None:
        if not isinstance(self.family, ModelFamily):
            raise ModelConfigError(f"family: {self.family!r} is not a ModelFamily")
        if not isinstance(self.activation, Activation):
            raise ModelConfigError(f"activation: {self.activation!r} is not an Activation")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                     "intermediate_size", "max_position_embeddings"):
            _check_positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_heads:
            raise ModelConfigError(f"hidden_size: {self.hidden_size} is not divisible by "
                                   f"num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ModelConfigError(f"num_kv_heads: {self.num_kv_heads} does not divide "
                                   f"num_heads {self.num_heads}")
        if not (isinstance(self.norm_eps, int | float) and math.isfinite(self.norm_eps)
                and self.norm_eps > 0):
            raise ModelConfigError(f"norm_eps: {self.norm_eps!r} is not a positive number")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ModelConfigError(f"tie_word_embeddings: {self.tie_word_embeddings!r} "
                                   "is not a bool")
        _check_non_negative_int("type_vocab_size", self.type_vocab_size)
        self._check_family()

    def _check_family(self) -> None:
        """The rules that depend on which reference model reads the config."""
        llama = self.family is ModelFamily.LLAMA
        if llama:
            if not (isinstance(self.rope_theta, int | float) and math.isfinite(self.rope_theta)
                    and self.rope_theta > 0):
                raise ModelConfigError(f"rope_theta: {self.rope_theta!r} must be positive "
                                       "for Llama")
            if self.head_dim % 2:
                # rotate-half RoPE pairs the two halves of each head
                raise ModelConfigError(f"hidden_size: head_dim {self.head_dim} must be even "
                                       "for RoPE")
            if self.activation is not Activation.SILU:
                raise ModelConfigError(f"activation: {self.activation.value} is not silu; "
                                       "the Llama MLP is SwiGLU")
        else:
            if self.rope_theta != 0:
                raise ModelConfigError(f"rope_theta: {self.rope_theta!r} must be 0 for "
                                       f"{self.family.value} (learned positions)")
            if self.num_kv_heads != self.num_heads:
                raise ModelConfigError(f"num_kv_heads: {self.num_kv_heads} must equal num_heads "
                                       f"{self.num_heads} for {self.family.value} (no GQA)")
            if self.activation is Activation.SILU:
                raise ModelConfigError(f"activation: silu is not a {self.family.value} "
                                       "activation (gelu or gelu_tanh)")
        if self.family is ModelFamily.BERT:
            if self.type_vocab_size == 0:
                raise ModelConfigError("type_vocab_size: must be positive for bert")
            if self.tie_word_embeddings:
                raise ModelConfigError("tie_word_embeddings: bert has no LM head to tie")
        elif self.type_vocab_size != 0:
            raise ModelConfigError(f"type_vocab_size: {self.type_vocab_size} must be 0 for "
                                   f"{self.family.value}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head (hidden_size // num_heads)."""
        return self.hidden_size // self.num_heads

    def num_parameters(self) -> int:
        """Parameters of the reference model built from this config (tied weights once)."""
        h, v, i = self.hidden_size, self.vocab_size, self.intermediate_size
        lm_head = 0 if self.tie_word_embeddings else v * h
        if self.family is ModelFamily.LLAMA:
            kv_width = self.num_kv_heads * self.head_dim
            attention = 2 * h * h + 2 * h * kv_width  # q, o and k, v; no biases
            mlp = 3 * h * i  # gate, up, down
            layer = attention + mlp + 2 * h  # two RMSNorm weights
            return v * h + self.num_layers * layer + h + lm_head
        attention = 4 * (h * h + h)  # q, k, v, o with biases (GPT-2 fuses q, k, v)
        mlp = 2 * h * i + i + h
        layer = attention + mlp + 2 * 2 * h  # two LayerNorms (weight and bias)
        positions = self.max_position_embeddings * h
        if self.family is ModelFamily.GPT2:
            return v * h + positions + self.num_layers * layer + 2 * h + lm_head
        embeddings = v * h + positions + self.type_vocab_size * h + 2 * h
        pooler = h * h + h
        return embeddings + self.num_layers * layer + pooler


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelConfigError(f"{name}: {value!r} is not a positive integer")


def _check_non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ModelConfigError(f"{name}: {value!r} is not a non-negative integer")


# source: https://huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
LLAMA3_8B = ModelConfig(
    family=ModelFamily.LLAMA, vocab_size=128256, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=8, intermediate_size=14336, max_position_embeddings=8192, norm_eps=1e-5,
    activation=Activation.SILU, rope_theta=500000.0, tie_word_embeddings=False)
# source: https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
LLAMA2_7B = ModelConfig(
    family=ModelFamily.LLAMA, vocab_size=32000, hidden_size=4096, num_layers=32, num_heads=32,
    num_kv_heads=32, intermediate_size=11008, max_position_embeddings=4096, norm_eps=1e-5,
    activation=Activation.SILU, rope_theta=10000.0, tie_word_embeddings=False)
# source: https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
BERT_BASE = ModelConfig(
    family=ModelFamily.BERT, vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
    num_kv_heads=12, intermediate_size=3072, max_position_embeddings=512, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)
# source: https://huggingface.co/google-bert/bert-large-uncased/blob/main/config.json
BERT_LARGE = ModelConfig(
    family=ModelFamily.BERT, vocab_size=30522, hidden_size=1024, num_layers=24, num_heads=16,
    num_kv_heads=16, intermediate_size=4096, max_position_embeddings=512, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)
# source: https://huggingface.co/openai-community/gpt2/blob/main/config.json
# (n_inner is null there: 4 * n_embd; activation_function "gelu_new" is the tanh form)
GPT2_SMALL = ModelConfig(
    family=ModelFamily.GPT2, vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
    num_kv_heads=12, intermediate_size=3072, max_position_embeddings=1024, norm_eps=1e-5,
    activation=Activation.GELU_TANH, tie_word_embeddings=True)

# source: none; tiny shapes for tests (milliseconds on a CPU), GQA kept in the Llama one
TINY_LLAMA = ModelConfig(
    family=ModelFamily.LLAMA, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
    num_kv_heads=2, intermediate_size=128, max_position_embeddings=128, norm_eps=1e-5,
    activation=Activation.SILU, rope_theta=10000.0)
TINY_GPT2 = ModelConfig(
    family=ModelFamily.GPT2, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
    num_kv_heads=4, intermediate_size=256, max_position_embeddings=128, norm_eps=1e-5,
    activation=Activation.GELU_TANH, tie_word_embeddings=True)
TINY_BERT = ModelConfig(
    family=ModelFamily.BERT, vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
    num_kv_heads=4, intermediate_size=256, max_position_embeddings=128, norm_eps=1e-12,
    activation=Activation.GELU, type_vocab_size=2)

PRESETS: dict[str, ModelConfig] = {
    "llama3-8b": LLAMA3_8B,
    "llama2-7b": LLAMA2_7B,
    "bert-base": BERT_BASE,
    "bert-large": BERT_LARGE,
    "gpt2": GPT2_SMALL,
    "tiny-llama": TINY_LLAMA,
    "tiny-gpt2": TINY_GPT2,
    "tiny-bert": TINY_BERT,
}

_MISSING = object()
_ACTIVATIONS = {"silu": Activation.SILU, "swish": Activation.SILU, "gelu": Activation.GELU,
                "gelu_new": Activation.GELU_TANH, "gelu_pytorch_tanh": Activation.GELU_TANH}
# config.json key(s) of each field, first match wins, and Hugging Face's default where the
# file may leave the key out (a key without a default is required)
_LLAMA_KEYS: dict[str, tuple[tuple[str, ...], object]] = {
    "vocab_size": (("vocab_size",), _MISSING),
    "hidden_size": (("hidden_size",), _MISSING),
    "num_layers": (("num_hidden_layers",), _MISSING),
    "num_heads": (("num_attention_heads",), _MISSING),
    "num_kv_heads": (("num_key_value_heads",), None),  # None: as many as query heads
    "intermediate_size": (("intermediate_size",), _MISSING),
    "max_position_embeddings": (("max_position_embeddings",), _MISSING),
    "norm_eps": (("rms_norm_eps",), 1e-6),
    "activation": (("hidden_act",), "silu"),
    "rope_theta": (("rope_theta",), None),  # None: rope_parameters, else 10000.0
    "tie_word_embeddings": (("tie_word_embeddings",), False),
}
_GPT2_KEYS: dict[str, tuple[tuple[str, ...], object]] = {
    "vocab_size": (("vocab_size",), _MISSING),
    "hidden_size": (("n_embd", "hidden_size"), _MISSING),
    "num_layers": (("n_layer", "num_hidden_layers"), _MISSING),
    "num_heads": (("n_head", "num_attention_heads"), _MISSING),
    "intermediate_size": (("n_inner",), None),  # None: 4 * n_embd
    "max_position_embeddings": (("n_positions", "max_position_embeddings"), _MISSING),
    "norm_eps": (("layer_norm_epsilon",), 1e-5),
    "activation": (("activation_function",), "gelu_new"),
    "tie_word_embeddings": (("tie_word_embeddings",), True),
}
_BERT_KEYS: dict[str, tuple[tuple[str, ...], object]] = {
    "vocab_size": (("vocab_size",), _MISSING),
    "hidden_size": (("hidden_size",), _MISSING),
    "num_layers": (("num_hidden_layers",), _MISSING),
    "num_heads": (("num_attention_heads",), _MISSING),
    "intermediate_size": (("intermediate_size",), _MISSING),
    "max_position_embeddings": (("max_position_embeddings",), _MISSING),
    "type_vocab_size": (("type_vocab_size",), 2),
    "norm_eps": (("layer_norm_eps",), 1e-12),
    "activation": (("hidden_act",), "gelu"),
}
_KEYS = {"llama": (ModelFamily.LLAMA, _LLAMA_KEYS), "gpt2": (ModelFamily.GPT2, _GPT2_KEYS),
         "bert": (ModelFamily.BERT, _BERT_KEYS)}


def from_hf_config(config: Mapping[str, Any] | str | Path) -> ModelConfig:
    """A `ModelConfig` from a Hugging Face config.json (its parsed dict, or its path).

    Reads model_type "llama", "gpt2" and "bert". Keys a config.json may omit take Hugging
    Face's defaults; a missing required key, an unknown model_type or activation, or a feature
    the reference models lack (biased Llama projections, a head_dim other than
    hidden_size // num_heads) raises `ModelConfigError` naming the key. `rope_scaling` is
    not modelled: it changes no shape or parameter count.
    """
    if isinstance(config, str | Path):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelConfigError(f"config: cannot read {config}: {err}") from err
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"config: expected a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type", _MISSING)
    if model_type is _MISSING:
        raise ModelConfigError("model_type: missing from the config")
    if model_type not in _KEYS:
        raise ModelConfigError(f"model_type: {model_type!r} is not one of {', '.join(_KEYS)}")
    family, keys = _KEYS[model_type]
    values = {name: _lookup(config, names, default) for name, (names, default) in keys.items()}
    act = values["activation"]
    if act not in _ACTIVATIONS:
        raise ModelConfigError(f"{keys['activation'][0][0]}: {act!r} is not one of "
                               f"{', '.join(_ACTIVATIONS)}")
    values["activation"] = _ACTIVATIONS[act]
    if family is ModelFamily.LLAMA:
        _llama_extras(config, values)
    else:
        values["num_kv_heads"] = values["num_heads"]
    if family is ModelFamily.GPT2 and values["intermediate_size"] is None:
        values["intermediate_size"] = 4 * values["hidden_size"]
    names = {f.name for f in fields(ModelConfig)}
    return ModelConfig(family=family, **{k: v for k, v in values.items() if k in names})


def _lookup(config: Mapping[str, Any], names: tuple[str, ...], default: object) -> object:
    for name in names:
        if name in config:
            return config[name]
    if default is _MISSING:
        raise ModelConfigError(f"{names[0]}: missing from the config")
    return default


def _llama_extras(config: Mapping[str, Any], values: dict[str, object]) -> None:
    """Fill Llama's defaulted fields and refuse what the reference model cannot build."""
    if values["num_kv_heads"] is None:
        values["num_kv_heads"] = values["num_heads"]
    if values["rope_theta"] is None:
        # newer config.json files nest the base in rope_parameters
        nested = config.get("rope_parameters") or {}
        values["rope_theta"] = nested.get("rope_theta", 10000.0)
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            raise ModelConfigError(f"{key}: biased projections are not in the Llama model")
    head_dim = config.get("head_dim")
    hidden, heads = values["hidden_size"], values["num_heads"]
    if (head_dim is not None and isinstance(hidden, int) and isinstance(heads, int) and heads
            and head_dim != hidden // heads):
        raise ModelConfigError(f"head_dim: {head_dim} is not hidden_size // "
                               f"num_attention_heads ({hidden // heads})")
