"""Softmax over the last axis of x [rows, cols], with an optional scale and additive mask.

    out = softmax(scale * x + mask)        (mask [rows, cols] or broadcast [1, cols])

Rows sit on partitions, `rows_per_partition` consecutive rows per partition so each
partition's HBM run is long (DMA descriptors pay a fixed overhead). Per block:

- Vector: the row max (negated, so it serves as the exp bias; bf16 max is exact in bf16
  and takes the engine's fast bf16 reduce path);
- Scalar: exp(scale * x - scale * max) written in place, the row sum accumulated by the
  same instruction in the activation reduction registers;
- 1 / sum on Vector, then the final multiply split by columns between the engines:
  `vector_eighths` / 8 of the columns on Vector (tensor_scalar), the rest on Scalar
  (activation copy with a per-row scale), so neither engine outlasts the DMA.

Napkin math (128 x 4096 bf16 per block, trn1): 2 MiB of HBM traffic = 5.1 us; Vector
max 1.8 us + 5/8 x 3.7 us, Scalar exp 2.9 us + 3/8 x 2.9 us: both ~4.1 us, under the DMA.
With a mask, scale * x + mask is one more Vector pass (scalar_tensor_tensor, into
float32 so the masked logits are not rounded to x's dtype).
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import (
    f64,
    fit_rows,
    pipeline,
    random_rows,
    row_blocks,
)
from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl

DEFAULT_ROWS_PER_PARTITION = 2
DEFAULT_VECTOR_EIGHTHS = 5
WIDE_ROW_BYTES = 32768  # per-partition bytes of one row above which rows are chunked
WIDE_CHUNK = 4096


def split_columns(cols: int, vector_eighths: int) -> int:
    """Columns [0, result) go to the Vector engine, the rest to the Scalar engine."""
    if not 0 <= vector_eighths <= 8:
        raise ValueError(f"vector_eighths must be in 0..8, got {vector_eighths}")
    return cols * vector_eighths // 8


def scale_rows(dst, src, factor, vector_cols: int) -> None:
    """dst = src * factor[P, 1] (fp32), columns split between the Vector and Scalar engines.

    src/dst are [P, cols] views (they may alias: element-wise in place is safe)."""
    cols = src.shape[-1]
    if vector_cols > 0:
        nisa.tensor_scalar(dst=dst[:, 0:vector_cols], data=src[:, 0:vector_cols],
                           op0=nl.multiply, operand0=factor)
    if vector_cols < cols:
        nisa.activation(dst=dst[:, vector_cols:cols], op=nl.copy,
                        data=src[:, vector_cols:cols], scale=factor)


@jit
def softmax(x, mask=None, scale: float = 1.0,
            rows_per_partition: int = DEFAULT_ROWS_PER_PARTITION,
            vector_eighths: int = DEFAULT_VECTOR_EIGHTHS, chunk: int = WIDE_CHUNK):
    """softmax(scale * x + mask) over the last axis of x [rows, cols]; out in x.dtype.

    Rows wider than WIDE_ROW_BYTES per partition take the two-pass column-chunked path."""
    rows, cols = x.shape
    scale = float(scale)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    # with a mask the scale is applied before the max; otherwise it is fused into exp
    exp_scale = 1.0 if mask is not None else scale
    row_bytes = cols * (x.dtype.itemsize + (4 if mask is not None else 0))
    if row_bytes > WIDE_ROW_BYTES:
        _softmax_wide(out, x, mask, scale, exp_scale, chunk)
        return out
    vcols = split_columns(cols, vector_eighths)
    shared_mask = None
    if mask is not None and mask.shape[0] == 1 and rows > 1:
        # one [1, cols] mask row for every row: load it once, repeated on all partitions
        shared_mask = nl.ndarray((pmax(), cols), mask.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=shared_mask, src=mask.broadcast(0, pmax()))

    def reduce_max(blk, _):
        p, k = blk.partitions, blk.per_partition
        xt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=blk.view(x))
        logits = xt
        if mask is not None:
            mt = shared_mask
            if mt is None:
                mt = nl.ndarray(xt.shape, mask.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=mt, src=blk.view(mask))
            logits = _masked(xt, mt, shared_mask is not None, scale)
        return xt, logits, _neg_extreme(logits, exp_scale, axis=2)

    def exponentiate(blk, carry):
        xt, logits, big = carry
        p, k = blk.partitions, blk.per_partition
        bias = _exp_bias(big, exp_scale)
        total = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        for j in range(k):
            nisa.activation(dst=xt[:, j, :], op=nl.exp, data=logits[:, j, :],
                            bias=bias[:, j:j + 1], scale=exp_scale, reduce_op=nl.add,
                            reduce_res=total[:, j:j + 1],
                            reduce_cmd=nisa.reduce_cmd.reset_reduce)
        return xt, total

    def normalise(blk, carry):
        xt, total = carry
        p, k = blk.partitions, blk.per_partition
        inv = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv, data=total)
        for j in range(k):
            scale_rows(xt[:, j, :], xt[:, j, :], inv[:, j:j + 1], vcols)
        nisa.dma_copy(dst=blk.view(out), src=xt)

    blocks = row_blocks(rows, fit_rows(rows_per_partition, cols, x.dtype.itemsize))
    pipeline(blocks, reduce_max, exponentiate, normalise)
    return out


def _neg_extreme(logits, exp_scale: float, axis: int):
    """-max (-min for a negative scale) over `axis`: exp(s*x - s*ext) needs the largest
    s*x. Kept in the logits' dtype: a bf16 max is exact and takes the fast bf16 reduce."""
    shape = logits.shape[:axis] if axis > 1 else (logits.shape[0], 1)
    big = nl.ndarray(shape, logits.dtype, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=big, op=nl.maximum if exp_scale >= 0 else nl.minimum,
                       data=logits, axis=(axis,), negate=True)
    return big


