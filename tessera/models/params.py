"""Parameter counts of a `ModelConfig`, whole and per layer (the methods of ModelConfig call these).

Counted as the Hugging Face implementation of each family holds them, so a count equals
`sum(p.numel() for p in model.parameters())` of that model: buffers (DeepSeek's router
score-correction bias) and DeepSeek-V3's multi-token-prediction layer are not counted,
weightless norms (Llama-4's q/k L2 norm) have nothing to count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.models.parts import ModelFamily

if TYPE_CHECKING:
    from tessera.models.model_config import ModelConfig


def total(config: ModelConfig) -> int:
    """All parameters: embeddings, every layer, the head."""
    layers = sum(layer(config, i) for i in range(config.num_layers))
    return embeddings(config) + layers + head(config)


def active(config: ModelConfig, *, embedding: bool) -> int:
    """Parameters one token uses (see `ModelConfig.num_active_parameters`)."""
    unused = 0
    if config.moe is not None:
        idle_experts = config.moe.num_experts - config.moe.experts_per_token
        one = config.moe.expert_parameters(config.hidden_size, config.mlp_bias)
        moe_layers = sum(config.is_moe_layer(i) for i in range(config.num_layers))
        unused = moe_layers * idle_experts * one
    lookups = 0
    if not embedding:
        lookups = embeddings(config)
        if config.tie_word_embeddings:
            # the tied table is also the LM head, a full matmul for every token
            lookups -= config.vocab_size * config.hidden_size
    return total(config) - unused - lookups


def embeddings(config: ModelConfig) -> int:
    """Token embedding (a tied LM head included), position and token-type embeddings."""
    h = config.hidden_size
    count = config.vocab_size * h
    if config.family is ModelFamily.LLAMA:
        return count  # rotary positions have no parameters
    count += config.max_position_embeddings * h
    if config.family is ModelFamily.BERT:
        count += config.type_vocab_size * h + 2 * h  # and the embedding LayerNorm
    return count


def head(config: ModelConfig) -> int:
    """Final norm and untied LM head (decoders), pooler (BERT: post-norm, no final norm)."""
    h = config.hidden_size
    if config.family is ModelFamily.BERT:
        return h * h + h
    lm_head = 0 if config.tie_word_embeddings else config.vocab_size * h
    norm = h if config.family is ModelFamily.LLAMA else 2 * h  # RMSNorm / LayerNorm
    return norm + lm_head


def layer(config: ModelConfig, index: int) -> int:
    """One layer: attention, MLP (dense or MoE) and its two norms."""
    h = config.hidden_size
    if config.family is not ModelFamily.LLAMA:
        # GPT-2 and BERT: biased q, k, v, o and a biased GELU MLP, two LayerNorms
        width = config.num_heads * config.head_dim
        attention = 3 * (h * width + width) + width * h + h
        mlp = 2 * h * config.intermediate_size + config.intermediate_size + h
        return attention + mlp + 2 * 2 * h
    return _llama_attention(config) + _llama_mlp(config, index) + 2 * h  # two RMSNorms


def routed_experts(config: ModelConfig, index: int) -> int:
    """The routed experts' parameters in layer `index` (0 for a dense layer)."""
    if config.moe is None or not config.is_moe_layer(index):
        return 0
    return config.moe.num_experts * config.moe.expert_parameters(config.hidden_size,
                                                                 config.mlp_bias)


def _llama_attention(config: ModelConfig) -> int:
    h, heads = config.hidden_size, config.num_heads
    if config.mla is not None:
        count = config.mla.attention_parameters(h, heads)
    else:
        q_width = heads * config.head_dim
        kv_width = config.num_kv_heads * config.head_dim
        count = 2 * h * q_width + 2 * h * kv_width  # q, o and k, v
        if config.attention_bias:
            count += q_width + 2 * kv_width
        if config.qk_norm:
            count += 2 * config.head_dim  # one RMSNorm weight for q heads, one for k heads
    if config.attention_out_bias:
        count += h
    if config.attention_sinks:
        count += heads
    return count


def _llama_mlp(config: ModelConfig, index: int) -> int:
    h, moe = config.hidden_size, config.moe
    if moe is None or not config.is_moe_layer(index):
        i = config.intermediate_size
        return 3 * h * i + ((2 * i + h) if config.mlp_bias else 0)
    return (routed_experts(config, index) + moe.shared_parameters(h, config.mlp_bias)
            + moe.router_parameters(h))
