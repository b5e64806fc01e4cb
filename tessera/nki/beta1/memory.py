"""Beta-1 tensor creation and HBM transfers: ndarray/zeros/ones/full with block
dimensions, and `nl.load` / `nl.store` with masks.

From the Beta-1 pages: `nl.ndarray(shape, dtype, buffer=nl.sbuf, name="")` puts the
partition dimension first unless `nl.par_dim` marks a later one, whose leading dimensions
are then blocks (`tessera.nki.beta1.blocks`). `nl.load(src[idx], *, mask=None,
dtype=None)` returns a new SBUF tile of the index space's shape; `nl.store(dst[idx],
value, *, mask=None)` writes a tile to HBM, copying a PSUM value through SBUF first. Both
are one DMA each, cut to the mask's box.
"""

from __future__ import annotations

import operator

import numpy as np

from tessera.nki import creation, isa
from tessera.nki import dtypes as dt
from tessera.nki.beta1.allocators import use_buffer
from tessera.nki.beta1.blocks import BlockTensor, blocked
from tessera.nki.beta1.masking import run_masked
from tessera.nki.beta1.values import produce
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError
from tessera.nki.runtime import current, kernel_api
from tessera.nki.tensor import NkiTensor

# `nl.par_dim(n)` marks the partition dimension; in Beta-1 shapes the dimensions before it
# are block dimensions (split_blocks)
par_dim = creation.par_dim


def split_blocks(shape: object) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(block dims, tile shape) of a Beta-1 shape."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)  # type: ignore[arg-type]
    marks = [k for k, d in enumerate(dims) if isinstance(d, creation.par_dim)]
    if len(marks) > 1:
        raise KernelUsageError(f"shape {dims!r} has {len(marks)} nl.par_dim; a tensor has one "
                               "partition dimension")
    try:
        ints = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise KernelUsageError(f"shape must be a tuple of ints, got {shape!r}") from None
    k = marks[0] if marks else 0
    return ints[:k], ints[k:]


def _make(shape: object, make: object, buffer: object, name: str, dtype: object) -> object:
    blocks, tile_shape = split_blocks(shape)
    # an ncc allocator (`ncc.sbuf.mod_alloc(...)`) is checked against the tensor and noted;
    # the tiles are placed by the automatic allocator (allocators.use_buffer)
    buf = use_buffer(buffer, blocks, tile_shape, dtype)
    if not blocks or buf not in (Buffer.SBUF, Buffer.PSUM):
        return make(blocks + tile_shape, buf)  # type: ignore[operator]
    # One allocation per tile, as the pages describe block dimensions ("logical" tiles the
    # compiler places one by one, reusing storage across loop iterations), so that tiles
    # live in one iteration only are placed, reused and spilled one by one. (Folding the
    # blocks into one buffer matched the published blocked-matmul latency better, 7.08 vs
    # 7.87 ms against 6.97 ms, but made kernels whose blocked tensors exceed SBUF spill
    # whole tensors every iteration, or fail to place.)
    return blocked(blocks, lambda: make(tile_shape, buf), name or "blk")  # type: ignore[operator]


@kernel_api
def ndarray(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
            name: str = "", **kwargs: object) -> object:
    """A new uninitialised tensor, or a list of tiles when `nl.par_dim` is not first."""
    ctx = current()
    return _make(shape, lambda s, b: creation.new_tensor(ctx, s, dtype, b, name or None),
                 buffer, name, dtype)


def _psum_zeros(shape: tuple[int, ...], dtype: object, name: str) -> NkiTensor:
    """A zero PSUM tile whose fill waits for the first instruction that touches it: the
    tutorials' `acc = nl.zeros(..., buffer=nl.psum)` then `acc += nisa.nc_matmul(...)` is
    one accumulation group whose first matmul starts from zero (matmuls cannot accumulate
    onto memset PSUM on NeuronCore-v2/v3, so the compiler issues no memset: values.py)."""
    ctx = current()
    t = creation.new_tensor(ctx, shape, dtype, Buffer.PSUM, name or None)
    if t.storage.array is not None:
        t.storage.array.view(np.uint8).fill(0)
    t.storage.pending = lambda: isa.memset(NkiTensor.whole(t.storage), 0)
    return t


