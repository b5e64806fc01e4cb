"""Row normalisations of x [rows, cols]: RMSNorm and LayerNorm (weight and bias over cols).

Rows sit on partitions, `rows_per_partition` consecutive rows per partition (long DMA runs),
and the loop is software-pipelined (`pipeline`) so the in-order engine queues overlap
consecutive blocks. Per 128 x 4096 bf16 block the DMA needs 5.1 us on trn1 (5.8 on trn2);
one Vector pass takes 3.7 us (2.1), one Scalar pass 2.9 us (3.4). The work is therefore
spread so that no engine needs more than ~1.5 passes:

RMSNorm  y = x * rsqrt(mean(x^2) + eps) * w
  Scalar: x^2 with the row sum in the activation reduce registers (1 pass);
  Vector: x * w (the fast all-bf16 tensor_tensor, 1 pass), independent of the sum;
  then x*w scaled by rstd, `vector_eighths`/8 of the columns on Vector, the rest on Scalar.

LayerNorm  y = (x - mean) * rsqrt(var + eps) * w + b
  Vector: bn_stats/bn_aggr (1 pass, chunks of bn_stats_fmax), then
  t = (x - mean_hi) * w in one scalar_tensor_tensor (the fast bf16 subtract-multiply form;
  mean_hi is the mean rounded to x's dtype);
  Tensor engine (idle otherwise), per PSUM chunk:  psum = I @ t + diag(std) @ B
  + diag(mean_hi - mean) @ W, with B / W the bias / weight rows repeated on every
  partition: it adds the bias and the rounding residue of the mean without another
  Vector pass;
  Scalar: y = rstd * psum while evacuating PSUM (1 pass).
  So Vector 2 passes, Scalar 1, Tensor 3 matmuls per 512 columns.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import (
    f64,
    fit_rows,
    pipeline,
    random_rows,
    row_blocks,
    storage_of,
)
from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.kernels.softmax import scale_rows, split_columns
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl

RMS_EPS = 1e-6
LN_EPS = 1e-5
PSUM_BANK_FP32 = 512
SCRATCH_COLS = 4096  # columns of the throw-away output of a reducing activation


def _row_tile(vector, cols: int, dtype):
    """vector [cols] (HBM) repeated on all 128 partitions as a [128, cols] SBUF tile of dtype
    (a stride-0 HBM view, loaded once; the DMA casts when dtypes differ)."""
    tile = nl.ndarray((pmax(), cols), dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=tile, src=vector.reshape((1, cols)).broadcast(0, pmax()))
    return tile


@jit
def rmsnorm(x, weight, eps: float = RMS_EPS, rows_per_partition: int = 2,
            vector_eighths: int = 4):
    """y = x / sqrt(mean(x^2, axis=-1) + eps) * weight for x [rows, cols], weight [cols]."""
    rows, cols = x.shape
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    w = _row_tile(weight, cols, x.dtype)
    vcols = split_columns(cols, vector_eighths)
    k_max = fit_rows(rows_per_partition, cols, x.dtype.itemsize)

    def stats(blk, _):
        p, k = blk.partitions, blk.per_partition
        xt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=blk.view(x))
        sumsq = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        yt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        for j in range(k):
            row_sum(xt[:, j, :], nl.square, 1.0, sumsq[:, j:j + 1])
            nisa.tensor_tensor(dst=yt[:, j, :], data1=xt[:, j, :], data2=w[0:p],
                               op=nl.multiply)
        return yt, sumsq

    def normalise(blk, carry):
        rms_scale_and_store(blk, *carry, eps, vcols, out)

    pipeline(row_blocks(rows, k_max), stats, normalise)
    return out


def rms_scale_and_store(blk, yt, sumsq, eps: float, vector_cols: int, out) -> None:
    """yt [P, k, cols] (x * weight) times rsqrt(sumsq / cols + eps) per row, stored to the
    block of `out`: RMSNorm's second stage, shared with the fused residual add."""
    p, k, cols = blk.partitions, blk.per_partition, yt.shape[-1]
    rstd = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=rstd, data=sumsq, op0=nl.multiply, operand0=1.0 / cols,
                       op1=nl.add, operand1=float(eps))
    nisa.tensor_scalar(dst=rstd, data=rstd, op0=nl.rsqrt, operand0=None)
    for j in range(k):
        scale_rows(yt[:, j, :], yt[:, j, :], rstd[:, j:j + 1], vector_cols)
    nisa.dma_copy(dst=blk.view(out), src=yt)