def _exp_bias(big, exp_scale: float):
    """The exp bias -s * ext as a float32 tile (big itself when s = 1)."""
    if exp_scale == 1.0:
        return big
    bias = nl.ndarray(big.shape, nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=bias, data=big, op0=nl.multiply, operand0=exp_scale)
    return bias


def _masked(xt, mt, shared: bool, scale: float):
    """scale * xt + mask as a new float32 tile (Vector engine): float32 so that adding a
    mask does not round the logits to x's precision before the exp. xt is [P, k, C] or
    [P, C]; mt is shaped like xt, or [>= P, C] when `shared` (one row for all)."""
    p = xt.shape[0]
    logits = nl.ndarray(xt.shape, nl.float32, buffer=nl.sbuf)
    slots = [(slice(None),)] if len(xt.shape) == 2 else [
        (slice(None), j) for j in range(xt.shape[1])]
    for idx in slots:
        m = mt[0:p] if shared else mt[idx]
        nisa.scalar_tensor_tensor(dst=logits[idx], data=xt[idx], op0=nl.multiply,
                                  operand0=scale, op1=nl.add, operand1=m)
    return logits


def _softmax_wide(out, x, mask, scale: float, exp_scale: float, chunk: int) -> None:
    """Two passes over column chunks of up to `chunk` elements, 128 rows at a time: first
    each chunk's extreme and exp-sum (online: rescaled to the global extreme afterwards),
    then exp(s*x + bias - ln(sum)) written straight out (no separate normalisation)."""
    rows, cols = x.shape
    width = min(max(1, chunk), cols)
    chunks = [(c0, min(width, cols - c0)) for c0 in range(0, cols, width)]
    n = len(chunks)

    def logits_of(blk, c):
        p = blk.partitions
        c0, w = chunks[c]
        xt = nl.ndarray((p, w), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=x[blk.start:blk.start + p, c0:c0 + w])
        if mask is None:
            return xt, xt
        mt = nl.ndarray((p, w), mask.dtype, buffer=nl.sbuf)
        one_row = mask.shape[0] == 1
        src = (mask[0:1, c0:c0 + w].broadcast(0, p) if one_row
               else mask[blk.start:blk.start + p, c0:c0 + w])
        nisa.dma_copy(dst=mt, src=src)
        return xt, _masked(xt, mt, False, scale)

    for blk in row_blocks(rows):
        p = blk.partitions
        biases = nl.ndarray((p, n), nl.float32, buffer=nl.sbuf)
        sums = nl.ndarray((p, n), nl.float32, buffer=nl.sbuf)

        def stats(c, _, blk=blk, biases=biases):
            xt, logits = logits_of(blk, c)
            big = _neg_extreme(logits, exp_scale, axis=1)
            nisa.tensor_scalar(dst=biases[:, c:c + 1], data=big, op0=nl.multiply,
                               operand0=exp_scale)
            return xt, logits

        def exp_sum(c, carry, biases=biases, sums=sums):
            xt, logits = carry
            nisa.activation(dst=xt, op=nl.exp, data=logits, bias=biases[:, c:c + 1],
                            scale=exp_scale, reduce_op=nl.add, reduce_res=sums[:, c:c + 1],
                            reduce_cmd=nisa.reduce_cmd.reset_reduce)

        pipeline(range(n), stats, exp_sum)
        # global bias B = min_c bias_c; total = sum_c s_c * exp(B - bias_c)
        bias = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=bias, op=nl.minimum, data=biases, axis=(1,))
        weights = nl.ndarray((p, n), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=weights, op=nl.exp, data=biases, scale=-1.0, bias=bias)
        nisa.tensor_tensor(dst=weights, data1=weights, data2=sums, op=nl.multiply)
        total = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=total, op=nl.add, data=weights, axis=(1,))
        nisa.activation(dst=total, op=nl.log, data=total)
        final = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)  # B - ln(total)
        nisa.tensor_tensor(dst=final, data1=bias, data2=total, op=nl.subtract)

        def write(c, _, blk=blk, final=final):
            xt, logits = logits_of(blk, c)
            c0, w = chunks[c]
            nisa.activation(dst=xt, op=nl.exp, data=logits, bias=final, scale=exp_scale)
            nisa.dma_copy(dst=out[blk.start:blk.start + blk.partitions, c0:c0 + w], src=xt)

        pipeline(range(n), write)


def softmax_reference(x: np.ndarray, mask: np.ndarray | None = None, scale: float = 1.0,
                      **_: object) -> np.ndarray:
    """softmax(scale * x + mask) over the last axis in float64."""
    v = f64(x) * scale
    if mask is not None:
        v = v + f64(mask)
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


SOFTMAX = register(KernelDef(
    op=Op.SOFTMAX, name="softmax", kernel=softmax, shape_keys=("rows", "cols"),
    make_inputs=lambda s, dtype, rng: (random_rows(s, dtype, rng, scale=4.0),),
    reference=softmax_reference,
    # max, subtract, exp, sum, multiply
    flops=lambda s: 5.0 * s["rows"] * s["cols"],
    hbm_bytes=lambda s, itemsize: 2 * s["rows"] * s["cols"] * itemsize,
    tunables={"rows_per_partition": (1, 2, 4), "vector_eighths": (3, 4, 5, 6, 7, 8)},
    defaults={"rows_per_partition": DEFAULT_ROWS_PER_PARTITION,
              "vector_eighths": DEFAULT_VECTOR_EIGHTHS}))
