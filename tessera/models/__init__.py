"""Model configurations and readable reference PyTorch models (random weights).

    >>> from tessera.models import PRESETS, build_model
    >>> PRESETS["llama3-8b"].num_parameters()  # no torch needed for configs
    >>> PRESETS["mixtral-8x7b"].num_active_parameters()  # the zoo: tessera.models.zoo
    >>> model = build_model(PRESETS["tiny-llama"], seed=0)  # a torch.nn.Module

`config` (one `ModelConfig` type with its MoE and MLA parts, presets with their sources,
Hugging Face config.json import) never imports torch, so the planner reads configs without
it; `llama`, `gpt2` and `bert` are the torch models, imported only when `build_model` needs
one. `build_model` refuses (`ModelConfigError`, see `check_buildable`) the configs those
models do not implement: MoE, MLA, sliding or chunked attention, attention sinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.models.config import (
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
    AttentionKind,
    LocalAttention,
    MlaConfig,
    ModelConfig,
    ModelConfigError,
    ModelFamily,
    MoeConfig,
    RouterKind,
    check_buildable,
    from_hf_config,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "BERT_BASE",
    "BERT_LARGE",
    "GPT2_SMALL",
    "LLAMA2_7B",
    "LLAMA3_8B",
    "PRESETS",
    "TINY_BERT",
    "TINY_GPT2",
    "TINY_LLAMA",
    "Activation",
    "AttentionKind",
    "LocalAttention",
    "MlaConfig",
    "ModelConfig",
    "ModelConfigError",
    "ModelFamily",
    "MoeConfig",
    "RouterKind",
    "build_model",
    "check_buildable",
    "from_hf_config",
]


def build_model(config: ModelConfig, seed: int = 0, dtype: torch.dtype | None = None,
                meta: bool = False) -> torch.nn.Module:
    """The reference model of `config.family` with seeded random weights, in eval mode.

    `dtype` defaults to torch.float32 (None keeps this module importable without torch).
    The same config and seed give the same weights on every call. `meta=True` builds it on
    the meta device instead (shapes only, no weights: for symbolic compiles of big models).
    A config the reference models do not implement (MoE, MLA, local attention, sinks)
    raises `ModelConfigError` naming the field (`check_buildable`).
    """
    check_buildable(config)  # before importing torch: a refusal costs nothing
    # imported here, not at the top: importing tessera.models must not import torch
    if config.family is ModelFamily.LLAMA:
        from tessera.models.llama import LlamaModel as model_type
    elif config.family is ModelFamily.GPT2:
        from tessera.models.gpt2 import Gpt2Model as model_type
    else:
        from tessera.models.bert import BertModel as model_type
    if meta:
        import torch

        with torch.device("meta"):
            model = model_type(config)
    else:
        model = model_type(config)
        model.init_weights(seed)
    if dtype is not None:
        model.to(dtype)
    return model.eval()
