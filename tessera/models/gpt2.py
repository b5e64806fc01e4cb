"""A GPT-2-style decoder in one readable file (random weights; shapes in the comments).

Token + learned position embeddings; per layer LayerNorm -> causal attention (one fused
q/k/v projection, biases) -> residual; LayerNorm -> GELU MLP -> residual; a final LayerNorm
and the LM head (tied to the token embedding if the config says, as in GPT-2). Shapes:
B batch, S sequence, H hidden, nh heads, hd head width, I MLP width, V vocabulary.

Projections are nn.Linear ([out, in] weights); Hugging Face's GPT-2 stores them as Conv1D
([in, out]), so its checkpoints need a transpose to load here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tessera.models.config import (
    Activation,
    ModelConfig,
    ModelConfigError,
    ModelFamily,
    check_buildable,
)
from tessera.models.init import seeded_init


class Gpt2Attention(nn.Module):
    """Causal multi-head self-attention with a fused q/k/v projection."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        h = config.hidden_size
        self.c_attn = nn.Linear(h, 3 * h)  # q, k, v side by side
        self.c_proj = nn.Linear(h, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape  # [B, S, H]
        q, k, v = self.c_attn(x).split(h, dim=-1)  # each [B, S, H]
        q = q.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)  # [B, nh, S, hd]
        k = k.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, nh, S, hd]
        return self.c_proj(y.transpose(1, 2).reshape(b, s, h))  # [B, S, H]


class Gpt2Mlp(nn.Module):
    """c_proj(gelu(c_fc(x))), GELU exact or tanh-approximated per the config."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.hidden_size, config.intermediate_size)
        self.c_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.approximate = "tanh" if config.activation is Activation.GELU_TANH else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate))  # via [B, S, I]


class Gpt2Block(nn.Module):
    """One pre-LayerNorm decoder layer: x + attn(ln_1(x)), then + mlp(ln_2(.))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.attn = Gpt2Attention(config)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.mlp = Gpt2Mlp(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt2Model(nn.Module):
    """Token ids [B, S] (int64) -> logits [B, S, V]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.family is not ModelFamily.GPT2:
            raise ModelConfigError(f"family: {config.family.value} is not gpt2")
        check_buildable(config)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.h = nn.ModuleList(Gpt2Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight

    def init_weights(self, seed: int = 0) -> None:
        """Seeded weights, independent of torch's global RNG: N(0, 0.02) matrices and
        embeddings, zero biases, unit LayerNorm scales."""
        seeded_init(self, seed)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _, s = input_ids.shape  # [B, S]
        if s > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: {s} tokens exceed max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        positions = torch.arange(s, device=input_ids.device)  # [S]
        x = self.wte(input_ids) + self.wpe(positions)  # [B, S, H]
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # [B, S, V], in the model dtype
