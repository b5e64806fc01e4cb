"""Model configurations and readable reference PyTorch models (random weights).

    >>> from tessera.models import PRESETS, build_model
    >>> PRESETS["llama3-8b"].num_parameters()  # no torch needed for configs
    >>> model = build_model(PRESETS["tiny-llama"], seed=0)  # a torch.nn.Module

`config` (one `ModelConfig` type, presets with their sources, Hugging Face config.json
import) never imports torch, so the planner reads configs without it; `llama`, `gpt2` and
`bert` are the torch models, imported only when `build_model` needs one.
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
    ModelConfig,
    ModelConfigError,
    ModelFamily,
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
    "ModelConfig",
    "ModelConfigError",
    "ModelFamily",
    "build_model",
    "from_hf_config",
]


def build_model(config: ModelConfig, seed: int = 0, dtype: torch.dtype | None = None,
                meta: bool = False) -> torch.nn.Module:
    """The reference model of `config.family` with seeded random weights, in eval mode.

    `dtype` defaults to torch.float32 (None keeps this module importable without torch).
    The same config and seed give the same weights on every call. `meta=True` builds it on
    the meta device instead (shapes only, no weights: for symbolic compiles of big models).
    """
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
