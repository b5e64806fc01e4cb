"""Embedding gather: out[i, :] = table[ids[i], :], with indirect (runtime-offset) DMAs.

Each 128-id tile loads its ids into SBUF, gathers the rows straight from HBM with one
indirect DMA (one descriptor per row of D contiguous elements), and stores the tile. Tiles
are allocated inside the loop so the gather of tile i+1 overlaps the store of tile i.
Traffic is the compulsory minimum: ids and the gathered rows in, the result out.
"""

from __future__ import annotations

import numpy as np

from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype


@jit
def embedding(ids, table, rows_per_tile: int | None = None):
    """ids [N, 1] int32 (HBM), table [V, D] -> out [N, D] in table's dtype; tiles of
    `rows_per_tile` tokens (default: one per partition of the core)."""
    rows_per_tile = rows_per_tile or pmax()
    n = ids.shape[0]
    d = table.shape[1]
    out = nl.ndarray((n, d), table.dtype, buffer=nl.shared_hbm)
    for start in range(0, n, rows_per_tile):
        rows = min(rows_per_tile, n - start)
        idx = nl.ndarray((rows, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids[start:start + rows])
        tile = nl.ndarray((rows, d), table.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, table.ap([[d, rows], [1, d]], 0, vector_offset=idx,
                                     indirect_dim=0))
        nisa.dma_copy(out[start:start + rows], tile)
    return out


def _make_inputs(shapes, dtype, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    ids = rng.integers(0, shapes["vocab"], (shapes["tokens"], 1)).astype(np.int32)
    table = rng.standard_normal((shapes["vocab"], shapes["dim"])).astype(np.float32)
    return ids, table.astype(to_dtype(dtype).storage)


def _reference(ids: np.ndarray, table: np.ndarray, **_: object) -> np.ndarray:
    return table[ids[:, 0]].astype(np.float64)


EMBEDDING = register(KernelDef(
    op=Op.EMBEDDING,
    name="embedding",
    kernel=embedding,
    shape_keys=("tokens", "vocab", "dim"),
    make_inputs=_make_inputs,
    reference=_reference,
    flops=lambda s: 0.0,
    hbm_bytes=lambda s, itemsize: s["tokens"] * 4 + 2 * s["tokens"] * s["dim"] * itemsize,
    tunables={"rows_per_tile": (32, 64, 128)},
    defaults={"rows_per_tile": None},  # the kernel's own choice: one token per partition
))