@jit
def layernorm(x, weight, bias, eps: float = LN_EPS, rows_per_partition: int = 2,
              psum_cols: int = 1024, scalar_stats_eighths: int = 0):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis of x [rows, cols]
    (population variance); weight, bias [cols]."""
    rows, cols = x.shape
    dtype = x.dtype
    out = nl.ndarray(x.shape, dtype, buffer=nl.shared_hbm)
    w = _row_tile(weight, cols, dtype)
    b = _row_tile(bias, cols, dtype)
    ident = nl.ndarray((pmax(), pmax()), dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=ident, src=nl.shared_identity_matrix(pmax(), dtype=dtype))
    fmax = nl.tile_size.bn_stats_fmax
    n_stats = (cols + fmax - 1) // fmax
    psum_cols = max(PSUM_BANK_FP32, psum_cols - psum_cols % PSUM_BANK_FP32)
    blocks = row_blocks(rows, fit_rows(rows_per_partition, cols, dtype.itemsize))

    def moments(item, _):
        blk, on_scalar = item
        p, k = blk.partitions, blk.per_partition
        xt = nl.ndarray((p, k, cols), dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=blk.view(x))
        mv = nl.ndarray((p, k, 2), nl.float32, buffer=nl.sbuf)  # mean, variance
        stats = nl.ndarray((p, k, n_stats * 6), nl.float32, buffer=nl.sbuf)
        ex2 = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)  # mean of x^2 (Scalar rows)
        for j in range(k):
            if on_scalar[j]:
                _scalar_moments(xt[:, j, :], mv[:, j, 0:1], ex2[:, j:j + 1])
                continue
            for c in range(n_stats):
                lo = c * fmax
                nisa.bn_stats(dst=stats[:, j, c * 6:c * 6 + 6],
                              data=xt[:, j, lo:min(cols, lo + fmax)])
        return xt, stats, ex2, mv

    def centre(item, carry):
        blk, on_scalar = item
        xt, stats, ex2, mv = carry
        p, k = blk.partitions, blk.per_partition
        for j in range(k):
            if on_scalar[j]:  # var = E[x^2] - mean^2
                nisa.scalar_tensor_tensor(dst=mv[:, j, 1:2], data=mv[:, j, 0:1],
                                          op0=nl.multiply, operand0=mv[:, j, 0:1],
                                          op1=nl.subtract, operand1=ex2[:, j:j + 1],
                                          reverse1=True)
            else:
                nisa.bn_aggr(dst=mv[:, j, :], data=stats[:, j, :])
        mean, var = mv[:, :, 0], mv[:, :, 1]
        rstd = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        # max(var, 0): E[x^2] - mean^2 can round below zero for near-constant rows
        nisa.tensor_scalar(dst=rstd, data=var, op0=nl.maximum, operand0=0.0, op1=nl.add,
                           operand1=float(eps))
        nisa.tensor_scalar(dst=rstd, data=rstd, op0=nl.rsqrt, operand0=None)
        std = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=std, data=rstd)
        mean_hi = nl.ndarray((p, k), dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=mean_hi, src=mean)
        residue = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)  # mean_hi - mean
        nisa.tensor_tensor(dst=residue, data1=mean_hi, data2=mean, op=nl.subtract)
        t = nl.ndarray((p, k, cols), dtype, buffer=nl.sbuf)
        diags = []
        for j in range(k):
            nisa.scalar_tensor_tensor(dst=t[:, j, :], data=xt[:, j, :], op0=nl.subtract,
                                      operand0=mean_hi[:, j:j + 1], op1=nl.multiply,
                                      operand1=w[0:p])
            # diagonal stationaries on the Scalar engine (the Vector engine is busier)
            d_std = nl.ndarray((p, p), dtype, buffer=nl.sbuf)
            nisa.activation(dst=d_std, op=nl.copy, data=ident[0:p, 0:p],
                            scale=std[:, j:j + 1])
            d_res = nl.ndarray((p, p), dtype, buffer=nl.sbuf)
            nisa.activation(dst=d_res, op=nl.copy, data=ident[0:p, 0:p],
                            scale=residue[:, j:j + 1])
            diags.append((d_std, d_res))
        return xt, t, rstd, diags

    def affine(item, carry):
        blk, _ = item
        xt, t, rstd, diags = carry
        p, k = blk.partitions, blk.per_partition
        for j in range(k):
            d_std, d_res = diags[j]
            for c0 in range(0, cols, psum_cols):
                width = min(psum_cols, cols - c0)
                acc = nl.ndarray((p, width), nl.float32, buffer=nl.psum)
                for m0 in range(0, width, PSUM_BANK_FP32):  # one matmul group per bank
                    m1 = min(width, m0 + PSUM_BANK_FP32)
                    cs = slice(c0 + m0, c0 + m1)
                    nisa.nc_matmul(dst=acc[:, m0:m1], stationary=ident[0:p, 0:p],
                                   moving=t[:, j, cs])
                    nisa.nc_matmul(dst=acc[:, m0:m1], stationary=d_std, moving=b[0:p, cs])
                    nisa.nc_matmul(dst=acc[:, m0:m1], stationary=d_res, moving=w[0:p, cs])
                # y = rstd * (t + std * b + residue * w) while moving PSUM back to SBUF
                nisa.activation(dst=xt[:, j, c0:c0 + width], op=nl.copy, data=acc,
                                scale=rstd[:, j:j + 1])
        nisa.dma_copy(dst=blk.view(out), src=xt)

    pipeline(_with_stats_engine(blocks, scalar_stats_eighths), moments, centre, affine)
    return out


def _with_stats_engine(blocks, scalar_eighths: int) -> list:
    """(block, per-slot flags): True where the Scalar engine computes that row's moments,
    spread evenly so that scalar_eighths / 8 of all rows go to it."""
    if not 0 <= scalar_eighths <= 8:
        raise ValueError(f"scalar_stats_eighths must be in 0..8, got {scalar_eighths}")
    items, g = [], 0
    for blk in blocks:
        flags = tuple((g + j + 1) * scalar_eighths // 8 > (g + j) * scalar_eighths // 8
                      for j in range(blk.per_partition))
        items.append((blk, flags))
        g += blk.per_partition
    return items


def _scalar_moments(row, mean, ex2) -> None:
    """mean[P, 1] and ex2[P, 1] = mean of x^2 of row [P, cols] from two Scalar-engine passes
    (the activation scales by 1/cols, resp. 1/sqrt(cols), and the reduce registers sum)."""
    cols = row.shape[1]
    row_sum(row, nl.copy, 1.0 / cols, mean)
    row_sum(row, nl.square, float(cols) ** -0.5, ex2)


def row_sum(row, op, scale: float, result) -> None:
    """result[P, 1] = sum over the free axis of op(scale * row) on the Scalar engine, via the
    activation reduce registers. The activation's element output is not needed: it goes to
    a scratch tile of at most SCRATCH_COLS columns, the registers accumulating across
    column chunks, so wide rows need no second full-width tile."""
    p, cols = row.shape
    width = min(cols, SCRATCH_COLS)
    scratch = nl.ndarray((p, width), row.dtype, buffer=nl.sbuf)
    for c0 in range(0, cols, width):
        c1 = min(cols, c0 + width)
        last = c1 == cols
        nisa.activation(dst=scratch[:, 0:c1 - c0], op=op, data=row[:, c0:c1], scale=scale,
                        reduce_op=nl.add, reduce_res=result if last else None,
                        reduce_cmd=(nisa.reduce_cmd.reset_reduce if c0 == 0
                                    else nisa.reduce_cmd.reduce))


def rmsnorm_reference(x: np.ndarray, weight: np.ndarray, eps: float = RMS_EPS,
                      **_: object) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight in float64."""
    v = f64(x)
    return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * f64(weight)


