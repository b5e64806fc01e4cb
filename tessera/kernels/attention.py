"""Flash-style attention forward: o = softmax(scale * q k^T [+ causal mask]) v, per head.

Layout: q[Hq, S, D], k and v [Hkv, Sk, D] -> o[Hq, S, D], row-major in HBM. A batch folds
into the heads (q [B*Hq, S, D], k/v [B*Hkv, Sk, D]): query head h reads kv head
h // (Hq // Hkv), the right kv head of the right batch (GQA/MQA when Hkv < Hq). D <= 128;
S need not be a multiple of 128; `causal` needs Sk == S (query i sees keys 0..i).

K^T [D, keys] (DMA transpose) and V [128 keys, tiles, D] of a kv head stay in SBUF for a
chunk of up to `kv_chunk` keys; each 128-row query tile walks it in `block_k`-key blocks
(online softmax): S = Q K^T (TensorE: stationary Q^T [D, 128q], moving K^T [D, 512k];
causal: + I^T @ mask on the diagonal square, later blocks skipped); -scale*S with its row
min, one VectorE pass out of PSUM; P = exp with row sums, and alpha, on ScalarE; P^T by
TensorE transposes, copied out by VectorE (ScalarE: `scalar_eighths`); P V (stationary
P^T [128k, 128q], moving V [128k, D]); O = alpha O + P V on GpSimd. Stages of consecutive
items are software-pipelined in program order (`SCHEDULE`), loads issued early.

Napkin math per 128 x 1024 block (bf16, D = 128): TensorE spends 1024 cycles on each of
Q K^T, the transposes and P V: at most 2/3 of peak. NeuronCore-v3: ~1.3 us each of VectorE
and ScalarE vs 1.28 us of TensorE (~60%). NeuronCore-v2: Vector and Scalar share the PSUM
port, so the S, P^T and P V reads (1.02 + 0.77 + 0.13 us) bound it to ~38% (0.73 us useful).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.kernels.hardware import moving_fmax, pmax
from tessera.kernels.lagged import run_lagged
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki.dtypes import to_dtype

_MASKED = -1.0e30  # added to masked scores: their exp is exactly 0
_KV_BYTES_PER_PARTITION, _Q_GROUP_TILES = 32 * 1024, 32  # a K^T + V chunk; tiles per walk
_PREFETCH_ITEMS = 32  # the next chunk loads while this many items of the current remain
# P^T pieces (in eighths) ScalarE copies out of PSUM by default, per NeuronCore version:
# all on v2 (the PSUM port is shared anyway and ScalarE clocks faster), else 1/8
_SCALAR_EIGHTHS = {2: 8}
LOOKAHEAD = 8  # items generated (and their loads issued) ahead of their first stage


@dataclass(frozen=True)
class _AttentionPlan:
    """The static shape of one launch, normalised once, and its constant tensors."""

    heads: int
    kv_heads: int
    group: int  # query heads per kv head
    seq: int
    seq_k: int
    head_dim: int
    scale: float
    causal: bool
    block_k: int
    chunk: int
    scalar_eighths: int
    dtype: object
    out: object = None  # the output in HBM
    consts: tuple | None = None  # causal identity and mask


@dataclass
class _Tile:
    """One query tile and its running statistics (updated as the pipeline advances)."""

    head: int
    q0: int
    rows: int
    blocks_left: int = 0
    started: bool = False
    q_t: object = None  # Q^T [D, 128]
    neg_max: object = None  # -scale * running row max [128, 1] fp32
    denom: object = None  # running row sum [128, 1] fp32
    acc: object = None  # unnormalised output [128, D] fp32


@dataclass
class _Item:
    """One (query tile, key block); stages leave their results in `tensors` (scratch)."""

    tile: _Tile
    k_t: object  # K^T of the block [D, width]
    v: object  # V of the block [128, ceil(width / 128), D]
    width: int
    diag: int | None  # column of the causal diagonal square inside the block
    first: bool
    last: bool
    tensors: dict = field(default_factory=dict)


def _plan(q: object, k: object, v: object, causal: bool, scale: float | None, block_k: int,
          kv_chunk: int, scalar_eighths: int | None) -> _AttentionPlan:
    if len(q.shape) != 3 or len(k.shape) != 3 or tuple(k.shape) != tuple(v.shape):
        raise ValueError(f"flash_attention: expected q[Hq, S, D], k and v [Hkv, Sk, D]; got "
                         f"q{list(q.shape)} k{list(k.shape)} v{list(v.shape)}")
    heads, seq, d = q.shape
    kv_heads, seq_k, dk = k.shape
    if dk != d or d > pmax() or heads % kv_heads:
        raise ValueError(f"flash_attention: head dims must match and be <= {pmax()}, and kv "
                         f"heads ({kv_heads}) must divide query heads ({heads})")
    bad_block = block_k < pmax() or block_k % pmax()
    if not q.dtype == k.dtype == v.dtype or (causal and seq_k != seq) or bad_block:
        raise ValueError(f"flash_attention: q, k, v must share a dtype, causal needs Sk == S "
                         f"({seq_k} vs {seq}), block_k ({block_k}) must be a multiple of {pmax()}")
    per_key = q.dtype.itemsize * (1 + d / pmax())  # bytes per partition: K^T 1, V D / 128
    fit = int(_KV_BYTES_PER_PARTITION / per_key) // block_k * block_k
    chunk = max(block_k, min(kv_chunk // block_k * block_k, fit))
    if scalar_eighths is None:
        scalar_eighths = _SCALAR_EIGHTHS.get(getattr(nisa.get_nc_version(), "value", 0), 1)
    s = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return _AttentionPlan(heads, kv_heads, heads // kv_heads, seq, seq_k, d, s, bool(causal),
                          block_k, chunk, min(8, max(0, int(scalar_eighths))), q.dtype)


def _causal_constants(dtype: object) -> tuple[object, object]:
    """Identity and mask [128, 128] (0 where key j <= query i of the diagonal square, else
    -1e30). I^T @ mask adds it in PSUM, before the max (affine_select's GpSimd has no PSUM)."""
    ones = nl.ones((pmax(), pmax()), dtype=dtype, buffer=nl.sbuf)
    zeros = nl.zeros((pmax(), pmax()), dtype=dtype, buffer=nl.sbuf)
    ident = nl.ndarray((pmax(), pmax()), dtype=dtype, buffer=nl.sbuf)
    nisa.affine_select(dst=ident, pattern=[[-1, pmax()]], channel_multiplier=1,
                       on_true_tile=ones, on_false_value=0.0, cmp_op=nl.equal)
    mask = nl.ndarray((pmax(), pmax()), dtype=dtype, buffer=nl.sbuf)
    nisa.affine_select(dst=mask, pattern=[[-1, pmax()]], channel_multiplier=1,
                       on_true_tile=zeros, on_false_value=_MASKED, cmp_op=nl.greater_equal)
    return ident, mask


def _load_chunk(p: _AttentionPlan, k: object, v: object, hk: int, c0: int, c1: int
                ) -> dict[int, tuple[object, object]]:
    """Per block of the chunk (by first key): K^T [D, keys] by DMA transpose and V as
    128-key tiles [128, tiles, D]. Tiles per block, not per chunk, so the allocator never
    needs one large free range."""
    d, out = p.head_dim, {}
    for b0 in range(c0, c1, p.block_k):
        b1 = min(c1, b0 + p.block_k)
        full, tail = divmod(b1 - b0, pmax())
        k_t = nl.ndarray((d, b1 - b0), dtype=p.dtype, buffer=nl.sbuf)
        v_sb = nl.ndarray((pmax(), full + (tail > 0), d), dtype=p.dtype, buffer=nl.sbuf)
        nisa.dma_transpose(dst=k_t, src=k[hk, b0:b1, :])
        if full:  # key b0 + j * 128 + p lands on partition p of V tile j
            rows = v[hk, b0:b0 + full * pmax(), :].reshape((full, pmax(), d)).permute((1, 0, 2))
            nisa.dma_copy(dst=v_sb[:, 0:full, :], src=rows)
        if tail:
            nisa.dma_copy(dst=v_sb[0:tail, full, :], src=v[hk, b1 - tail:b1, :])
        out[b0] = (k_t, v_sb)
    return out


def _blocks(p: _AttentionPlan, t: _Tile, c0: int, c1: int) -> list[tuple[int, int]]:
    """(first key, width) of the blocks of chunk [c0, c1) that tile `t` attends to."""
    end = min(c1, t.q0 + t.rows) if p.causal else c1  # causal: nothing past the diagonal
    return [(b, min(p.block_k, end - b)) for b in range(c0, end, p.block_k)]


def _visits(p: _AttentionPlan) -> list[tuple[int, list[_Tile], int, int]]:
    """(kv head, query tiles, chunk start, end) in order: one chunk serves all tiles of the
    kv head; with several, groups of tiles walk them all, their statistics kept in SBUF."""
    n_tiles = math.ceil(p.seq / pmax())
    chunks = [(c0, min(p.seq_k, c0 + p.chunk)) for c0 in range(0, p.seq_k, p.chunk)]
    per_group = _Q_GROUP_TILES if len(chunks) > 1 else p.group * n_tiles
    out = []
    for hk in range(p.kv_heads):
        tiles = [_Tile(h, i * pmax(), min(pmax(), p.seq - i * pmax()))
                 for h in range(hk * p.group, (hk + 1) * p.group) for i in range(n_tiles)]
        for g0 in range(0, len(tiles), per_group):
            group = tiles[g0:g0 + per_group]
            for t in group:
                t.blocks_left = sum(len(_blocks(p, t, c0, c1)) for c0, c1 in chunks)
            out.extend((hk, group, c0, c1) for c0, c1 in chunks)
    return out


def _items(p: _AttentionPlan, q: object, k: object, v: object) -> Iterator[_Item]:
    """Every (query tile, key block) in order, issuing loads on the way: Q^T with a tile's
    first item, the next chunk's K/V `_PREFETCH_ITEMS` before this one's end."""
    visits = _visits(p)
    loaded: dict[int, dict[int, tuple[object, object]]] = {}

    def ensure(i: int) -> None:
        if i < len(visits) and i not in loaded:
            hk, _, c0, c1 = visits[i]
            loaded[i] = _load_chunk(p, k, v, hk, c0, c1)

    for vi, (_, group, c0, c1) in enumerate(visits):
        ensure(vi)
        tiles = loaded.pop(vi)
        left = sum(len(_blocks(p, t, c0, c1)) for t in group)
        for t in group:
            for b0, width in _blocks(p, t, c0, c1):
                if not t.started:
                    t.q_t = nl.ndarray((p.head_dim, pmax()), dtype=p.dtype, buffer=nl.sbuf)
                    nisa.dma_transpose(dst=t.q_t[:, 0:t.rows],
                                       src=q[t.head, t.q0:t.q0 + t.rows, :])
                diag = t.q0 - b0 if p.causal and b0 + width == t.q0 + t.rows else None
                yield _Item(t, *tiles[b0], width, diag, not t.started, t.blocks_left == 1)
                t.started = True
                t.blocks_left -= 1
                left -= 1
                if left < _PREFETCH_ITEMS:  # late: at most two chunks are live
                    ensure(vi + 1)


def _scores(p: _AttentionPlan, it: _Item) -> None:
    """TensorE: S[rows, width] = Q K^T into PSUM (+ the causal mask on the diagonal)."""
    t, r = it.tile, it.tile.rows
    s_psum = nl.ndarray((pmax(), p.block_k), dtype=nl.float32, buffer=nl.psum)
    for c in range(0, it.width, moving_fmax()):
        w = min(moving_fmax(), it.width - c)
        nisa.nc_matmul(dst=s_psum[0:r, c:c + w], stationary=t.q_t[:, 0:r],
                       moving=it.k_t[:, c:c + w])
    if it.diag is not None:
        ident, mask = p.consts
        nisa.nc_matmul(dst=s_psum[0:r, it.diag:it.diag + r], stationary=ident[0:r, 0:r],
                       moving=mask[0:r, 0:r], accumulate=True)
    it.tensors["s"] = s_psum


def _stats(p: _AttentionPlan, it: _Item) -> None:
    """VectorE: -scale * S into SBUF with its row min in one pass, then the running
    -scale * max = min(old, block)."""
    t, r, w = it.tile, it.tile.rows, it.width
    neg_s = nl.ndarray((pmax(), p.block_k), dtype=nl.float32, buffer=nl.sbuf)
    blk = nl.ndarray((pmax(), 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar_reduce(dst=neg_s[0:r, 0:w], data=it.tensors.pop("s")[0:r, 0:w],
                              op0=nl.multiply, operand0=-p.scale, reduce_op=nl.minimum,
                              reduce_res=blk[0:r])
    neg_max = blk
    if not it.first:
        neg_max = nl.ndarray((pmax(), 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=neg_max[0:r], data1=blk[0:r], data2=t.neg_max[0:r],
                           op=nl.minimum)
        it.tensors["prev"] = t.neg_max
    t.neg_max = neg_max
    it.tensors["neg_s"], it.tensors["neg_max"] = neg_s, neg_max


def _exp(p: _AttentionPlan, it: _Item) -> None:
    """ScalarE: P = exp(scale * S - scale * max) with row sums, alpha = exp(scale * (old
    max - new max)); GpSimd: l = l * alpha + row sum."""
    t, r, w = it.tile, it.tile.rows, it.width
    neg_max = it.tensors.pop("neg_max")
    probs = nl.ndarray((pmax(), p.block_k), dtype=p.dtype, buffer=nl.sbuf)
    row_sum = nl.ndarray((pmax(), 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=probs[0:r, 0:w], op=nl.exp, data=it.tensors.pop("neg_s")[0:r, 0:w],
                    bias=neg_max[0:r], scale=-1.0, reduce_op=nl.add,
                    reduce_res=row_sum[0:r], reduce_cmd=nisa.reduce_cmd.reset_reduce)
    it.tensors["p"] = probs
    if it.first:
        t.denom = row_sum
        return
    alpha = nl.ndarray((pmax(), 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=alpha[0:r], op=nl.exp, data=it.tensors.pop("prev")[0:r],
                    bias=neg_max[0:r], scale=-1.0)
    it.tensors["alpha"] = alpha
    denom = nl.ndarray((pmax(), 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=denom[0:r], data=t.denom[0:r], op0=nl.multiply,
                       operand0=alpha[0:r], op1=nl.add, operand1=row_sum[0:r],
                       engine=nisa.gpsimd_engine)
    t.denom = denom


def _transpose(p: _AttentionPlan, it: _Item) -> None:
    """TensorE: P^T in 128-key pieces, all into one PSUM tile."""
    r = it.tile.rows
    probs = it.tensors.pop("p")
    pt_psum = nl.ndarray((pmax(), p.block_k // pmax(), pmax()), dtype=p.dtype, buffer=nl.psum)
    for j in range(math.ceil(it.width / pmax())):
        w = min(pmax(), it.width - j * pmax())
        nisa.nc_transpose(dst=pt_psum[0:w, j, 0:r], data=probs[0:r, j * pmax():j * pmax() + w])
    it.tensors["pt_psum"] = pt_psum


def _copy_pt(p: _AttentionPlan, it: _Item) -> None:
    """P^T to SBUF: VectorE copies most pieces in one instruction, ScalarE its share."""
    r = it.tile.rows
    pt_psum = it.tensors.pop("pt_psum")
    full, tail = divmod(it.width, pmax())
    pt = nl.ndarray((pmax(), p.block_k // pmax(), pmax()), dtype=p.dtype, buffer=nl.sbuf)
    n_vec = full - min(full, round(full * p.scalar_eighths / 8))
    if n_vec:
        nisa.tensor_copy(dst=pt[:, 0:n_vec, 0:r], src=pt_psum[:, 0:n_vec, 0:r])
    if n_vec < full:
        nisa.activation(dst=pt[:, n_vec:full, 0:r], op=nl.copy, data=pt_psum[:, n_vec:full, 0:r])
    if tail:
        nisa.tensor_copy(dst=pt[0:tail, full, 0:r], src=pt_psum[0:tail, full, 0:r])
    it.tensors["pt"] = pt


def _pv(p: _AttentionPlan, it: _Item) -> None:
    """TensorE: P V for the block, its 128-key pieces accumulating in PSUM."""
    r, pt = it.tile.rows, it.tensors.pop("pt")
    pv = nl.ndarray((pmax(), p.head_dim), dtype=nl.float32, buffer=nl.psum)
    for j in range(math.ceil(it.width / pmax())):
        w = min(pmax(), it.width - j * pmax())
        nisa.nc_matmul(dst=pv[0:r, :], stationary=pt[0:w, j, 0:r], moving=it.v[0:w, j, :])
    it.tensors["pv"] = pv


def _update(p: _AttentionPlan, it: _Item) -> None:
    """ScalarE copies P V out of PSUM; GpSimd: O = O * alpha + P V (VectorE is busiest)."""
    t, r = it.tile, it.tile.rows
    pv = it.tensors.pop("pv")
    if it.first:
        t.acc = nl.ndarray((pmax(), p.head_dim), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=t.acc[0:r], op=nl.copy, data=pv[0:r])
        return
    pv_sb = nl.ndarray((pmax(), p.head_dim), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=pv_sb[0:r], op=nl.copy, data=pv[0:r])
    nisa.tensor_scalar(dst=t.acc[0:r], data=t.acc[0:r], op0=nl.multiply,
                       operand0=it.tensors.pop("alpha")[0:r], engine=nisa.gpsimd_engine)
    nisa.tensor_tensor(dst=t.acc[0:r], data1=t.acc[0:r], data2=pv_sb[0:r], op=nl.add,
                       engine=nisa.gpsimd_engine)


def _finish(p: _AttentionPlan, it: _Item) -> None:
    """GpSimd, a step after a tile's last update: o = O / l, stored to HBM."""
    if not it.last:
        return
    t, r = it.tile, it.tile.rows
    o_sb = nl.ndarray((pmax(), p.head_dim), dtype=p.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=o_sb[0:r], data=t.acc[0:r], op0=nl.divide, operand0=t.denom[0:r],
                       engine=nisa.gpsimd_engine)
    nisa.dma_copy(dst=p.out[t.head, t.q0:t.q0 + r, :], src=o_sb[0:r])


# (stage, lag): in step n, stage s works on item n - lag, stages in this order. A step
# between dependent stages on different engines hides the hop between them.
SCHEDULE = ((_scores, 0), (_stats, 1), (_exp, 1), (_transpose, 2), (_copy_pt, 3), (_pv, 4),
            (_update, 5), (_finish, 6))


@nki.jit
def flash_attention(q, k, v, causal=False, scale=None, block_k=1024, kv_chunk=8192,
                    scalar_eighths=None):
    """o[Hq, S, D] = softmax(scale * q k^T (+ causal mask)) v; query head h uses kv head
    h // (Hq // Hkv). `scale` defaults to 1/sqrt(D); `block_k` keys per online-softmax
    step (multiple of 128); `kv_chunk` keys of K/V resident at once (clamped to an SBUF
    budget); `scalar_eighths` of the P^T copy go to ScalarE (None: per NeuronCore)."""
    p = _plan(q, k, v, causal, scale, block_k, kv_chunk, scalar_eighths)
    p = dataclasses.replace(p, out=nl.ndarray(q.shape, dtype=q.dtype, buffer=nl.shared_hbm),
                            consts=_causal_constants(p.dtype) if p.causal else None)
    run_lagged(_items(p, q, k, v), SCHEDULE, LOOKAHEAD, lambda stage, item: stage(p, item))
    return p.out


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
                        scale: float | None = None, **_: object) -> np.ndarray:
    """Float64 softmax attention, same layout and GQA rule; causal keeps key j <= query i."""
    q64, k64, v64 = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    group = q64.shape[0] // k64.shape[0]
    kk, vv = np.repeat(k64, group, axis=0), np.repeat(v64, group, axis=0)
    s = 1.0 / math.sqrt(q64.shape[-1]) if scale is None else scale
    scores = s * np.einsum("hqd,hkd->hqk", q64, kk)
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[1:], dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.einsum("hqk,hkd->hqd", weights / weights.sum(axis=-1, keepdims=True), vv)


def _make_inputs(shapes: Mapping[str, int], dtype: object, rng: np.random.Generator
                 ) -> tuple[np.ndarray, ...]:
    h, hkv, s, d = (shapes[key] for key in ("heads", "kv_heads", "seq", "head_dim"))
    return tuple(rng.standard_normal(shape).astype(np.float32).astype(to_dtype(dtype).storage)
                 for shape in ((h, s, d), (hkv, s, d), (hkv, s, d)))


FLASH_ATTENTION = register(KernelDef(
    op=Op.FLASH_ATTENTION, name="flash_attention", kernel=flash_attention,
    shape_keys=("heads", "kv_heads", "seq", "head_dim"), make_inputs=_make_inputs,
    reference=reference_attention,
    # 4 S^2 D per query head (Q K^T and P V), half of it given an optional `causal: 1`
    flops=lambda s: 4.0 * s["heads"] * s["seq"] ** 2 * s["head_dim"] / (
        2.0 if s.get("causal") else 1.0),
    # q and o once per query head, k and v once per kv head
    hbm_bytes=lambda s, size: 2.0 * (s["heads"] + s["kv_heads"]) * s["seq"] * s["head_dim"]
    * size,
    tunables={"block_k": (512, 1024, 2048), "kv_chunk": (4096, 8192),
              "scalar_eighths": (0, 1, 2, 4, 8)},
    defaults={"block_k": 1024, "kv_chunk": 8192}))
