"""A Llama-style decoder in one readable file (random weights; shapes in the comments).

Per layer: RMSNorm -> attention (q/k/v/o, rotary positions, grouped-query heads, causal)
-> residual; RMSNorm -> SwiGLU MLP -> residual. Then a final RMSNorm and the LM head. Shapes:
B batch, S sequence, H hidden, nh query heads, nkv key/value heads, hd head width, I MLP
width, V vocabulary. The config may add biases (Qwen2's on q/k/v, Llama's `attention_bias`
and `mlp_bias`), a head width other than H / nh and Qwen3's per-head q/k RMSNorm; MoE, MLA
and local attention are refused (`tessera.models.check_buildable`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tessera.models.config import ModelConfig, ModelConfigError, ModelFamily, check_buildable
from tessera.models.init import seeded_init


def rope_tables(seq_len: int, head_dim: int, theta: float,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, each [S, hd], in float32.

    Position p and frequency j = 0..hd/2-1 turn by p * theta**(-2j/hd); both halves of a head
    use the same angles (rotate-half form).
    """
    inv_freq = inv_frequencies(head_dim, theta, device)  # [hd/2]
    positions = torch.arange(seq_len, dtype=torch.float32, device=device)  # [S]
    angles = torch.outer(positions, inv_freq)  # [S, hd/2]
    angles = torch.cat((angles, angles), dim=-1)  # [S, hd]
    return angles.cos(), angles.sin()


def inv_frequencies(head_dim: int, theta: float,
                    device: torch.device | None = None) -> torch.Tensor:
    """theta**(-2j/hd) for j = 0..hd/2-1, in float32 whatever the model dtype (bf16 angles at
    position ~1000 are off by whole turns)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim
    return 1.0 / (theta ** exponents)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's two halves."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each head of x [B, heads, S, hd] by its position's angles (cos, sin [S, hd])."""
    return x * cos + rotate_half(x) * sin


class LlamaAttention(nn.Module):
    """Causal self-attention with rotary positions and grouped-query key/value heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.head_dim = hd = config.head_dim
        h, bias = config.hidden_size, config.attention_bias
        self.q_proj = nn.Linear(h, config.num_heads * hd, bias=bias)
        self.k_proj = nn.Linear(h, config.num_kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(h, config.num_kv_heads * hd, bias=bias)
        self.o_proj = nn.Linear(config.num_heads * hd, h, bias=config.attention_out_bias)
        # Qwen3: one RMSNorm over each head's width, shared by all q (k) heads, before RoPE
        self.q_norm = nn.RMSNorm(hd, eps=config.norm_eps) if config.qk_norm else None
        self.k_norm = nn.RMSNorm(hd, eps=config.norm_eps) if config.qk_norm else None

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [B, nh, S, hd] and k, v [B, nkv, S, hd] of x [B, S, H], q and k rotated."""
        b, s, _ = x.shape
        # heads counted from the projection's width: under tensor parallelism each rank
        # holds only its share of them
        q = self.q_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """Causal attention (or attention under a boolean `mask`, True = attend) of q over
        k, v, then the output projection: [B, S, H]."""
        b, _, s, _ = q.shape
        # query head i reads key/value head i // (nh / nkv); SDPA repeats them itself, so
        # plain MHA (nkv == nh) exports without the GQA flag
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           enable_gqa=k.shape[1] != q.shape[1])
        return self.o_proj(y.transpose(1, 2).reshape(b, s, -1))  # [B, S, H]

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None,
                position: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                return_kv: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attention of x [B, S, H] -> [B, S, H], or ([B, S, H], (k, v)) with `return_kv`.

        Without `cache`: causal over x, and (k, v) are x's own [B, nkv, S, hd]. With a
        cache (k, v [B, nkv, T, hd]): x's keys and values are written at slot `position`
        ([S] int64) and x attends to the cache under `mask` (True = visible); (k, v) are the
        updated caches (`tessera.models.llama_cache`). Training returns the tensor alone:
        outputs that take no gradient would hide the module from backward hooks."""
        q, k, v = self.project(x, cos, sin)
        if cache is not None:
            k = cache[0].index_copy(2, position, k)  # [B, nkv, T, hd]
            v = cache[1].index_copy(2, position, v)
        y = self.attend(q, k, v, mask)
        return (y, (k, v)) if return_kv else y


class LlamaMlp(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        h, i, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = nn.Linear(h, i, bias=bias)
        self.up_proj = nn.Linear(h, i, bias=bias)
        self.down_proj = nn.Linear(i, h, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # [B, S, I] -> H


class LlamaBlock(nn.Module):
    """One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(.))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        # torch.nn.RMSNorm, not a hand-written one: it exports as one aten rms_norm
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.mlp = LlamaMlp(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None,
                position: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                return_kv: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The layer's output [B, S, H]; with `return_kv` also the attention's (k, v) (see
        LlamaAttention)."""
        y = self.self_attn(self.input_layernorm(x), cos, sin, cache, position, mask,
                           return_kv=return_kv)
        y, kv = y if return_kv else (y, None)
        x = x + y
        x = x + self.mlp(self.post_attention_layernorm(x))
        return (x, kv) if return_kv else x


class LlamaModel(nn.Module):
    """Token ids [B, S] (int64) -> logits [B, S, V]; the LM head is tied if the config says."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.family is not ModelFamily.LLAMA:
            raise ModelConfigError(f"family: {config.family.value} is not llama")
        check_buildable(config)
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaBlock(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def rope(self, x: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [S, hd] for positions 0..seq_len-1, in x's dtype."""
        cos, sin = rope_tables(seq_len, self.config.head_dim, self.config.rope_theta, x.device)
        if x.dtype != cos.dtype:
            # cast only when needed: a no-op .to() stays in exported graphs as an assert node
            cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return cos, sin

    def init_weights(self, seed: int = 0) -> None:
        """Seeded weights, independent of torch's global RNG: N(0, 0.02) matrices, unit norms."""
        seeded_init(self, seed)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _, s = input_ids.shape  # [B, S]
        if s > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: {s} tokens exceed max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        x = self.embed_tokens(input_ids)  # [B, S, H]
        cos, sin = self.rope(x, s)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))  # [B, S, V], in the model dtype