def layernorm_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                        eps: float = LN_EPS, **_: object) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * weight + bias in float64 (population variance)."""
    v = f64(x)
    mean = v.mean(axis=-1, keepdims=True)
    var = v.var(axis=-1, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * f64(weight) + f64(bias)


def _vector(s, dtype, rng, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, s["cols"]).astype(np.float32).astype(storage_of(dtype))


def _rms_inputs(s, dtype, rng):
    return random_rows(s, dtype, rng), _vector(s, dtype, rng, 0.5, 1.5)


def _ln_inputs(s, dtype, rng):
    return (random_rows(s, dtype, rng, loc=0.5, scale=2.0), _vector(s, dtype, rng, 0.5, 1.5),
            _vector(s, dtype, rng, -0.5, 0.5))


def _bytes(s, itemsize: int, vectors: int) -> float:
    # x in, y out, and each [cols] parameter vector once
    return (2 * s["rows"] + vectors) * s["cols"] * itemsize


RMSNORM = register(KernelDef(
    op=Op.RMSNORM, name="rmsnorm", kernel=rmsnorm, shape_keys=("rows", "cols"),
    make_inputs=_rms_inputs, reference=rmsnorm_reference,
    flops=lambda s: 4.0 * s["rows"] * s["cols"],  # square, sum, two multiplies
    hbm_bytes=lambda s, itemsize: _bytes(s, itemsize, 1),
    tunables={"rows_per_partition": (1, 2, 4), "vector_eighths": (2, 3, 4, 5, 6, 7)},
    defaults={"rows_per_partition": 2, "vector_eighths": 4}))

LAYERNORM = register(KernelDef(
    op=Op.LAYERNORM, name="layernorm", kernel=layernorm, shape_keys=("rows", "cols"),
    make_inputs=_ln_inputs, reference=layernorm_reference,
    flops=lambda s: 8.0 * s["rows"] * s["cols"],  # mean, variance, centre, scale, shift
    hbm_bytes=lambda s, itemsize: _bytes(s, itemsize, 2),
    tunables={"rows_per_partition": (1, 2, 4), "psum_cols": (512, 1024, 2048),
              "scalar_stats_eighths": (0, 1, 2, 3, 4)},
    defaults={"rows_per_partition": 2, "psum_cols": 1024, "scalar_stats_eighths": 0}))
