"""Residual add fused with the RMSNorm that reads it: h = x + residual, y = rmsnorm(h).

A pre-norm decoder adds each sub-layer's output to the residual stream and normalises the
sum for the next sub-layer. Run as two kernels, the sum goes to HBM and comes straight
back (read x and residual, write h; read h, write y: five row volumes); fused, h is
normalised while it is still in SBUF (read two, write two: four). Both outputs are
returned, `(h, y)`, since the stream continues from h. The layout and engine split follow
`norms.rmsnorm`; the add is one more Vector pass per block.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import f64, fit_rows, pipeline, random_rows, row_blocks
from tessera.kernels.norms import (
    RMS_EPS,
    _rms_inputs,
    _row_tile,
    rms_scale_and_store,
    rmsnorm_reference,
    row_sum,
)
from tessera.kernels.registry import KernelDef, Op, register
from tessera.kernels.softmax import split_columns
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl


@jit
def add_rmsnorm(x, residual, weight, eps: float = RMS_EPS, rows_per_partition: int = 2,
                vector_eighths: int = 4):
    """(h, y): h = x + residual, y = h / sqrt(mean(h^2, axis=-1) + eps) * weight, for x and
    residual [rows, cols] and weight [cols]; h is rounded to x's dtype before the norm, as
    the two ops compute it one after the other."""
    rows, cols = x.shape
    total = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    w = _row_tile(weight, cols, x.dtype)
    vcols = split_columns(cols, vector_eighths)
    # three row tiles live per block (x, residual, h*w): a third less room per partition
    k_max = fit_rows(rows_per_partition, cols, 2 * x.dtype.itemsize)

    def add_and_stats(blk, _):
        p, k = blk.partitions, blk.per_partition
        xt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        rt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=blk.view(x))
        nisa.dma_copy(dst=rt, src=blk.view(residual))
        sumsq = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
        yt = nl.ndarray((p, k, cols), x.dtype, buffer=nl.sbuf)
        for j in range(k):
            nisa.tensor_tensor(dst=xt[:, j, :], data1=xt[:, j, :], data2=rt[:, j, :],
                               op=nl.add)
            row_sum(xt[:, j, :], nl.square, 1.0, sumsq[:, j:j + 1])
            nisa.tensor_tensor(dst=yt[:, j, :], data1=xt[:, j, :], data2=w[0:p],
                               op=nl.multiply)
        nisa.dma_copy(dst=blk.view(total), src=xt)
        return yt, sumsq

    def normalise(blk, carry):
        rms_scale_and_store(blk, *carry, eps, vcols, out)

    pipeline(row_blocks(rows, k_max), add_and_stats, normalise)
    return total, out


def add_rmsnorm_reference(x: np.ndarray, residual: np.ndarray, weight: np.ndarray,
                          eps: float = RMS_EPS, **_: object) -> tuple[np.ndarray, np.ndarray]:
    """(x + residual rounded to x's dtype, its RMSNorm) in float64."""
    total = (f64(x) + f64(residual)).astype(x.dtype)
    return f64(total), rmsnorm_reference(total, weight, eps)


def _inputs(s, dtype, rng):
    x, weight = _rms_inputs(s, dtype, rng)
    return x, random_rows(s, dtype, rng), weight


ADD_RMSNORM = register(KernelDef(
    op=Op.ADD_RMSNORM, name="add_rmsnorm", kernel=add_rmsnorm, shape_keys=("rows", "cols"),
    make_inputs=_inputs, reference=add_rmsnorm_reference,
    flops=lambda s: 5.0 * s["rows"] * s["cols"],  # add, square, sum, two multiplies
    # x and residual in, h and y out, the weight once
    hbm_bytes=lambda s, itemsize: (4 * s["rows"] + 1) * s["cols"] * itemsize,
    tunables={"rows_per_partition": (1, 2, 4), "vector_eighths": (2, 3, 4, 5, 6, 7)},
    defaults={"rows_per_partition": 2, "vector_eighths": 4}))
