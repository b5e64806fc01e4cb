"""`ModelConfig`: the one model-configuration type of the compiler and the planner (no torch).

Field names are ours, with the meaning of the Hugging Face config.json key named in each
comment, so a config.json maps onto them (`tessera.models.hf_config.from_hf_config`).
Parameter counts live in `tessera.models.params`; import everything from `tessera.models`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.models import params
from tessera.models.parts import (
    Activation,
    AttentionKind,
    LocalAttention,
    MlaConfig,
    ModelConfigError,
    ModelFamily,
    MoeConfig,
    check_bool,
    check_int,
)

# the fields only LLAMA-family decoders use, with the value every other family must keep
_DECODER_ONLY = {"qk_norm": False, "attention_bias": False, "attention_out_bias": False,
                 "attention_sinks": False, "mlp_bias": False, "sliding_window": 0,
                 "attention_chunk_size": 0, "global_attention_every": 0, "moe": None,
                 "mla": None}


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The sizes and choices that fix a model's shapes, numerics and parameter count.

    Invalid combinations raise `ModelConfigError` naming the field at construction (also
    through `dataclasses.replace`). Fields that one family does not use hold 0, False or
    None (`rope_theta` outside Llama, `type_vocab_size` outside BERT, the attention variants
    and `moe`/`mla` outside Llama-family decoders, whose GPT-2 and BERT blocks always have
    biases). `tessera.models.build_model` builds the subset its reference models implement
    (`check_buildable`); the planner reads every config.
    """

    family: ModelFamily
    vocab_size: int  # vocab_size: rows of the token embedding
    hidden_size: int  # hidden_size / n_embd: the residual stream width
    num_layers: int  # num_hidden_layers / n_layer
    num_heads: int  # num_attention_heads / n_head: query heads
    num_kv_heads: int  # num_key_value_heads: key/value heads (GQA); = num_heads for MHA
    intermediate_size: int  # intermediate_size / n_inner: the dense MLP's width
    max_position_embeddings: int  # max_position_embeddings / n_positions: longest sequence
    norm_eps: float  # rms_norm_eps / layer_norm_eps / layer_norm_epsilon
    activation: Activation  # hidden_act / activation_function
    rope_theta: float = 0.0  # rope_theta: RoPE base (Llama only)
    tie_word_embeddings: bool = False  # the LM head reuses the token embedding (decoders)
    type_vocab_size: int = 0  # type_vocab_size: token-type (segment) embeddings (BERT only)
    # head_dim: width of a query/key/value head; 0 means hidden_size // num_heads. With an
    # explicit width the heads need not tile hidden_size (Qwen3-32B, gpt-oss, Llama-4)
    attention_head_dim: int = 0
    qk_norm: bool = False  # a learned RMSNorm over each q and k head before RoPE (Qwen3)
    attention_bias: bool = False  # biases on q, k, v (Qwen2; attention_bias in Llama/gpt-oss)
    attention_out_bias: bool = False  # a bias on o_proj (attention_bias in Llama and gpt-oss)
    attention_sinks: bool = False  # sinks: one learned logit per head in the softmax (gpt-oss)
    mlp_bias: bool = False  # mlp_bias: biases on the MLP and expert projections (gpt-oss)
    sliding_window: int = 0  # sliding_window: local layers see the last N keys (0: none)
    attention_chunk_size: int = 0  # attention_chunk_size: local layers see their N-block
    # every n-th layer (layers n-1, 2n-1, ...) attends globally, the others locally; 0 makes
    # every layer local. gpt-oss: 2 (sliding first), Llama-4: 4 (its NoPE layers)
    global_attention_every: int = 0
    moe: MoeConfig | None = None  # mixture-of-experts MLPs (None: dense)
    mla: MlaConfig | None = None  # multi-head latent attention (None: MHA/GQA)

    def __post_init__(self) -> None:
        if not isinstance(self.family, ModelFamily):
            raise ModelConfigError(f"family: {self.family!r} is not a ModelFamily")
        if not isinstance(self.activation, Activation):
            raise ModelConfigError(f"activation: {self.activation!r} is not an Activation")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                     "intermediate_size", "max_position_embeddings"):
            check_int(name, getattr(self, name), 1)
        for name in ("type_vocab_size", "attention_head_dim", "sliding_window",
                     "attention_chunk_size", "global_attention_every"):
            check_int(name, getattr(self, name), 0)
        for name in ("tie_word_embeddings", "qk_norm", "attention_bias", "attention_out_bias",
                     "attention_sinks", "mlp_bias"):
            check_bool(name, getattr(self, name))
        if not (isinstance(self.norm_eps, int | float) and math.isfinite(self.norm_eps)
                and self.norm_eps > 0):
            raise ModelConfigError(f"norm_eps: {self.norm_eps!r} is not a positive number")
        if self.moe is not None and not isinstance(self.moe, MoeConfig):
            raise ModelConfigError(f"moe: {self.moe!r} is not a MoeConfig")
        if self.mla is not None and not isinstance(self.mla, MlaConfig):
            raise ModelConfigError(f"mla: {self.mla!r} is not an MlaConfig")
        self._check_heads()
        self._check_local_attention()
        self._check_moe()
        self._check_family()

    def _check_heads(self) -> None:
        if self.mla is not None and self.attention_head_dim:
            raise ModelConfigError(f"attention_head_dim: {self.attention_head_dim} must be 0 "
                                   "with mla (its head widths are in mla)")
        if self.mla is not None:
            for name in ("qk_norm", "attention_bias", "attention_out_bias"):
                if getattr(self, name):
                    # DeepSeek's MLA has none of these; their shapes would be guesses
                    raise ModelConfigError(f"{name}: not modelled with mla")
        if self.mla is None and not self.attention_head_dim and \
                self.hidden_size % self.num_heads:
            raise ModelConfigError(f"hidden_size: {self.hidden_size} is not divisible by "
                                   f"num_heads {self.num_heads} (or set attention_head_dim)")
        if self.num_heads % self.num_kv_heads:
            raise ModelConfigError(f"num_kv_heads: {self.num_kv_heads} does not divide "
                                   f"num_heads {self.num_heads}")

    def _check_local_attention(self) -> None:
        if self.sliding_window and self.attention_chunk_size:
            raise ModelConfigError(f"attention_chunk_size: {self.attention_chunk_size} with "
                                   f"sliding_window {self.sliding_window} (one at most)")
        if self.global_attention_every and self.local_attention is LocalAttention.NONE:
            raise ModelConfigError(f"global_attention_every: {self.global_attention_every} "
                                   "without sliding_window or attention_chunk_size")
        if self.global_attention_every == 1:
            raise ModelConfigError("global_attention_every: 1 makes every layer global; set "
                                   "the window to 0 instead")

    def _check_moe(self) -> None:
        if self.moe is None:
            return
        if not any(self.is_moe_layer(layer) for layer in range(self.num_layers)):
            raise ModelConfigError(
                f"moe: no MoE layer among {self.num_layers} (first_dense_layers "
                f"{self.moe.first_dense_layers}, layer_step {self.moe.layer_step})")

    def _check_family(self) -> None:
        """The rules that depend on the block structure."""
        if self.family is ModelFamily.LLAMA:
            if not (isinstance(self.rope_theta, int | float) and math.isfinite(self.rope_theta)
                    and self.rope_theta > 0):
                raise ModelConfigError(f"rope_theta: {self.rope_theta!r} must be positive "
                                       "for Llama")
            if self.mla is None and self.head_dim % 2:
                # rotate-half RoPE pairs the two halves of each head
                field = "attention_head_dim" if self.attention_head_dim else "hidden_size"
                raise ModelConfigError(f"{field}: head_dim {self.head_dim} must be even "
                                       "for RoPE")
            if self.activation is not Activation.SILU:
                raise ModelConfigError(f"activation: {self.activation.value} is not silu; "
                                       "the Llama MLP is SwiGLU")
            if self.type_vocab_size != 0:
                raise ModelConfigError(f"type_vocab_size: {self.type_vocab_size} must be 0 "
                                       "for llama")
            return
        family = self.family.value
        for name, default in _DECODER_ONLY.items():
            if getattr(self, name) != default:
                raise ModelConfigError(f"{name}: {getattr(self, name)!r} is not for {family} "
                                       "(Llama-family decoders only)")
        if self.rope_theta != 0:
            raise ModelConfigError(f"rope_theta: {self.rope_theta!r} must be 0 for {family} "
                                   "(learned positions)")
        if self.num_kv_heads != self.num_heads:
            raise ModelConfigError(f"num_kv_heads: {self.num_kv_heads} must equal num_heads "
                                   f"{self.num_heads} for {family} (no GQA)")
        if self.activation is Activation.SILU:
            raise ModelConfigError(f"activation: silu is not a {family} activation (gelu or "
                                   "gelu_tanh)")
        if self.family is ModelFamily.BERT:
            if self.type_vocab_size == 0:
                raise ModelConfigError("type_vocab_size: must be positive for bert")
            if self.tie_word_embeddings:
                raise ModelConfigError("tie_word_embeddings: bert has no LM head to tie")
        elif self.type_vocab_size != 0:
            raise ModelConfigError(f"type_vocab_size: {self.type_vocab_size} must be 0 for "
                                   f"{family}")

    @property
    def head_dim(self) -> int:
        """Width of one query/key head: `attention_head_dim` if set, the unrotated plus
        rotated widths under MLA, else hidden_size // num_heads."""
        if self.mla is not None:
            return self.mla.qk_head_dim
        return self.attention_head_dim or self.hidden_size // self.num_heads

    @property
    def value_head_dim(self) -> int:
        """Width of one value head (MLA's v_head_dim, else `head_dim`)."""
        return self.mla.v_head_dim if self.mla is not None else self.head_dim

    @property
    def attention_kind(self) -> AttentionKind:
        """MLA with `mla`, GQA with fewer key/value heads than query heads, else MHA."""
        if self.mla is not None:
            return AttentionKind.MLA
        return AttentionKind.GQA if self.num_kv_heads < self.num_heads else AttentionKind.MHA

    @property
    def local_attention(self) -> LocalAttention:
        """What the local layers attend to (see `global_attention_every`)."""
        if self.sliding_window:
            return LocalAttention.SLIDING
        return LocalAttention.CHUNKED if self.attention_chunk_size else LocalAttention.NONE

    def is_global_layer(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) attends to the whole sequence."""
        self._check_layer(layer)
        if self.local_attention is LocalAttention.NONE:
            return True
        every = self.global_attention_every
        return every > 0 and (layer + 1) % every == 0

    def attention_span(self, layer: int, seq_len: int) -> int:
        """The most keys one query attends to in layer `layer` for a `seq_len` sequence.

        seq_len under full attention (causal: the last query's count); under a sliding
        window min(seq_len, sliding_window); under chunked attention min(seq_len,
        attention_chunk_size), the bound reached by a chunk's last query.
        """
        if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
            raise ValueError(f"seq_len: {seq_len!r} is not a positive integer")
        if self.is_global_layer(layer):
            return seq_len
        return min(seq_len, self.sliding_window or self.attention_chunk_size)

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) has a MoE MLP (rule in `MoeConfig`)."""
        self._check_layer(layer)
        moe = self.moe
        return moe is not None and layer >= moe.first_dense_layers and \
            (layer + 1) % moe.layer_step == 0

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or isinstance(layer, bool) or \
                not 0 <= layer < self.num_layers:
            raise ValueError(f"layer: {layer!r} is not in 0..{self.num_layers - 1}")

    def num_parameters(self) -> int:
        """All parameters (tied weights once; DeepSeek's multi-token-prediction heads and
        non-trained buffers are not parameters). Exact for `build_model`'s models."""
        return params.total(self)

    def num_active_parameters(self, *, embedding: bool = True) -> int:
        """Parameters one token uses: as `num_parameters` but with `experts_per_token` routed
        experts per MoE layer instead of all. `embedding=False` leaves out the embedding
        tables (a lookup reads one row), keeping the LM head, tied or not; gpt-oss publishes
        its active count that way, Mixtral, Qwen3, Llama-4 and DeepSeek-V3 with embeddings."""
        return params.active(self, embedding=embedding)

    def layer_parameters(self, layer: int) -> int:
        """Parameters of decoder/encoder layer `layer` (0-based): attention, MLP or MoE
        (router, routed and shared experts), norms."""
        self._check_layer(layer)
        return params.layer(self, layer)

    def layer_expert_parameters(self, layer: int) -> int:
        """The routed experts' part of `layer_parameters(layer)` (what expert parallelism
        splits); 0 in a dense layer."""
        self._check_layer(layer)
        return params.routed_experts(self, layer)

    def embedding_parameters(self) -> int:
        """Parameters before the first layer: the token embedding (and with it a tied LM
        head), learned position and token-type embeddings, BERT's embedding LayerNorm."""
        return params.embeddings(self)

    def head_parameters(self) -> int:
        """Parameters after the last layer: the final norm, an untied LM head, BERT's pooler."""
        return params.head(self)


# fields the reference Llama (tessera.models.llama) does not implement, with their default
_NOT_IN_REFERENCE_LLAMA = {"moe": None, "mla": None, "sliding_window": 0,
                           "attention_chunk_size": 0, "attention_sinks": False}


def check_buildable(config: ModelConfig) -> None:
    """Raise `ModelConfigError` naming the first field of `config` that the reference PyTorch
    models of `build_model` do not implement (MoE, MLA, local attention, sinks; a GPT-2 or
    BERT head width other than hidden_size // num_heads). Such configs still count
    parameters and plan; they only have no torch model here."""
    if config.family is ModelFamily.LLAMA:
        for name, default in _NOT_IN_REFERENCE_LLAMA.items():
            if getattr(config, name) != default:
                raise ModelConfigError(f"{name}: {getattr(config, name)!r} is not built by the "
                                       "reference Llama model (tessera.models.llama)")
    elif config.num_heads * config.head_dim != config.hidden_size:
        raise ModelConfigError(f"attention_head_dim: {config.attention_head_dim} is not built "
                               f"by the reference {config.family.value} model (heads must tile "
                               "hidden_size)")