def _filled(shape: object, value: float, dtype: object, buffer: object, name: str) -> object:
    if value == 0 and use_buffer(buffer) is Buffer.PSUM:
        return _make(shape, lambda s, b: _psum_zeros(s, dtype, name), buffer, name, dtype)
    fill = {0: creation.zeros, 1: creation.ones}.get(value)  # type: ignore[call-overload]
    if fill is not None:
        return _make(shape, lambda s, b: fill(s, dtype, b, name or None), buffer, name, dtype)
    return _make(shape, lambda s, b: creation.full(s, value, dtype, b, name or None),
                 buffer, name, dtype)


@kernel_api
def zeros(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
          name: str = "", **kwargs: object) -> object:
    """A tensor of zeros (each tile of a blocked tensor: one memset)."""
    return _filled(shape, 0, dtype, buffer, name)


@kernel_api
def ones(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
         name: str = "", **kwargs: object) -> object:
    """A tensor of ones."""
    return _filled(shape, 1, dtype, buffer, name)


@kernel_api
def full(shape: object, fill_value: float, dtype: object = dt.float32,
         buffer: object = Buffer.SBUF, name: str = "", **kwargs: object) -> object:
    """A tensor filled with `fill_value`."""
    return _filled(shape, fill_value, dtype, buffer, name)


@kernel_api
def zeros_like(a: object, dtype: object = None, buffer: object = Buffer.SBUF,
               name: str = "", **kwargs: object) -> object:
    """Zeros of `a`'s shape (and dtype unless given)."""
    return zeros(a.shape, dtype or a.dtype, buffer, name)  # type: ignore[attr-defined]


@kernel_api
def empty_like(a: object, dtype: object = None, buffer: object = Buffer.SBUF,
               name: str = "", **kwargs: object) -> object:
    """An uninitialised tensor of `a`'s shape (and dtype unless given)."""
    return ndarray(a.shape, dtype or a.dtype, buffer, name)  # type: ignore[attr-defined]


def _tensor(x: object, what: str, fn: str) -> NkiTensor:
    if isinstance(x, BlockTensor):
        raise KernelUsageError(f"{fn}: {what} {x.name} has block dimensions; index a tile "
                               "(t[i]) first")
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"{fn}: {what} must be a tensor, got {type(x).__name__}")
    return x


@kernel_api
def load(src: object, *, mask: object = None, dtype: object = None,
         **kwargs: object) -> NkiTensor:
    """`nl.load(src[idx], mask=None, dtype=None)`: a new SBUF tile of src's index space,
    one DMA (cast to `dtype` when given)."""
    view = _tensor(src, "src", "nl.load")
    if view.buffer.on_chip:
        raise KernelUsageError(f"nl.load reads HBM; {view.name} is in {view.buffer.value} "
                               "(copy tiles with nl.copy)")

    def compute(dst: NkiTensor, _acc: bool) -> None:
        run_masked(mask, dst, [view], lambda d, s: isa.dma_copy(d, s), "nl.load")

    return produce(view.shape, dtype or view.dtype, Buffer.SBUF, compute)


@kernel_api
def store(dst: object, value: object, *, mask: object = None, **kwargs: object) -> None:
    """`nl.store(dst[idx], value, mask=None)`: one DMA of an SBUF tile into HBM (a PSUM
    value is copied to SBUF first, as the page says)."""
    view = _tensor(dst, "dst", "nl.store")
    if view.buffer.on_chip:
        raise KernelUsageError(f"nl.store writes HBM; {view.name} is in {view.buffer.value} "
                               "(assign tiles with t[...] = value)")
    tile = _tensor(value, "value", "nl.store")
    if tile.buffer is Buffer.PSUM:
        staged = creation.new_tensor(current(), tile.shape, tile.dtype, Buffer.SBUF, None)
        isa.tensor_copy(staged, tile)
        tile = staged
    if tile.shape != view.shape and tile.size == view.size:
        # the HBM side takes the tile's shape (a [P] view for a [P, 1] tile)
        try:
            view = view.reshape(tile.shape)
        except KernelUsageError:
            tile = tile.reshape(view.shape)
    run_masked(mask, view, [tile], lambda d, v: isa.dma_copy(d, v), "nl.store")


@kernel_api
def shared_identity_matrix(n: int, dtype: object = dt.uint8, **kwargs: object) -> NkiTensor:
    """`nl.shared_identity_matrix(n, dtype=nl.uint8)` (Beta 1): an HBM constant holding the
    n x n identity, like `nl.shared_constant`, that the kernel loads with `nl.load`."""
    return creation.shared_constant(np.identity(operator.index(n)), dtype)
