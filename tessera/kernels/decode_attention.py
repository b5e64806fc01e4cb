"""Single-token decode attention over a KV cache: o[h] = softmax(scale * q[h] K^T) V.

Layout: q[Hq, D], k_cache and v_cache [Hkv, T, D] -> o[Hq, D], row-major in HBM. A batch
folds into the heads (q [B*Hq, D], caches [B*Hkv, T, D]): query head h reads kv head
h // (Hq // Hkv) (GQA/MQA when Hkv < Hq). `length` (a static int <= T) attends to the
first `length` cache entries; by default all T.

The kernel is HBM-bound: each cache byte is read once, in chunks of up to `kv_chunk`
tokens per kv head, token-major over the partitions so every DMA is one contiguous HBM
range and one long run per partition: token t0 + p * n + j (n = tokens / 128) is partition
p, column j of K [128, n, D] and V [128, n, D]; a ragged tail is one more column on its
first partitions. Per chunk, for the G query heads of the kv head:

    K^T [D, n, 128]    TensorE transposes (a plain K load streams at the DMA engines' full
                       rate; a transposing DMA would run at 90%), VectorE/ScalarE copies
    S^T [128, n, G]    TensorE: stationary K^T column [D, 128 tokens], moving q^T [D, G]
    max                VectorE per partition, GpSimd across partitions, and -scale * max
                       broadcast back to 128 partitions by a K=1 matmul ([128, G], PSUM)
    P^T = exp(...)     ScalarE, one activation per query head (bias = its column)
    o = P V, l         TensorE: stationary P^T column [128, G], moving V [128, D]; l as a
                       ones-vector matmul over the per-partition row sums
    (several chunks: the online-softmax merge of (max, l, o) on [G, ...] tiles)

Chunks of consecutive kv heads are software-pipelined in program order, oldest stage
first, so compute never queues behind the newest chunk's loads. Napkin math (T = 4096,
D = 128, bf16): 2 MiB of K + V per kv head; trn1's 16 DMA engines move 16 x 17 B/ns =
272 GB/s of the core's 410 GB/s HBM share (a 66% ceiling, ~63% with per-transfer
overhead); trn2's 368 GB/s exceed its 362 GB/s share, so there HBM itself is the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.kernels.attention import reference_attention
from tessera.kernels.hardware import pmax
from tessera.kernels.lagged import run_lagged
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki.dtypes import to_dtype

_MASKED = -1.0e30  # scores of the padding rows of a ragged tail column
_KV_BYTES_PER_PARTITION = 40 * 1024  # SBUF for one chunk of K, V and K^T
_SMALL_O, _SMALL_L, _SMALL_NM, _SMALL_BIAS = 0, 256, 320, 384  # columns of the small PSUM tile
LOOKAHEAD = 1  # chunks generated (loads issued) before their first stage; DMA is saturated


@dataclass(frozen=True)
class _DecodePlan:
    """The static shape of one launch, normalised once."""

    heads: int
    kv_heads: int
    tokens: int  # attended tokens (length)
    head_dim: int
    scale: float
    chunk: int
    dtype: object

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


@dataclass
class _Chunk:
    """One (kv head, chunk) unit of work; stages fill in the intermediate tiles (mutable
    scratch, so not frozen)."""

    hk: int
    t0: int
    cols: int  # full 128-token columns
    tail: int  # tokens in the ragged last column
    first: bool
    last: bool
    q_t: object
    k: object = None  # K [128, columns, D], token-major
    k_t: object = None  # K^T [D, columns, 128], built on chip
    v: object = None
    tensors: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.cols + (1 if self.tail else 0)


def _plan(q: object, k: object, v: object, length: int | None, scale: float | None,
          kv_chunk: int) -> _DecodePlan:
    if len(q.shape) != 2 or len(k.shape) != 3 or tuple(k.shape) != tuple(v.shape):
        raise ValueError(f"decode_attention: expected q[Hq, D] and k, v [Hkv, T, D]; got "
                         f"q{list(q.shape)} k{list(k.shape)} v{list(v.shape)}")
    heads, d = q.shape
    kv_heads, t, dk = k.shape
    if dk != d or d > pmax() or heads % kv_heads:
        raise ValueError(f"decode_attention: head dims must match and be <= {pmax()}, and kv "
                         f"heads ({kv_heads}) must divide query heads ({heads})")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError("decode_attention: q, k and v must share a dtype")
    n = t if length is None else int(length)
    if not 1 <= n <= t:
        raise ValueError(f"decode_attention: length={length} must be in 1..{t}")
    g = heads // kv_heads
    if g > pmax():
        raise ValueError(f"decode_attention: at most {pmax()} query heads per kv head, got {g}")
    # S^T [128, columns, G] fp32 must fit one PSUM bank, K, V and K^T the SBUF budget
    per_token = q.dtype.itemsize * (2 * d / pmax() + 1)
    cols = max(1, min(kv_chunk // pmax(), 512 // g - 1,
                      int(_KV_BYTES_PER_PARTITION / per_token) // pmax()))
    s = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return _DecodePlan(heads, kv_heads, n, d, s, cols * pmax(), q.dtype)


def _chunks(p: _DecodePlan, q: object, k: object, v: object) -> Iterator[_Chunk]:
    """Every (kv head, chunk) in order, issuing its K and V loads as it is generated (the
    driver does that LOOKAHEAD steps before the chunk's first stage)."""
    g, d = p.group, p.head_dim
    # q^T for every head in one transfer (per-head loads would each pay the DMA overhead)
    q_all = nl.ndarray((d, p.heads), dtype=p.dtype, buffer=nl.sbuf)
    nisa.dma_transpose(dst=q_all, src=q)
    for hk in range(p.kv_heads):
        q_t = q_all[:, hk * g:(hk + 1) * g]
        starts = list(range(0, p.tokens, p.chunk))
        for i, t0 in enumerate(starts):
            n = min(p.chunk, p.tokens - t0)
            c = _Chunk(hk, t0, n // pmax(), n % pmax(), i == 0, i == len(starts) - 1, q_t)
            c.k = nl.ndarray((pmax(), c.width, d), dtype=p.dtype, buffer=nl.sbuf)
            c.v = nl.ndarray((pmax(), c.width, d), dtype=p.dtype, buffer=nl.sbuf)
            main = c.cols * pmax()
            for src, dst in ((k, c.k), (v, c.v)):
                if c.cols:
                    # token t0 + p * cols + j -> partition p, column j
                    nisa.dma_copy(dst=dst[:, 0:c.cols, :], src=src[hk, t0:t0 + main, :])
                if c.tail:
                    nisa.dma_copy(dst=dst[0:c.tail, c.cols, :], src=src[hk, t0 + main:t0 + n, :])
            yield c


@dataclass(frozen=True)
class _Launch:
    """What every stage needs: the plan, the output and the constant tiles."""

    plan: _DecodePlan
    out: object
    neg_scale_row: object  # [1, 128] fp32, all -scale: broadcasts -scale * max to 128 rows
    ones_col: object  # [128, 1] fp32: sums the row sums over partitions
    neg_scale_one: object  # [1, 1] fp32 = -scale: -scale * max as a [G, 1] column


@dataclass
class _Running:
    """Online-softmax state of one kv head across its chunks (updated in place)."""

    neg_max: object = None  # [G, 1] -scale * running max
    denom: object = None  # [G, 1]
    acc: object = None  # [G, D]


def _transpose_k(run: _Launch, c: _Chunk) -> None:
    """Stage 0: K^T [D, columns, 128] by TensorE transposes, a PSUM bank at a time, copied
    out alternately by VectorE and ScalarE (both are idle in this HBM-bound kernel)."""
    p = run.plan
    d = p.head_dim
    k = c.k
    c.k_t = nl.ndarray((d, c.width, pmax()), dtype=p.dtype, buffer=nl.sbuf)
    per_bank = max(1, 2048 // (pmax() * p.dtype.itemsize))
    for n, j0 in enumerate(range(0, c.width, per_bank)):
        j1 = min(c.width, j0 + per_bank)
        t_psum = nl.ndarray((d, per_bank, pmax()), dtype=p.dtype, buffer=nl.psum)
        for j in range(j0, j1):
            rows = c.tail if j == c.cols else pmax()
            nisa.nc_transpose(dst=t_psum[:, j - j0, 0:rows], data=k[0:rows, j, :])
        full = min(j1, c.cols) - j0  # the ragged column is copied on its own
        if full > 0 and n % 2:
            nisa.activation(dst=c.k_t[:, j0:j0 + full, :], op=nl.copy,
                            data=t_psum[:, 0:full, :])
        elif full > 0:
            nisa.tensor_copy(dst=c.k_t[:, j0:j0 + full, :], src=t_psum[:, 0:full, :])
        if j1 > c.cols and c.tail:
            nisa.tensor_copy(dst=c.k_t[:, c.cols, 0:c.tail],
                             src=t_psum[:, c.cols - j0, 0:c.tail])


def _scores(run: _Launch, c: _Chunk) -> None:
    """Stage 1 (TensorE): S^T[128, columns, G], one matmul per 128-token column."""
    g = run.plan.group
    s = nl.ndarray((pmax(), c.width, g), dtype=nl.float32, buffer=nl.psum)
    if c.tail:
        # padding rows of the ragged column must not win the max nor add to the sum
        nisa.memset(dst=s[:, c.cols, :], value=_MASKED)
    for j in range(c.cols):
        nisa.nc_matmul(dst=s[:, j, :], stationary=c.k_t[:, j, :], moving=c.q_t)
    if c.tail:
        nisa.nc_matmul(dst=s[0:c.tail, c.cols, :], stationary=c.k_t[:, c.cols, 0:c.tail],
                       moving=c.q_t)
    c.tensors["s"] = s


def _max(run: _Launch, c: _Chunk) -> None:
    """Stage 2: per-partition max (VectorE), across partitions (GpSimd), and -scale * max
    broadcast back to every partition by a K=1 matmul (TensorE)."""
    g = run.plan.group
    s = c.tensors["s"]
    row_max = nl.ndarray((pmax(), g), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=row_max, op=nl.maximum, data=s.permute((0, 2, 1)), axis=(2,))
    col_max = nl.ndarray((1, g), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_partition_reduce(dst=col_max, op=nl.maximum, data=row_max)
    small = nl.ndarray((pmax(), 512), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul(dst=small[:, _SMALL_BIAS:_SMALL_BIAS + g], stationary=run.neg_scale_row,
                   moving=col_max)
    if not (c.first and c.last):
        nisa.nc_matmul(dst=small[0:g, _SMALL_NM:_SMALL_NM + 1], stationary=col_max,
                       moving=run.neg_scale_one)
    c.tensors["small"] = small


def _exp(run: _Launch, c: _Chunk) -> None:
    """Stage 3 (ScalarE): P^T = exp(scale * S^T - scale * max), one activation per query
    head (its bias column), with per-partition row sums."""
    p = run.plan
    g = p.group
    s = c.tensors.pop("s")
    small = c.tensors["small"]
    probs = nl.ndarray((pmax(), c.width, g), dtype=p.dtype, buffer=nl.sbuf)
    row_sum = nl.ndarray((pmax(), g), dtype=nl.float32, buffer=nl.sbuf)
    for h in range(g):
        nisa.activation(dst=probs[:, :, h], op=nl.exp, data=s[:, :, h],
                        bias=small[:, _SMALL_BIAS + h:_SMALL_BIAS + h + 1], scale=p.scale,
                        reduce_op=nl.add, reduce_res=row_sum[:, h:h + 1],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
    c.tensors["p"] = probs
    c.tensors["row_sum"] = row_sum


def _pv(run: _Launch, c: _Chunk) -> None:
    """Stage 4 (TensorE): o[G, D] = P V accumulated over the columns; l = row sums summed
    over partitions."""
    p = run.plan
    g, d = p.group, p.head_dim
    small = c.tensors["small"]
    probs = c.tensors.pop("p")
    o = small[0:g, _SMALL_O:_SMALL_O + d]
    for j in range(c.cols):
        nisa.nc_matmul(dst=o, stationary=probs[:, j, :], moving=c.v[:, j, :])
    if c.tail:
        nisa.nc_matmul(dst=o, stationary=probs[0:c.tail, c.cols, :],
                       moving=c.v[0:c.tail, c.cols, :])
    nisa.nc_matmul(dst=small[0:g, _SMALL_L:_SMALL_L + 1], stationary=c.tensors.pop("row_sum"),
                   moving=run.ones_col)


def _finish(run: _Launch, c: _Chunk, state: _Running) -> None:
    """Stage 5: merge the chunk into the running (max, l, o); after the last chunk of the
    kv head, o / l -> HBM."""
    p = run.plan
    g, d = p.group, p.head_dim
    small = c.tensors.pop("small")
    o_c, l_c = small[0:g, _SMALL_O:_SMALL_O + d], small[0:g, _SMALL_L:_SMALL_L + 1]
    if not c.first:
        nm_c = small[0:g, _SMALL_NM:_SMALL_NM + 1]
        nm = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=nm, data1=state.neg_max, data2=nm_c, op=nl.minimum)
        alpha = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=alpha, op=nl.exp, data=state.neg_max, bias=nm, scale=-1.0)
        beta = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=beta, op=nl.exp, data=nm_c, bias=nm, scale=-1.0)
        scaled = nl.ndarray((g, d), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=scaled, data=o_c, op0=nl.multiply, operand0=beta)
        nisa.scalar_tensor_tensor(dst=state.acc, data=state.acc, op0=nl.multiply,
                                  operand0=alpha, op1=nl.add, operand1=scaled)
        l_scaled = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=l_scaled, data=l_c, op0=nl.multiply, operand0=beta)
        nisa.tensor_scalar(dst=state.denom, data=state.denom, op0=nl.multiply,
                           operand0=alpha, op1=nl.add, operand1=l_scaled)
        state.neg_max = nm
    elif not c.last:
        state.neg_max = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=state.neg_max, src=small[0:g, _SMALL_NM:_SMALL_NM + 1])
        state.denom = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=state.denom, src=l_c)
        state.acc = nl.ndarray((g, d), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=state.acc, src=o_c)
    if not c.last:
        return
    acc, denom = (o_c, l_c) if c.first else (state.acc, state.denom)
    inv = nl.ndarray((g, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.reciprocal(dst=inv, data=denom)
    o_sb = nl.ndarray((g, d), dtype=p.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=o_sb, data=acc, op0=nl.multiply, operand0=inv)
    nisa.dma_copy(dst=run.out[c.hk * g:(c.hk + 1) * g, :], src=o_sb)


# (stage, lag): in step n, stage s works on chunk n - lag. Oldest first within a step, so
# work whose data has arrived never queues behind the newest chunk's transposes (which wait
# for its DMA).
SCHEDULE = ((_finish, 5), (_pv, 4), (_exp, 3), (_max, 2), (_scores, 1), (_transpose_k, 0))


def _constant(shape: tuple[int, int], value: float) -> object:
    t = nl.ndarray(shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=value)
    return t


@nki.jit
def decode_attention(q, k_cache, v_cache, length=None, scale=None, kv_chunk=4096):
    """o[Hq, D] = softmax(scale * q k_cache[:length]^T) v_cache[:length], GQA by h // G.

    `scale` defaults to 1/sqrt(D); `kv_chunk` tokens of K/V per step (clamped so S^T fits
    one PSUM bank and K^T + V an SBUF budget).
    """
    p = _plan(q, k_cache, v_cache, length, scale, kv_chunk)
    out = nl.ndarray(q.shape, dtype=q.dtype, buffer=nl.shared_hbm)
    run = _Launch(p, out, _constant((1, pmax()), -p.scale), _constant((pmax(), 1), 1.0),
                  _constant((1, 1), -p.scale))
    states: dict[int, _Running] = {}

    def call(stage: object, c: _Chunk) -> None:
        if stage is _finish:
            _finish(run, c, states.setdefault(c.hk, _Running()))
        else:
            stage(run, c)  # type: ignore[operator]

    run_lagged(_chunks(p, q, k_cache, v_cache), SCHEDULE, LOOKAHEAD, call)
    return out


def reference_decode(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                     length: int | None = None, scale: float | None = None,
                     **_: object) -> np.ndarray:
    """Float64 decode attention: one query per head over the first `length` tokens."""
    n = k_cache.shape[1] if length is None else length
    return reference_attention(q[:, None, :], k_cache[:, :n], v_cache[:, :n],
                               scale=scale)[:, 0, :]


def _make_inputs(shapes: Mapping[str, int], dtype: object, rng: np.random.Generator
                 ) -> tuple[np.ndarray, ...]:
    h, hkv, t, d = (shapes[key] for key in ("heads", "kv_heads", "tokens", "head_dim"))
    return tuple(rng.standard_normal(shape).astype(np.float32).astype(to_dtype(dtype).storage)
                 for shape in ((h, d), (hkv, t, d), (hkv, t, d)))


DECODE_ATTENTION = register(KernelDef(
    op=Op.DECODE_ATTENTION, name="decode_attention", kernel=decode_attention,
    shape_keys=("heads", "kv_heads", "tokens", "head_dim"), make_inputs=_make_inputs,
    reference=reference_decode,
    flops=lambda s: 4.0 * s["heads"] * s["tokens"] * s["head_dim"],  # q K^T and P V
    # the caches once; q and o once
    hbm_bytes=lambda s, size: 2.0 * (s["kv_heads"] * s["tokens"] + s["heads"])
    * s["head_dim"] * size,
    tunables={"kv_chunk": (1024, 2048, 4096, 8192)}, defaults={"kv_chunk": 4096}))
