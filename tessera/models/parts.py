"""The parts a `ModelConfig` is made of: its error, its enums, and the MoE and MLA sub-configs.

Kept apart from `model_config` so that module stays small; import all of these from
`tessera.models` (or `tessera.models.config`). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ModelConfigError(ValueError):
    """A model configuration is invalid or a config.json cannot be read; the message names the
    field (or the config.json key) to change."""


class ModelFamily(Enum):
    """The block structure of a model (and which file of tessera.models builds it).

    LLAMA: pre-RMSNorm decoder with rotary positions and a gated (SwiGLU) MLP, which also
    covers Mistral, Mixtral, Qwen2/3, gpt-oss, DeepSeek-V3 and Llama-4. GPT2: pre-LayerNorm
    decoder with learned positions and a GELU MLP, biases everywhere (GPT-2, GPT-3, Megatron
    GPT). BERT: post-LayerNorm bidirectional encoder with token-type embeddings and a pooler.
    """

    LLAMA = "llama"
    GPT2 = "gpt2"
    BERT = "bert"


class Activation(Enum):
    """The nonlinearity of the MLP (Hugging Face `hidden_act` / `activation_function`)."""

    SILU = "silu"
    GELU = "gelu"  # exact, erf form
    GELU_TANH = "gelu_tanh"  # tanh approximation ("gelu_new" in GPT-2's config)


class AttentionKind(Enum):
    """How keys and values are stored per token (`ModelConfig.attention_kind`)."""

    MHA = "mha"  # one key/value head per query head
    GQA = "gqa"  # fewer key/value heads than query heads, shared by groups (MQA: one)
    MLA = "mla"  # DeepSeek's multi-head latent attention: one compressed latent per token


class LocalAttention(Enum):
    """Which keys a query of a local (non-global) layer sees (`ModelConfig.local_attention`)."""

    NONE = "none"  # every layer attends to the whole (causal) sequence
    SLIDING = "sliding"  # the last `sliding_window` positions, itself included (Mistral)
    CHUNKED = "chunked"  # its own block of `attention_chunk_size` positions (Llama-4)


class RouterKind(Enum):
    """How a MoE router turns its logits into the weights of the chosen experts."""

    SOFTMAX = "softmax"  # softmax over the top-k logits (Mixtral, Qwen3-MoE, gpt-oss)
    SIGMOID = "sigmoid"  # sigmoid per expert (Llama-4; DeepSeek-V3, which also groups)


def check_int(name: str, value: object, minimum: int) -> None:
    """`ModelConfigError` naming `name` unless `value` is an int (not a bool) >= minimum."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ModelConfigError(f"{name}: {value!r} is not {what}")


def check_bool(name: str, value: object) -> None:
    """`ModelConfigError` naming `name` unless `value` is a bool."""
    if not isinstance(value, bool):
        raise ModelConfigError(f"{name}: {value!r} is not a bool")


