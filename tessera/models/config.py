"""Model configurations, one import away (no torch here).

    >>> from tessera.models.config import LLAMA3_8B, PRESETS, from_hf_config
    >>> LLAMA3_8B.num_parameters()  # 8_030_261_248, exact for tessera.models.llama
    >>> PRESETS["deepseek-v3"].num_active_parameters()  # MoE: experts_per_token experts
    >>> cfg = from_hf_config("path/to/config.json")  # a Hugging Face config.json

The type is `ModelConfig` (`model_config`), made of the parts in `parts` (its error, enums,
`MoeConfig`, `MlaConfig`); parameter counts are in `params`, the presets with their sources
in `zoo`, the config.json reader in `hf_config`. This module gathers them under the name
the rest of Tessera imports; the planner reads these configs without torch, and
`tessera.models.build_model` turns one into a PyTorch module.
"""

from __future__ import annotations

from tessera.models.hf_config import from_hf_config
from tessera.models.model_config import ModelConfig, check_buildable
from tessera.models.parts import (
    Activation,
    AttentionKind,
    LocalAttention,
    MlaConfig,
    ModelConfigError,
    ModelFamily,
    MoeConfig,
    RouterKind,
)
from tessera.models.zoo import (
    BERT_BASE,
    BERT_LARGE,
    GPT2_SMALL,
    LLAMA2_7B,
    LLAMA3_8B,
    PRESETS,
    TINY_BERT,
    TINY_GPT2,
    TINY_LLAMA,
)

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
    "check_buildable",
    "from_hf_config",
]
