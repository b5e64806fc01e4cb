"""Cross-entropy forward: loss[r] = logsumexp(logits[r, :]) - logits[r, target[r]].

logits [N, V] (any float dtype), targets [N] int32 in [0, V); loss [N] float32.

Rows sit on partitions (128 per block); the vocabulary is processed in column chunks of
`chunk` elements with an online logsumexp, so any V fits in SBUF and the logits are read
once. Per chunk c:

- Vector: m_c = max (negated: it is the exp bias), and the target logit without dynamic
  addressing: (iota == target - c0) * x in one scalar_tensor_tensor (iota 0..chunk-1 is
  built once on GpSimd);
- Scalar: s_c = sum exp(x - m_c) (activation reduce registers), and the sum of the masked
  product (the picked logit, or 0 when the target is in another chunk).

Per block: M = max m_c, S = sum_c s_c exp(m_c - M), loss = M + ln S - picked. The three
steps (load + max, exp + mask, masked sum) are software-pipelined over (block, chunk) items.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import f64, pipeline, row_blocks, storage_of
from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl

DEFAULT_CHUNK = 8192


@jit
def cross_entropy(logits, targets, chunk: int = DEFAULT_CHUNK):
    """Per-row loss [N] (float32) of logits [N, V] against int32 class ids targets [N]."""
    n, vocab = logits.shape
    dtype = logits.dtype
    width = min(chunk, vocab)
    chunks = [(c0, min(width, vocab - c0)) for c0 in range(0, vocab, width)]
    out = nl.ndarray((n,), nl.float32, buffer=nl.shared_hbm)
    iota = nl.ndarray((pmax(), width), nl.float32, buffer=nl.sbuf)
    nisa.iota(dst=iota, pattern=[[1, width]], offset=0)
    acc = {}  # block start -> per-block tiles

    def start_block(blk):
        p = blk.partitions
        tid = nl.ndarray((p, 1), targets.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=tid, src=targets[blk.start:blk.start + p].reshape((p, 1)))
        target = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=target, src=tid)
        k = len(chunks)
        tiles = {name: nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
                 for name in ("sums", "picks")}
        # in the logits' dtype: a bf16 max is exact and takes the fast bf16 reduce
        tiles["neg_max"] = nl.ndarray((p, k), dtype, buffer=nl.sbuf)
        tiles["target"] = target
        acc[blk.start] = tiles

    def load(item, _):
        blk, c = item
        if c == 0:
            start_block(blk)
        p = blk.partitions
        c0, w = chunks[c]
        xt = nl.ndarray((p, w), dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=logits[blk.start:blk.start + p, c0:c0 + w])
        neg_max = acc[blk.start]["neg_max"]
        nisa.tensor_reduce(dst=neg_max[:, c:c + 1], op=nl.maximum, data=xt, axis=(1,),
                           negate=True)
        return xt

    def exp_and_mask(item, xt):
        blk, c = item
        p = blk.partitions
        c0, w = chunks[c]
        tiles = acc[blk.start]
        scratch = nl.ndarray((p, w), dtype, buffer=nl.sbuf)  # exp values: only sums are used
        nisa.activation(dst=scratch, op=nl.exp, data=xt, bias=tiles["neg_max"][:, c:c + 1],
                        reduce_op=nl.add, reduce_res=tiles["sums"][:, c:c + 1],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        shifted = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)  # target - c0
        nisa.tensor_scalar(dst=shifted, data=tiles["target"], op0=nl.add,
                           operand0=float(-c0))
        masked = nl.ndarray((p, w), nl.float32, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(dst=masked, data=iota[0:p, 0:w], op0=nl.equal,
                                  operand0=shifted, op1=nl.multiply, operand1=xt)
        return masked

    def pick(item, masked):
        blk, c = item
        tiles = acc[blk.start]
        nisa.activation(dst=masked, op=nl.copy, data=masked, reduce_op=nl.add,
                        reduce_res=tiles["picks"][:, c:c + 1],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        if c == len(chunks) - 1:
            _finish(blk, acc.pop(blk.start), out)

    items = [(blk, c) for blk in row_blocks(n) for c in range(len(chunks))]
    pipeline(items, load, exp_and_mask, pick)
    return out


def _finish(blk, tiles, out) -> None:
    """loss = M + ln(sum_c s_c exp(m_c - M)) - picked, for one block; store it."""
    p = blk.partitions
    neg_max, sums, picks = tiles["neg_max"], tiles["sums"], tiles["picks"]
    k = neg_max.shape[1]
    neg_m = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)  # -M = min_c(-m_c)
    nisa.tensor_reduce(dst=neg_m, op=nl.minimum, data=neg_max, axis=(1,))
    # exp(m_c - M) = exp(-1 * (-m_c) + (-M)), then weight each chunk's sum by it
    rescale = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=rescale, op=nl.exp, data=neg_max, scale=-1.0, bias=neg_m)
    nisa.tensor_tensor(dst=rescale, data1=rescale, data2=sums, op=nl.multiply)
    total = nl.ndarray((p, 2), nl.float32, buffer=nl.sbuf)  # sum of exps, picked logit
    nisa.tensor_reduce(dst=total[:, 0:1], op=nl.add, data=rescale, axis=(1,))
    nisa.tensor_reduce(dst=total[:, 1:2], op=nl.add, data=picks, axis=(1,))
    log_sum = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=log_sum, op=nl.log, data=total[:, 0:1])
    loss = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    # (ln S - (-M)) - picked
    nisa.scalar_tensor_tensor(dst=loss, data=log_sum, op0=nl.subtract, operand0=neg_m,
                              op1=nl.subtract, operand1=total[:, 1:2])
    nisa.dma_copy(dst=out[blk.start:blk.start + p].reshape((p, 1)), src=loss)


def cross_entropy_reference(logits: np.ndarray, targets: np.ndarray,
                            **_: object) -> np.ndarray:
    """logsumexp(logits[r]) - logits[r, targets[r]] per row, in float64."""
    v = f64(logits)
    m = v.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(v - m).sum(axis=-1, keepdims=True)))[:, 0]
    t = np.asarray(targets).reshape(-1).astype(np.int64)
    return lse - v[np.arange(v.shape[0]), t]


def _make_inputs(s, dtype, rng):
    logits = rng.normal(0.0, 3.0, (s["rows"], s["vocab"])).astype(np.float32)
    targets = rng.integers(0, s["vocab"], s["rows"]).astype(np.int32)
    return logits.astype(storage_of(dtype)), targets


CROSS_ENTROPY = register(KernelDef(
    op=Op.CROSS_ENTROPY, name="cross_entropy", kernel=cross_entropy,
    shape_keys=("rows", "vocab"), make_inputs=_make_inputs,
    reference=cross_entropy_reference,
    # max, subtract + exp, sum, compare + multiply, sum
    flops=lambda s: 6.0 * s["rows"] * s["vocab"],
    # logits in, int32 targets in, float32 loss out
    hbm_bytes=lambda s, itemsize: s["rows"] * (s["vocab"] * itemsize + 8),
    tunables={"chunk": (2048, 4096, 8192, 16384)}, defaults={"chunk": DEFAULT_CHUNK}))
