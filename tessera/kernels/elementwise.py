"""Element-wise kernels: gelu (exact and tanh), silu, swiglu = silu(a) * b, residual add.

Element-wise work does not care which element sits on which partition, so every input is
flattened and cut into contiguous pieces of 128 x `chunk` elements, `chunk` consecutive
elements per partition: every DMA is one contiguous HBM range (row gathers stream slower)
and large (each DMA engine transfer pays a fixed overhead; 16 KiB per partition amortises
it).
Tiles are allocated inside the loop so the load of tile i+1 overlaps the compute of tile i,
and results are written in place to halve SBUF use.

Napkin math (8192 x 4096 bf16, trn1, one core): 64 MiB in + 64 MiB out at 410 GB/s is
327 us; one Scalar-engine pass over 256 Ki elements per partition is 187 us, so the
activations are HBM-bound with room to spare. Also home of the row-tiling helpers the
row-wise kernels (norms, softmax, rope, cross-entropy) share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tessera.kernels.hardware import pmax
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype
from tessera.nki.tensor import NkiTensor

DEFAULT_CHUNK = 8192  # elements per partition per tile: 16 KiB of bf16, 32 KiB of fp32
CHUNKS = (2048, 4096, 8192, 16384)


# ---------------------------------------------------------------- tiling helpers (shared)

@dataclass(frozen=True)
class RowBlock:
    """Rows [start, start + partitions * per_partition) of a [rows, cols] tensor, laid out
    with `per_partition` consecutive rows on each partition (one contiguous HBM run each)."""

    start: int
    partitions: int
    per_partition: int

    @property
    def rows(self) -> int:
        return self.partitions * self.per_partition

    def view(self, t: NkiTensor) -> NkiTensor:
        """The block of HBM tensor t [rows, cols] as [partitions, per_partition, cols]."""
        return t[self.start:self.start + self.rows].reshape(
            (self.partitions, self.per_partition, t.shape[-1]))


def row_blocks(rows: int, rows_per_partition: int = 1) -> tuple[RowBlock, ...]:
    """Cover `rows` with blocks of up to 128 partitions x `rows_per_partition` rows.

    Full blocks come first; what remains uses fewer rows per partition (and finally a
    ragged block of < 128 single rows), so any row count works.
    """
    if rows_per_partition < 1:
        raise ValueError(f"rows_per_partition must be >= 1, got {rows_per_partition}")
    blocks = []
    start = 0
    partitions = pmax()
    while start < rows:
        left = rows - start
        k = max(1, min(rows_per_partition, left // partitions))
        p = min(partitions, left // k)
        blocks.append(RowBlock(start, p, k))
        start += p * k
    return tuple(blocks)


@dataclass(frozen=True)
class FlatTile:
    """One tile of a flattened tensor: the contiguous elements [start, start + partitions *
    free), `free` consecutive elements per partition (one contiguous HBM range)."""

    start: int
    partitions: int
    free: int

    def view(self, t: NkiTensor) -> NkiTensor:
        """This tile of HBM tensor t (any shape, contiguous) as [partitions, free]."""
        flat = t.reshape((t.size,))
        end = self.start + self.partitions * self.free
        return flat[self.start:end].reshape((self.partitions, self.free))


def flat_tiles(size: int, chunk: int) -> tuple[FlatTile, ...]:
    """Contiguous tiles covering `size` elements: [128, chunk] tiles, then one [128, f < chunk]
    tile, then the < 128-element remainder on one partition. Each tile is a single
    contiguous HBM range (a gather of rows streams slower from HBM)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    tiles = []
    start = 0
    p = pmax()
    while size - start >= p:
        free = min(chunk, (size - start) // p)
        tiles.append(FlatTile(start, p, free))
        start += p * free
    if start < size:
        tiles.append(FlatTile(start, 1, size - start))
    return tuple(tiles)


ROW_BYTES_PER_PARTITION = 16384  # cap on rows_per_partition * cols * itemsize per tile


def fit_rows(rows_per_partition: int, cols: int, itemsize: int) -> int:
    """rows_per_partition, reduced so one tile stays within ROW_BYTES_PER_PARTITION."""
    return max(1, min(rows_per_partition, ROW_BYTES_PER_PARTITION // max(1, cols * itemsize)))


def pipeline(items, *stages) -> None:
    """Software-pipeline a loop: stage s of item i is issued at step i + s, latest stage
    first, so in program order stage 1 of item i-1 comes before stage 0 of item i.

    Engines run their instructions in program order; without the skew an engine waiting for
    another engine's result of item i would stall although other work is ready. Issuing the
    later stages first means their inputs were produced a whole step earlier. Each stage is
    called as stage(item, carry) with the previous stage's return value.
    """
    carry: dict[int, object] = {}
    for step in range(len(items) + len(stages) - 1):
        for s in reversed(range(len(stages))):
            stage = stages[s]
            i = step - s
            if 0 <= i < len(items):
                carry[i] = stage(items[i], carry.get(i))


def storage_of(dtype: object) -> np.dtype:
    """The numpy storage dtype of a kernel-language dtype (name, DType or numpy dtype)."""
    return np.dtype(to_dtype(dtype).storage)


def random_rows(shapes, dtype, rng: np.random.Generator, loc: float = 0.0,
                scale: float = 1.0, key: str = "cols") -> np.ndarray:
    """A [rows, shapes[key]] normal array in `dtype` (helper for make_inputs)."""
    x = rng.normal(loc, scale, (shapes["rows"], shapes[key])).astype(np.float32)
    return x.astype(storage_of(dtype))


def f64(x: np.ndarray) -> np.ndarray:
    """Host array as float64 (references compute in float64)."""
    return np.asarray(x).astype(np.float64)


# ---------------------------------------------------------------- kernels

def _unary(x, op, chunk: int):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    for t in flat_tiles(x.size, chunk):
        tile = nl.ndarray((t.partitions, t.free), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=tile, src=t.view(x))
        nisa.activation(dst=tile, op=op, data=tile)
        nisa.dma_copy(dst=t.view(out), src=tile)
    return out


@jit
def gelu(x, chunk: int = DEFAULT_CHUNK):
    """out = x * Phi(x) (exact, erf-based GELU) on the Scalar engine, any shape."""
    return _unary(x, nl.gelu, chunk)


@jit
def gelu_tanh(x, chunk: int = DEFAULT_CHUNK):
    """out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), any shape."""
    return _unary(x, nl.gelu_apprx_tanh, chunk)


@jit
def silu(x, chunk: int = DEFAULT_CHUNK):
    """out = x * sigmoid(x), any shape."""
    return _unary(x, nl.silu, chunk)


@jit
def swiglu(a, b, chunk: int = DEFAULT_CHUNK):
    """out = silu(a) * b (same shapes): silu on the Scalar engine, the product on Vector."""
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    for t in flat_tiles(a.size, chunk):
        ta = nl.ndarray((t.partitions, t.free), a.dtype, buffer=nl.sbuf)
        tb = nl.ndarray((t.partitions, t.free), b.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=ta, src=t.view(a))
        nisa.dma_copy(dst=tb, src=t.view(b))
        nisa.activation(dst=ta, op=nl.silu, data=ta)
        nisa.tensor_tensor(dst=ta, data1=ta, data2=tb, op=nl.multiply)
        nisa.dma_copy(dst=t.view(out), src=ta)
    return out


@jit
def residual_add(x, residual, chunk: int = DEFAULT_CHUNK):
    """out = x + residual (same shapes), one Vector-engine add per tile."""
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    for t in flat_tiles(x.size, chunk):
        tx = nl.ndarray((t.partitions, t.free), x.dtype, buffer=nl.sbuf)
        tr = nl.ndarray((t.partitions, t.free), residual.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=tx, src=t.view(x))
        nisa.dma_copy(dst=tr, src=t.view(residual))
        nisa.tensor_tensor(dst=tx, data1=tx, data2=tr, op=nl.add)
        nisa.dma_copy(dst=t.view(out), src=tx)
    return out


# ---------------------------------------------------------------- references

_ERF = np.frompyfunc(math.erf, 1, 1)


def gelu_reference(x: np.ndarray, **_: object) -> np.ndarray:
    """Exact GELU in float64."""
    v = f64(x)
    return 0.5 * v * (1.0 + _ERF(v / math.sqrt(2.0)).astype(np.float64))


def gelu_tanh_reference(x: np.ndarray, **_: object) -> np.ndarray:
    """tanh-approximated GELU in float64."""
    v = f64(x)
    return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))


def silu_reference(x: np.ndarray, **_: object) -> np.ndarray:
    """x * sigmoid(x) in float64."""
    v = f64(x)
    return v / (1.0 + np.exp(-v))


def swiglu_reference(a: np.ndarray, b: np.ndarray, **_: object) -> np.ndarray:
    """silu(a) * b in float64."""
    return silu_reference(a) * f64(b)


def residual_add_reference(x: np.ndarray, residual: np.ndarray, **_: object) -> np.ndarray:
    """x + residual in float64."""
    return f64(x) + f64(residual)


# ---------------------------------------------------------------- registration

def _one(shapes, dtype, rng):
    return (random_rows(shapes, dtype, rng, scale=2.0),)


def _two(shapes, dtype, rng):
    return (random_rows(shapes, dtype, rng, scale=2.0), random_rows(shapes, dtype, rng))


def _elems(s) -> int:
    return s["rows"] * s["cols"]


def _register(op: Op, kernel, reference, inputs: int, flops_per_element: float) -> KernelDef:
    return register(KernelDef(
        op=op, name=op.value, kernel=kernel, shape_keys=("rows", "cols"),
        make_inputs=_one if inputs == 1 else _two, reference=reference,
        flops=lambda s: flops_per_element * _elems(s),
        # read every input once, write the output once
        hbm_bytes=lambda s, itemsize: (inputs + 1) * _elems(s) * itemsize,
        tunables={"chunk": CHUNKS}, defaults={"chunk": DEFAULT_CHUNK}))


# FLOPs per element are nominal (an activation counts as a few operations)
GELU = _register(Op.GELU, gelu, gelu_reference, 1, 8.0)
GELU_TANH = _register(Op.GELU_TANH, gelu_tanh, gelu_tanh_reference, 1, 8.0)
SILU = _register(Op.SILU, silu, silu_reference, 1, 4.0)
SWIGLU = _register(Op.SWIGLU, swiglu, swiglu_reference, 2, 5.0)
RESIDUAL_ADD = _register(Op.RESIDUAL_ADD, residual_add, residual_add_reference, 2, 1.0)