@dataclass(frozen=True, kw_only=True)
class MoeConfig:
    """The mixture-of-experts MLP of a decoder (`ModelConfig.moe`).

    Layer l (0-based) is a MoE layer when l >= `first_dense_layers` and (l + 1) is a
    multiple of `layer_step`: Llama-4's and Qwen3-MoE's rule (Maverick's step 2 makes layers
    1, 3, 5, ... MoE). Other layers are dense MLPs of `ModelConfig.intermediate_size`.
    Experts and shared experts are gated MLPs like the dense one; shared experts see every
    token. Invalid values raise `ModelConfigError` naming `moe.<field>`.
    """

    num_experts: int  # num_local_experts / num_experts / n_routed_experts
    experts_per_token: int  # num_experts_per_tok: routed experts each token goes to (top-k)
    expert_intermediate_size: int  # moe_intermediate_size (intermediate_size in Mixtral)
    num_shared_experts: int = 0  # n_shared_experts (DeepSeek); Llama-4 has one
    shared_expert_intermediate_size: int = 0  # MLP width of each shared expert
    first_dense_layers: int = 0  # first_k_dense_replace: leading layers with a dense MLP
    layer_step: int = 1  # interleave_moe_layer_step / decoder_sparse_step
    router: RouterKind = RouterKind.SOFTMAX
    router_bias: bool = False  # the router's linear layer has a bias (gpt-oss)
    expert_groups: int = 1  # n_group: experts split into groups, top groups first (DeepSeek)
    expert_groups_per_token: int = 1  # topk_group: groups a token's experts come from

    def __post_init__(self) -> None:
        for name in ("num_experts", "experts_per_token", "expert_intermediate_size",
                     "layer_step", "expert_groups", "expert_groups_per_token"):
            check_int(f"moe.{name}", getattr(self, name), 1)
        for name in ("num_shared_experts", "shared_expert_intermediate_size",
                     "first_dense_layers"):
            check_int(f"moe.{name}", getattr(self, name), 0)
        if not isinstance(self.router, RouterKind):
            raise ModelConfigError(f"moe.router: {self.router!r} is not a RouterKind")
        check_bool("moe.router_bias", self.router_bias)
        if self.experts_per_token > self.num_experts:
            raise ModelConfigError(f"moe.experts_per_token: {self.experts_per_token} exceeds "
                                   f"num_experts {self.num_experts}")
        if (self.num_shared_experts == 0) != (self.shared_expert_intermediate_size == 0):
            raise ModelConfigError(
                f"moe.shared_expert_intermediate_size: {self.shared_expert_intermediate_size} "
                f"with {self.num_shared_experts} shared experts (both 0 or both positive)")
        if self.num_experts % self.expert_groups:
            raise ModelConfigError(f"moe.expert_groups: {self.expert_groups} does not divide "
                                   f"num_experts {self.num_experts}")
        if self.expert_groups_per_token > self.expert_groups:
            raise ModelConfigError(f"moe.expert_groups_per_token: "
                                   f"{self.expert_groups_per_token} exceeds expert_groups "
                                   f"{self.expert_groups}")
        reachable = self.expert_groups_per_token * (self.num_experts // self.expert_groups)
        if self.experts_per_token > reachable:
            raise ModelConfigError(f"moe.experts_per_token: {self.experts_per_token} exceeds "
                                   f"the {reachable} experts of {self.expert_groups_per_token} "
                                   "groups")

    def expert_parameters(self, hidden_size: int, bias: bool) -> int:
        """Parameters of one routed expert: gate, up and down projections (and their biases)."""
        return _gated_mlp(hidden_size, self.expert_intermediate_size, bias)

    def shared_parameters(self, hidden_size: int, bias: bool) -> int:
        """Parameters of all shared experts together."""
        if self.num_shared_experts == 0:
            return 0
        return self.num_shared_experts * _gated_mlp(hidden_size,
                                                    self.shared_expert_intermediate_size, bias)

    def router_parameters(self, hidden_size: int) -> int:
        """Parameters of the router: one logit per expert from the hidden state."""
        return hidden_size * self.num_experts + (self.num_experts if self.router_bias else 0)


@dataclass(frozen=True, kw_only=True)
class MlaConfig:
    """DeepSeek's multi-head latent attention (`ModelConfig.mla`; DeepSeek-V2/V3).

    Queries go through a low-rank bottleneck of `q_lora_rank` (0: one full projection);
    keys and values are rebuilt per head from one `kv_lora_rank` latent per token, which
    with the `qk_rope_head_dim` rotary key (shared by all heads) is all a KV cache holds.
    A query/key head is `qk_nope_head_dim + qk_rope_head_dim` wide, a value head
    `v_head_dim`. Invalid values raise `ModelConfigError` naming `mla.<field>`.
    """

    q_lora_rank: int  # q_lora_rank (null in config.json: 0)
    kv_lora_rank: int  # kv_lora_rank
    qk_nope_head_dim: int  # qk_nope_head_dim: the part of a q/k head without rotation
    qk_rope_head_dim: int  # qk_rope_head_dim: the rotated part
    v_head_dim: int  # v_head_dim

    def __post_init__(self) -> None:
        check_int("mla.q_lora_rank", self.q_lora_rank, 0)
        check_int("mla.qk_nope_head_dim", self.qk_nope_head_dim, 0)
        for name in ("kv_lora_rank", "qk_rope_head_dim", "v_head_dim"):
            check_int(f"mla.{name}", getattr(self, name), 1)
        if self.qk_rope_head_dim % 2:
            # rotate-half RoPE pairs the two halves of the rotated part
            raise ModelConfigError(f"mla.qk_rope_head_dim: {self.qk_rope_head_dim} must be "
                                   "even for RoPE")

    @property
    def qk_head_dim(self) -> int:
        """Width of one query or key head (unrotated plus rotated part)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def attention_parameters(self, hidden_size: int, num_heads: int) -> int:
        """Parameters of one MLA attention block, its two latent RMSNorms included."""
        h, n = hidden_size, num_heads
        if self.q_lora_rank:
            # q_a_proj, q_a_layernorm, q_b_proj
            q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * n * self.qk_head_dim
        else:
            q = h * n * self.qk_head_dim
        # kv_a_proj_with_mqa (latent and the shared rotary key), kv_a_layernorm, kv_b_proj
        kv = (h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
              + self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim))
        return q + kv + n * self.v_head_dim * h  # o_proj


def _gated_mlp(hidden: int, width: int, bias: bool) -> int:
    """gate and up (hidden -> width) and down (width -> hidden), with optional biases."""
    return 3 * hidden * width + ((2 * width + hidden) if bias else 0)
