"""The ops of one transformer block on one device, as library kernel calls.

    >>> from tessera.plan.layers import Shard, block_ops
    >>> ops = block_ops(LLAMA3_8B, layer=1, shard=Shard(micro_batch=1, seq_len=8192, tp=8))

The list is the forward pass of the block as the graph compiler lowers the in-tree
reference model (tessera.models): the same library kernels at the same shapes (a test
checks FLOPs and HBM bytes against the compiler's graph), cut to one device by tensor,
sequence, context and expert parallelism as Megatron-style TP cuts them: attention heads
and MLP columns over `tp` (key/value heads replicated when tp exceeds them), the residual
stream's rows over `tp` with sequence parallelism, the sequence over `cp` (ring attention:
each rank's queries meet every key), experts over `ep` with balanced routing.

Each op also says what its backward needs saved (`saves`, tensors named so a tensor read by
several ops counts once), whether it carries a weight (`weight`, its local parameter count
in `params`), and whether selective recomputation recomputes it (`core`: the attention core
of unfused attention, as Megatron-LM and NxD's selective checkpointing recompute it
(Korthikanti et al. 2022, section 5); flash attention keeps no scores, so selective
recomputation leaves it as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.models.config import ModelConfig, ModelFamily
from tessera.plan.errors import PlanError
from tessera.plan.workload import AttentionImpl

Shapes = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Saved:
    """A tensor kept from forward to backward; `recomputable` ones are dropped and rebuilt
    under selective recomputation (the attention core's scores, probabilities, masks)."""

    name: str
    bytes: int
    recomputable: bool = False


@dataclass(frozen=True)
class BlockOp:
    """One op of a block on one device (`calls` launches of `kernel` at `shapes`)."""

    name: str
    kernel: str  # a library kernel (tessera.kernels) or "copy" (shapes: bytes)
    shapes: Shapes
    calls: int = 1
    weight: str = ""  # the weight a matmul multiplies by ("" for none): it gets dW
    params: int = 0  # local parameters of that weight (all calls together)
    saves: tuple[Saved, ...] = ()  # tensors its backward reads
    core: bool = False  # part of the attention core, recomputed under selective recompute
    fused: bool = False  # forward runs inside the previous op (its backward does not)
    lora_target: str = ""  # the LoRA target name of a weight matmul


@dataclass(frozen=True)
class Shard:
    """How one device's share of a block is cut."""

    micro_batch: int
    seq_len: int
    tp: int = 1
    sequence_parallel: bool = False
    cp: int = 1
    ep: int = 1
    itemsize: int = 2  # bytes per activation element (bf16)
    attention: AttentionImpl = AttentionImpl.FLASH
    dropout: bool = False  # dropout on attention probabilities and block outputs

    @property
    def seq_local(self) -> int:
        """Sequence positions this device holds (context parallelism splits them)."""
        return self.seq_len // self.cp

    @property
    def tokens(self) -> int:
        """Rows of the matmuls on this device."""
        return self.micro_batch * self.seq_local

    @property
    def norm_rows(self) -> int:
        """Rows of the norms and residual adds (sequence parallelism splits them)."""
        return self.tokens // self.tp if self.sequence_parallel else self.tokens


def _sh(**kw: int) -> Shapes:
    return tuple(kw.items())


def _mm(name: str, m: int, k: int, n: int, weight: str, saves: tuple[tuple[str, int], ...],
        calls: int = 1, lora: str = "") -> BlockOp:
    return BlockOp(name, "matmul", _sh(M=m, K=k, N=n), calls, weight, k * n * calls,
                   _saved(saves), lora_target=lora)


def _saved(saves: tuple[tuple[str, int], ...], recomputable: bool = False) -> tuple[Saved, ...]:
    return tuple(Saved(n, b, recomputable) for n, b in saves)


def local_heads(cfg: ModelConfig, tp: int) -> tuple[int, int]:
    """(query heads, key/value heads) on one device; KV heads are replicated when tp
    exceeds them (each device keeps the one its query heads read)."""
    if cfg.num_heads % tp:
        raise PlanError(f"--tp {tp} does not divide the {cfg.num_heads} attention heads")
    kv = cfg.num_kv_heads
    if tp > kv and tp % kv:
        raise PlanError(f"--tp {tp}: {kv} key/value heads cannot be replicated evenly")
    return cfg.num_heads // tp, max(1, kv // tp)


def block_ops(cfg: ModelConfig, layer: int, shard: Shard) -> tuple[BlockOp, ...]:
    """The forward ops of block `layer` on one device (see the module docstring)."""
    if cfg.family is ModelFamily.LLAMA:
        return _attention_llama(cfg, layer, shard) + _mlp_llama(cfg, layer, shard)
    return _gpt(cfg, layer, shard)


def _norm(kernel: str, name: str, rows: int, h: int, saved: str, isz: int) -> BlockOp:
    return BlockOp(name, kernel, _sh(rows=rows, cols=h), params=h,
                   saves=_saved(((saved, rows * h * isz),)))


def _attention_llama(cfg: ModelConfig, layer: int, s: Shard) -> tuple[BlockOp, ...]:
    h, isz, t = cfg.hidden_size, s.itemsize, s.tokens
    hq, hkv = local_heads(cfg, s.tp)
    d = cfg.head_dim
    first = layer == 0
    ops = [_norm("rmsnorm" if first else "add_rmsnorm", "attn_norm", s.norm_rows, h,
                 f"resid{layer}", isz)]
    # with sequence parallelism the saved input is the scattered one, gathered again in
    # backward (Korthikanti et al. 2022, section 4.2.2)
    x = (f"attn_in{layer}", s.norm_rows * h * isz)
    mla = getattr(cfg, "mla", None)
    if mla is not None:
        ops += _mla_projections(cfg, layer, s, hq, x)
        d_qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        d_v = mla.v_head_dim
    else:
        d_qk = d_v = d
        ops += [_mm("q_proj", t, h, hq * d, "q", (x,), lora="q"),
                _mm("k_proj", t, h, hkv * d, "k", (x,), lora="k"),
                _mm("v_proj", t, h, hkv * d, "v", (x,), lora="v")]
        if getattr(cfg, "qk_norm", False):
            ops += [_norm("rmsnorm", "q_norm", t * hq, d, f"q{layer}", isz),
                    _norm("rmsnorm", "k_norm", t * hkv, d, f"k{layer}", isz)]
        # the reference attention writes q, k, v as [B, S, heads, d] and permutes them to
        # [B, heads, S, d]: the compiler materialises each permute as a copy
        ops += [BlockOp("q_layout", "copy", _sh(bytes=2 * t * hq * d * isz)),
                BlockOp("k_layout", "copy", _sh(bytes=2 * t * hkv * d * isz)),
                BlockOp("v_layout", "copy", _sh(bytes=2 * t * hkv * d * isz)),
                BlockOp("q_rope", "rope", _sh(heads=hq, seq=s.seq_local, dim=d), s.micro_batch),
                BlockOp("k_rope", "rope", _sh(heads=hkv, seq=s.seq_local, dim=d),
                        s.micro_batch)]
    ops += attention_core(cfg, layer, s, hq, hkv, (d_qk + d_v) // 2)
    ops += [BlockOp("o_layout", "copy", _sh(bytes=2 * t * hq * d_v * isz)),
            _mm("o_proj", t, hq * d_v, h, "o", ((f"attn_out{layer}", t * hq * d_v * isz),),
                lora="o")]
    return tuple(ops)


def _qkv_saved(layer: int, s: Shard, hq: int, hkv: int, d: int) -> tuple[tuple[str, int], ...]:
    """What attention's backward reads of its inputs and output: q, k, v and the output
    (the same tensor the output projection keeps)."""
    t, isz = s.tokens, s.itemsize
    return ((f"q{layer}", t * hq * d * isz), (f"k{layer}", t * hkv * d * isz),
            (f"v{layer}", t * hkv * d * isz), (f"attn_out{layer}", t * hq * d * isz))


def _mla_projections(cfg: ModelConfig, layer: int, s: Shard, hq: int,
                     x: tuple[str, int]) -> list[BlockOp]:
    """DeepSeek-V3's multi-head latent attention: low-rank q and kv projections with their
    norms (the latent and the rope key are replicated over tp)."""
    mla = cfg.mla
    t, h, isz = s.tokens, cfg.hidden_size, s.itemsize
    d_qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    ops: list[BlockOp] = []
    if mla.q_lora_rank:
        r = mla.q_lora_rank
        ops += [_mm("q_a_proj", t, h, r, "q_a", (x,)),
                _norm("rmsnorm", "q_a_norm", t, r, f"q_a{layer}", isz),
                _mm("q_b_proj", t, r, hq * d_qk, "q", ((f"q_lat{layer}", t * r * isz),),
                    lora="q")]
    else:
        ops.append(_mm("q_proj", t, h, hq * d_qk, "q", (x,), lora="q"))
    kv_r = mla.kv_lora_rank
    ops += [_mm("kv_a_proj", t, h, kv_r + mla.qk_rope_head_dim, "kv_a", (x,)),
            _norm("rmsnorm", "kv_a_norm", t, kv_r, f"kv_a{layer}", isz),
            _mm("kv_b_proj", t, kv_r, hq * (mla.qk_nope_head_dim + mla.v_head_dim), "kv_b",
                ((f"kv_lat{layer}", t * kv_r * isz),), lora="k"),
            BlockOp("q_rope", "rope", _sh(heads=hq, seq=s.seq_local, dim=mla.qk_rope_head_dim),
                    s.micro_batch),
            BlockOp("k_rope", "rope", _sh(heads=1, seq=s.seq_local, dim=mla.qk_rope_head_dim),
                    s.micro_batch)]
    return ops


def attention_core(cfg: ModelConfig, layer: int, s: Shard, hq: int, hkv: int,
                   d: int) -> list[BlockOp]:
    """Scores, softmax and the weighted sum of values for one device's heads. A window or
    chunk shorter than the sequence runs as independent chunks of its length (the same
    FLOPs as a band of that width); context parallelism runs the local queries against every
    key block in turn (cp calls over the local length)."""
    span = cfg.attention_span(layer, s.seq_len) if hasattr(cfg, "attention_span") \
        else s.seq_len
    seq, calls = s.seq_local, s.micro_batch
    if span < s.seq_local:
        calls *= math.ceil(s.seq_local / span)
        seq = span
    elif s.cp > 1:
        calls *= s.cp
    isz = s.itemsize
    qkvo = _qkv_saved(layer, s, hq, hkv, d)
    if s.attention is AttentionImpl.FLASH:
        lse = (f"lse{layer}", hq * s.tokens * 4)  # the softmax statistics, fp32 per row
        return [BlockOp("attention", "flash_attention",
                        _sh(heads=hq, kv_heads=hkv, seq=seq, head_dim=d), calls,
                        saves=_saved((*qkvo, lse)))]
    # Megatron's unfused attention: scores and probabilities live in HBM; dropout keeps a
    # one-byte mask per score (Korthikanti et al. 2022, section 4.1)
    bh = hq * calls
    scores = bh * seq * seq
    ops = [BlockOp("scores", "batched_matmul", _sh(B=bh, M=seq, K=d, N=seq),
                   saves=_saved(qkvo[:3]), core=True),
           BlockOp("softmax", "softmax", _sh(rows=bh * seq, cols=seq), core=True,
                   saves=_saved(((f"probs{layer}", scores * isz),), True))]
    if s.dropout:
        ops.append(BlockOp("attn_dropout", "copy", _sh(bytes=2 * scores * isz + scores),
                           core=True, saves=_saved(((f"dropmask{layer}", scores),
                                                    (f"dropped{layer}", scores * isz)), True)))
    ops.append(BlockOp("context", "batched_matmul", _sh(B=bh, M=seq, K=seq, N=d), core=True))
    return ops


def _mlp_llama(cfg: ModelConfig, layer: int, s: Shard) -> tuple[BlockOp, ...]:
    h, isz, t = cfg.hidden_size, s.itemsize, s.tokens
    ops = [_norm("add_rmsnorm", "mlp_norm", s.norm_rows, h, f"mid{layer}", isz)]
    moe = getattr(cfg, "moe", None)
    if moe is not None and cfg.is_moe_layer(layer):
        return tuple(ops + _moe(cfg, layer, s))
    return tuple(ops + _swiglu_mlp("", cfg.intermediate_size, layer, s, t, 1, h))


def _swiglu_mlp(prefix: str, width: int, layer: int, s: Shard, rows: int, calls: int,
                h: int, lora: bool = True) -> list[BlockOp]:
    """gate and up projections, SwiGLU, down projection (columns over tp)."""
    if width % s.tp:
        raise PlanError(f"--tp {s.tp} does not divide the MLP width {width}")
    i, isz = width // s.tp, s.itemsize
    # the dense MLP keeps its (scattered, under SP) input; experts keep their routed rows
    kept = s.norm_rows if rows == s.tokens and calls == 1 else rows * calls
    x = (f"{prefix}mlp_in{layer}", kept * h * isz)
    act = (f"{prefix}act{layer}", rows * i * isz * calls)
    return [_mm(f"{prefix}gate_proj", rows, h, i, f"{prefix}gate", (x,), calls,
                "gate" if lora else ""),
            _mm(f"{prefix}up_proj", rows, h, i, f"{prefix}up", (x,), calls, "up" if lora else ""),
            BlockOp(f"{prefix}swiglu", "swiglu", _sh(rows=rows, cols=i), calls,
                    saves=_saved(((f"{prefix}gu{layer}", 2 * rows * i * isz * calls),))),
            _mm(f"{prefix}down_proj", rows, i, h, f"{prefix}down", (act,), calls,
                "down" if lora else "")]


def _moe(cfg: ModelConfig, layer: int, s: Shard) -> list[BlockOp]:
    """Router, token dispatch, the local experts' MLPs, combine, shared experts. Routing is
    balanced: each device's experts receive, in all, k tokens per local token."""
    moe, h, isz, t = cfg.moe, cfg.hidden_size, s.itemsize, s.tokens
    if moe.num_experts % s.ep:
        raise PlanError(f"--ep {s.ep} does not divide the {moe.num_experts} experts")
    local = moe.num_experts // s.ep
    routed = t * moe.experts_per_token  # token-expert pairs this device computes
    # experts that receive at least one of those pairs: all of them in training, but only a
    # few in a small decode batch (each touched expert's weights are read once)
    active = min(local, math.ceil(local * (1 - (1 - 1 / local) ** routed)))
    per_expert = max(1, math.ceil(routed / active))
    x = (f"mlp_in{layer}", s.norm_rows * h * isz)
    ops = [_mm("router", t, h, moe.num_experts, "router", (x,)),
           BlockOp("router_softmax", "softmax", _sh(rows=t, cols=moe.num_experts),
                   saves=_saved(((f"route{layer}", t * moe.num_experts * 4),))),
           # gather each token's rows into expert order, and back after the experts
           BlockOp("dispatch", "copy", _sh(bytes=2 * routed * h * isz)),
           BlockOp("combine", "copy", _sh(bytes=2 * routed * h * isz + t * h * isz))]
    ops += _swiglu_mlp("expert_", moe.expert_intermediate_size, layer, s, per_expert, active,
                       h, lora=False)
    if moe.num_shared_experts:
        width = moe.shared_expert_intermediate_size * moe.num_shared_experts
        ops += _swiglu_mlp("shared_", width, layer, s, t, 1, h)
    return ops


def _gpt(cfg: ModelConfig, layer: int, s: Shard) -> tuple[BlockOp, ...]:
    """GPT-2 / GPT-3 / Megatron GPT (and BERT's encoder, same ops): LayerNorm, fused qkv
    projection, attention, output projection, residual add, LayerNorm, GELU MLP (the
    activation fused into the first projection's epilogue), residual add."""
    h, isz, t = cfg.hidden_size, s.itemsize, s.tokens
    hq, _ = local_heads(cfg, s.tp)
    d = cfg.head_dim
    i = cfg.intermediate_size
    if i % s.tp:
        raise PlanError(f"--tp {s.tp} does not divide the MLP width {i}")
    i //= s.tp
    act_kernel = cfg.activation.value
    x1 = (f"ln1_out{layer}", s.norm_rows * h * isz)
    x2 = (f"ln2_out{layer}", s.norm_rows * h * isz)
    ops = [_norm("layernorm", "ln_1", s.norm_rows, h, f"resid{layer}", isz),
           _mm("qkv_proj", t, h, 3 * hq * d, "qkv", (x1,), lora="q"),
           BlockOp("q_layout", "copy", _sh(bytes=2 * t * hq * d * isz)),
           BlockOp("k_layout", "copy", _sh(bytes=2 * t * hq * d * isz)),
           BlockOp("v_layout", "copy", _sh(bytes=2 * t * hq * d * isz))]
    ops += attention_core(cfg, layer, s, hq, hq, d)
    ops += [BlockOp("o_layout", "copy", _sh(bytes=2 * t * hq * d * isz)),
            _mm("o_proj", t, hq * d, h, "o", ((f"attn_out{layer}", t * hq * d * isz),),
                lora="o"),
            _residual("attn_residual", layer, s, h),
            _norm("layernorm", "ln_2", s.norm_rows, h, f"mid{layer}", isz),
            _mm("fc_in", t, h, i, "up", (x2,), lora="up"),
            BlockOp("fc_act", act_kernel, _sh(rows=t, cols=i), fused=True,
                    saves=_saved(((f"fc_pre{layer}", t * i * isz),))),
            _mm("fc_out", t, i, h, "down", ((f"fc_post{layer}", t * i * isz),), lora="down"),
            _residual("mlp_residual", layer, s, h)]
    return tuple(ops)


def _residual(name: str, layer: int, s: Shard, h: int) -> BlockOp:
    """The residual add; with dropout, Megatron's fused bias-dropout-add, which also writes
    and keeps a one-byte mask."""
    if not s.dropout:
        return BlockOp(name, "residual_add", _sh(rows=s.norm_rows, cols=h))
    n = s.norm_rows * h
    return BlockOp(name, "copy", _sh(bytes=3 * n * s.itemsize + n),
                   saves=_saved(((f"{name}_mask{layer}", n),)))


def embedding_ops(cfg: ModelConfig, s: Shard) -> tuple[BlockOp, ...]:
    """Token embedding (vocabulary rows over tp) and, for GPT-style models, the learned
    positions and their add."""
    h, t = cfg.hidden_size, s.tokens
    vocab = math.ceil(cfg.vocab_size / s.tp)
    ops = [BlockOp("embed_tokens", "embedding", _sh(tokens=t, vocab=vocab, dim=h),
                   weight="embed", params=vocab * h)]
    if cfg.family is not ModelFamily.LLAMA:
        pos = cfg.max_position_embeddings
        ops += [BlockOp("embed_positions", "embedding", _sh(tokens=t, vocab=pos, dim=h),
                        weight="positions", params=pos * h),
                BlockOp("embed_add", "residual_add", _sh(rows=s.norm_rows, cols=h))]
    return tuple(ops)


def head_ops(cfg: ModelConfig, s: Shard) -> tuple[BlockOp, ...]:
    """Final norm, LM head (vocabulary columns over tp) and the cross-entropy loss."""
    h, t, isz = cfg.hidden_size, s.tokens, s.itemsize
    vocab = math.ceil(cfg.vocab_size / s.tp)
    llama = cfg.family is ModelFamily.LLAMA
    norm = _norm("add_rmsnorm" if llama else "layernorm", "final_norm", s.norm_rows, h,
                 "final_in", isz)
    tied = cfg.tie_word_embeddings
    head = BlockOp("lm_head", "matmul", _sh(M=t, K=h, N=vocab), weight="lm_head",
                   params=0 if tied else vocab * h,
                   saves=_saved((("final_out", t * h * isz),)))
    loss = BlockOp("loss", "cross_entropy", _sh(rows=t, vocab=vocab),
                   saves=_saved((("logits", t * vocab * 4),)))
    return norm, head, loss
