"""Seeded random weights for the reference models, independent of torch's global RNG."""

from __future__ import annotations

import torch
from torch import nn

INIT_STD = 0.02  # std of every weight matrix and embedding at init (GPT-2/Llama practice)


@torch.no_grad()
def seeded_init(model: nn.Module, seed: int) -> None:
    """N(0, INIT_STD) matrices and embeddings, zero biases, unit norm scales (LayerNorm and
    RMSNorm), drawn in parameter order from a generator seeded with `seed`; a tied weight
    is drawn once."""
    generator = torch.Generator().manual_seed(seed)
    norm_weights = {id(m.weight) for m in model.modules()
                    if isinstance(m, nn.LayerNorm | nn.RMSNorm) and m.weight is not None}
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif id(param) in norm_weights:
            param.fill_(1.0)
        else:
            param.copy_(torch.randn(param.shape, generator=generator) * INIT_STD)
