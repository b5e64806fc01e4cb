"""A BERT-style encoder in one readable file (random weights; shapes in the comments).

Word + position + token-type embeddings, LayerNorm; per layer (post-LayerNorm, as in BERT)
x = LN(x + attn(x)), x = LN(x + mlp(x)) with bidirectional attention that skips padding;
returns the last hidden state. `pool` is BERT's pooler (tanh(dense(h[:, 0]))). Shapes:
B batch, S sequence, H hidden, nh heads, hd head width, I MLP width.
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


def additive_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S] of 1 (token) / 0 (padding) -> [B, 1, 1, S] to add to the attention scores.

    Padding keys get the dtype's most negative finite value, not -inf: a row whose keys are
    all padding then softmaxes to a uniform row instead of NaN.
    """
    keep = attention_mask[:, None, None, :].to(dtype)  # [B, 1, 1, S]
    return (1.0 - keep) * torch.finfo(dtype).min


class BertEmbeddings(nn.Module):
    """LayerNorm(word + position + token-type embeddings)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, h)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, h)
        self.layer_norm = nn.LayerNorm(h, eps=config.norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # [S]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))  # [B, S, H]
        return self.layer_norm(x)


class BertSelfAttention(nn.Module):
    """Bidirectional multi-head attention (q/k/v/o with biases) under an additive mask."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        h = config.hidden_size
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.output = nn.Linear(h, h)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, s, h = x.shape  # [B, S, H]
        q = self.query(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.key(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.value(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        # q, k, v [B, nh, S, hd]; mask [B, 1, 1, S] broadcasts over heads and queries
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.output(y.transpose(1, 2).reshape(b, s, h))  # [B, S, H]


class BertMlp(nn.Module):
    """output(gelu(intermediate(x))), GELU exact or tanh-approximated per the config."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.approximate = "tanh" if config.activation is Activation.GELU_TANH else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(F.gelu(self.intermediate(x), approximate=self.approximate))


class BertLayer(nn.Module):
    """One post-LayerNorm encoder layer: LN(x + attn(x)), then LN(. + mlp(.))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = BertSelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.mlp = BertMlp(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, mask))
        return self.output_norm(x + self.mlp(x))


class BertModel(nn.Module):
    """Token ids [B, S] (int64), optional attention_mask [B, S] of 1/0 and token_type_ids
    [B, S] -> last hidden state [B, S, H]. Outputs at padding positions are not meaningful."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.family is not ModelFamily.BERT:
            raise ModelConfigError(f"family: {config.family.value} is not bert")
        check_buildable(config)
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)

    def init_weights(self, seed: int = 0) -> None:
        """Seeded weights, independent of torch's global RNG: N(0, 0.02) matrices and
        embeddings, zero biases, unit LayerNorm scales."""
        seeded_init(self, seed)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        _, s = input_ids.shape  # [B, S]
        if s > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: {s} tokens exceed max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one segment
        x = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        mask = None if attention_mask is None else additive_padding_mask(attention_mask, x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's pooled output: tanh(dense(hidden[:, 0])), [B, S, H] -> [B, H]."""
        return torch.tanh(self.pooler(hidden[:, 0]))
