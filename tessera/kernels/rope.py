"""Rotary position embedding, rotate-half convention, given the cos/sin tables.

    x [S, D] (or [H, S, D]), cos/sin [S, D/2], h = D/2:
    out[:, :h] = x[:, :h] * cos - x[:, h:] * sin
    out[:, h:] = x[:, h:] * cos + x[:, :h] * sin

Positions (rows) sit on partitions, `rows_per_partition` consecutive positions each, so
every DMA is one contiguous HBM range. A block of cos/sin rows is loaded once and reused for
every head. The rotation is six Vector-engine operations on [P, k, h] views (four products,
a difference and a sum), pipelined across blocks.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.elementwise import f64, fit_rows, pipeline, row_blocks, storage_of
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl


@jit
def rope(x, cos, sin, rows_per_partition: int = 4):
    """Rotate-half RoPE of x [S, D] or [H, S, D] with cos/sin [S, D/2]; out like x."""
    heads = x.shape[0] if len(x.shape) == 3 else 1
    seq, dim = x.shape[-2], x.shape[-1]
    if dim % 2 or tuple(cos.shape) != (seq, dim // 2) or tuple(sin.shape) != (seq, dim // 2):
        raise ValueError(f"rope: x {list(x.shape)} needs an even last dimension and cos/sin "
                         f"of shape [{seq}, {dim // 2}], got {list(cos.shape)} and "
                         f"{list(sin.shape)}")
    half = dim // 2
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    xs = [x[i] for i in range(heads)] if len(x.shape) == 3 else [x]
    outs = [out[i] for i in range(heads)] if len(x.shape) == 3 else [out]
    items = [(blk, i) for blk in row_blocks(seq, fit_rows(rows_per_partition, dim, 4))
             for i in range(heads)]
    tables = {}  # block start -> (cos, sin) tiles, loaded for the block's first head

    def load(item, _):
        blk, i = item
        p, k = blk.partitions, blk.per_partition
        if i == 0:
            ct = nl.ndarray((p, k, half), cos.dtype, buffer=nl.sbuf)
            st = nl.ndarray((p, k, half), sin.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=ct, src=blk.view(cos))
            nisa.dma_copy(dst=st, src=blk.view(sin))
            tables[blk.start] = (ct, st)
        xt = nl.ndarray((p, k, dim), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=blk.view(xs[i]))
        return xt

    def rotate(item, xt):
        blk, i = item
        p, k = blk.partitions, blk.per_partition
        ct, st = tables[blk.start]
        x1, x2 = xt[:, :, 0:half], xt[:, :, half:dim]
        yt = nl.ndarray((p, k, dim), x.dtype, buffer=nl.sbuf)
        tmp = nl.ndarray((p, k, dim), nl.float32, buffer=nl.sbuf)
        y1, y2 = yt[:, :, 0:half], yt[:, :, half:dim]
        t1, t2 = tmp[:, :, 0:half], tmp[:, :, half:dim]
        nisa.tensor_tensor(dst=t1, data1=x1, data2=ct, op=nl.multiply)  # x1 cos
        nisa.tensor_tensor(dst=t2, data1=x2, data2=st, op=nl.multiply)  # x2 sin
        nisa.tensor_tensor(dst=y1, data1=t1, data2=t2, op=nl.subtract)
        nisa.tensor_tensor(dst=t1, data1=x2, data2=ct, op=nl.multiply)  # x2 cos
        nisa.tensor_tensor(dst=t2, data1=x1, data2=st, op=nl.multiply)  # x1 sin
        nisa.tensor_tensor(dst=y2, data1=t1, data2=t2, op=nl.add)
        nisa.dma_copy(dst=blk.view(outs[i]), src=yt)

    pipeline(items, load, rotate)
    return out


def rope_reference(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, **_: object) -> np.ndarray:
    """Rotate-half RoPE in float64 (cos/sin broadcast over a leading head axis)."""
    v, c, s = f64(x), f64(cos), f64(sin)
    h = v.shape[-1] // 2
    x1, x2 = v[..., :h], v[..., h:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def rope_tables(seq: int, dim: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """Standard cos/sin tables [seq, dim/2] in float32: angle = pos / base^(2i/dim)."""
    inv = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    angles = np.arange(seq, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _make_inputs(s, dtype, rng):
    heads, seq, dim = s["heads"], s["seq"], s["dim"]
    x = rng.standard_normal((heads, seq, dim)).astype(np.float32).astype(storage_of(dtype))
    c, sn = rope_tables(seq, dim)
    return x, c.astype(storage_of(dtype)), sn.astype(storage_of(dtype))


ROPE = register(KernelDef(
    op=Op.ROPE, name="rope", kernel=rope, shape_keys=("heads", "seq", "dim"),
    make_inputs=_make_inputs, reference=rope_reference,
    flops=lambda s: 3.0 * s["heads"] * s["seq"] * s["dim"],  # 2 products + 1 add per output
    hbm_bytes=lambda s, itemsize: (2 * s["heads"] + 1) * s["seq"] * s["dim"] * itemsize,
    tunables={"rows_per_partition": (1, 2, 4, 8)}, defaults={"rows_per_partition": 4}))
