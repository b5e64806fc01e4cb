"""2-D and batched transpose: out[C, R] = x[R, C]^T, out[B, C, R] = x[B, R, C]^T, bit-exact.

The Tensor engine transposes 128 x 128 blocks into PSUM (in x's dtype, so no rounding); the
Vector and Scalar engines take turns copying PSUM back to SBUF. What costs is the DMA: a
transpose turns input rows into output columns, so a naive 128 x 128 tiling moves 256-byte
runs (bf16) and the per-descriptor overhead dominates. Instead each step works on a
[block_rows, block_cols] window: it is loaded as 128-row strips with block_cols-element runs,
and stored as 128-row strips of the output with block_rows-element runs, both long.
Up to four 128 x 128 transposes share one PSUM tile (one bank), so each copy-back
instruction moves 512 elements per partition.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import pipeline, storage_of
from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl

DEFAULT_BLOCK_ROWS = 1024
DEFAULT_BLOCK_COLS = 4096
PER_PSUM_TILE = 4  # 128 x 128 transposes gathered in one PSUM tile (4 x 128 fp32 = a bank)


def _windows(rows: int, cols: int, block_rows: int, block_cols: int) -> list:
    if block_rows < 1 or block_cols < 1:
        raise ValueError(f"block sizes must be positive, got {block_rows} x {block_cols}")
    return [(r0, min(block_rows, rows - r0), c0, min(block_cols, cols - c0))
            for r0 in range(0, rows, block_rows) for c0 in range(0, cols, block_cols)]


def _transpose_into(out, x, block_rows: int, block_cols: int) -> None:
    """out [C, R] (HBM) = x [R, C] (HBM) transposed, window by window, pipelined."""
    rows, cols = x.shape
    dtype = x.dtype
    evacuations = [0]  # alternates the copy-back engine

    def load(win, _):
        r0, nr, c0, nc = win
        strips = []
        for s0 in range(0, nr, pmax()):
            p = min(pmax(), nr - s0)
            strip = nl.ndarray((p, nc), dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=strip, src=x[r0 + s0:r0 + s0 + p, c0:c0 + nc])
            strips.append(strip)
        return strips

    def turn(win, strips):
        r0, nr, c0, nc = win
        for q0 in range(0, nc, pmax()):  # one 128-row strip of the output window
            q = min(pmax(), nc - q0)
            ot = nl.ndarray((q, nr), dtype, buffer=nl.sbuf)
            for g0 in range(0, len(strips), PER_PSUM_TILE):
                group = strips[g0:g0 + PER_PSUM_TILE]
                width = sum(s.shape[0] for s in group)
                acc = nl.ndarray((q, width), dtype, buffer=nl.psum)
                off = 0
                for s in group:
                    p = s.shape[0]
                    nisa.nc_transpose(dst=acc[:, off:off + p], data=s[:, q0:q0 + q])
                    off += p
                dst = ot[:, g0 * pmax():g0 * pmax() + width]
                if evacuations[0] % 2:
                    nisa.activation(dst=dst, op=nl.copy, data=acc)
                else:
                    nisa.tensor_copy(dst=dst, src=acc)
                evacuations[0] += 1
            nisa.dma_copy(dst=out[c0 + q0:c0 + q0 + q, r0:r0 + nr], src=ot)

    pipeline(_windows(rows, cols, block_rows, block_cols), load, turn)


@jit
def transpose(x, block_rows: int = DEFAULT_BLOCK_ROWS, block_cols: int = DEFAULT_BLOCK_COLS):
    """out [C, R] = x [R, C]^T (bit-exact, any R and C)."""
    rows, cols = x.shape
    out = nl.ndarray((cols, rows), x.dtype, buffer=nl.shared_hbm)
    _transpose_into(out, x, block_rows, block_cols)
    return out


@jit
def batched_transpose(x, block_rows: int = DEFAULT_BLOCK_ROWS,
                      block_cols: int = DEFAULT_BLOCK_COLS):
    """out [B, C, R] = x [B, R, C] with the last two axes swapped (bit-exact)."""
    batch, rows, cols = x.shape
    out = nl.ndarray((batch, cols, rows), x.dtype, buffer=nl.shared_hbm)
    for i in range(batch):
        _transpose_into(out[i], x[i], block_rows, block_cols)
    return out


def transpose_reference(x: np.ndarray, **_: object) -> np.ndarray:
    """x with its last two axes swapped (same dtype: the transpose is exact)."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(x), -1, -2))


def _inputs(shape: tuple[int, ...], dtype, rng) -> tuple[np.ndarray]:
    return (rng.standard_normal(shape).astype(np.float32).astype(storage_of(dtype)),)


_TUNABLES = {"block_rows": (512, 1024, 2048), "block_cols": (512, 1024, 2048, 4096)}
_DEFAULTS = {"block_rows": DEFAULT_BLOCK_ROWS, "block_cols": DEFAULT_BLOCK_COLS}

TRANSPOSE = register(KernelDef(
    op=Op.TRANSPOSE, name="transpose", kernel=transpose, shape_keys=("rows", "cols"),
    make_inputs=lambda s, dtype, rng: _inputs((s["rows"], s["cols"]), dtype, rng),
    reference=transpose_reference, flops=lambda s: 0.0,
    hbm_bytes=lambda s, itemsize: 2 * s["rows"] * s["cols"] * itemsize,
    tunables=_TUNABLES, defaults=_DEFAULTS))

BATCHED_TRANSPOSE = register(KernelDef(
    op=Op.BATCHED_TRANSPOSE, name="batched_transpose", kernel=batched_transpose,
    shape_keys=("batch", "rows", "cols"),
    make_inputs=lambda s, dtype, rng: _inputs((s["batch"], s["rows"], s["cols"]), dtype, rng),
    reference=transpose_reference, flops=lambda s: 0.0,
    hbm_bytes=lambda s, itemsize: 2 * s["batch"] * s["rows"] * s["cols"] * itemsize,
    tunables=_TUNABLES, defaults=_DEFAULTS))
