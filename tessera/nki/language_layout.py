"""`nki.language` tile-movement helpers: expand_dims, broadcast_to, transpose, matmul and
load_transpose2d, each issuing the instructions the vendor's helper stands for.

Per the current (NKI 0.3+) pages:
- `expand_dims(x, axis)`: a view with a new size-1 axis (no instruction);
- `broadcast_to(x, shape, dtype=None)`: a new SBUF tile; x itself when nothing changes.
  Free dimensions broadcast through a Vector-engine copy of a stride-0 view; repeating
  one partition across partitions takes a DMA (compute engines cannot cross partitions);
- `transpose(x, dtype=None)`: a Tensor-engine transpose of a 2-D tile into PSUM;
- `matmul(x, y, transpose_x=False)`: `x @ y` (`x.T @ y` when transpose_x) into a float32
  PSUM tile; without transpose_x, x is first transposed ("an additional transpose will be
  inserted"), as nc_matmul contracts over partitions;
- `load_transpose2d(src, dtype=None)`: an HBM [F, P] tensor into a new SBUF [P, F] tile by
  DMA transpose (a strided DMA for 1-byte dtypes, which the DMA transpose does not take).
"""

from __future__ import annotations

from numbers import Integral

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import (
    BufferKindError,
    KernelUsageError,
    MatmulShapeError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine
from tessera.nki.tensor import NkiTensor

__all__ = ["broadcast_to", "expand_dims", "load_transpose2d", "matmul", "transpose"]

_DMA_TRANSPOSE_ITEMSIZES = (2, 4)  # what nisa.dma_transpose moves


def _tensor(x: object, what: str, fn: str) -> NkiTensor:
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"nl.{fn}: {what} must be an NKI tensor, got "
                               f"{type(x).__name__}")
    return x


def _require(x: NkiTensor, what: str, fn: str, buffers: tuple[Buffer, ...]) -> NkiTensor:
    if x.buffer not in buffers:
        names = " or ".join(b.value for b in buffers)
        raise BufferKindError(f"nl.{fn}: {what} {x.name}{list(x.shape)} is in "
                              f"{x.buffer.value}; it must be in {names}")
    return x


def _two_d(x: NkiTensor, what: str, fn: str) -> None:
    if x.ndim != 2:
        raise ShapeMismatchError(f"nl.{fn}: {what} {x.name}{list(x.shape)} must be a 2-D "
                                 "tile")


def _new(ctx: CoreContext, shape: tuple[int, ...], dtype: object, buffer: Buffer) -> NkiTensor:
    return new_tensor(ctx, shape, dtype, buffer, None)


def _in_sbuf(ctx: CoreContext, x: NkiTensor) -> NkiTensor:
    """x itself if in SBUF, else a Vector-engine copy of it there (DMA and the Tensor
    engine read SBUF, not PSUM)."""
    if x.buffer is Buffer.SBUF:
        return x
    copy = _new(ctx, x.shape, x.dtype, Buffer.SBUF)
    isa.tensor_copy(copy, x)
    return copy


@kernel_api
def expand_dims(x: NkiTensor, axis: object) -> NkiTensor:
    """A view of x with a size-1 axis inserted at `axis` (a position in the result, as in
    numpy.expand_dims; a tuple inserts several). On-chip tiles keep the partition
    dimension first, so `axis` may not be 0 for them."""
    fn = "expand_dims"
    x = _tensor(x, "x", fn)
    items = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    n = x.ndim + len(items)
    positions = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, Integral):
            raise KernelUsageError(f"nl.{fn}: axis must be an int or a tuple of ints, got "
                                   f"{axis!r}")
        a = int(a)
        if not -n <= a < n:
            raise KernelUsageError(f"nl.{fn}: axis {a} is out of range for a {n}-D result")
        positions.append(a % n)
    if len(set(positions)) != len(positions):
        raise KernelUsageError(f"nl.{fn}: axis={axis!r} repeats a position")
    if x.buffer.on_chip and 0 in positions:
        raise KernelUsageError(f"nl.{fn}: axis 0 would move the partition dimension of tile "
                               f"{x.name}{list(x.shape)}; insert at a free position (>= 1)")
    view = x
    for p in sorted(positions):
        view = view.expand_dim(p)
    return view


@kernel_api
def broadcast_to(x: NkiTensor, shape: object, dtype: object = None) -> NkiTensor:
    """x broadcast to `shape` (same rank; each dimension equal or from size 1) in a new
    SBUF tile of `dtype` (default x's). Returns x when shape and dtype already match."""
    fn = "broadcast_to"
    ctx = current()
    x = _require(_tensor(x, "x", fn), "x", fn, (Buffer.SBUF, Buffer.PSUM))
    try:
        target = tuple(int(d) for d in shape)  # type: ignore[union-attr]
    except TypeError:
        raise KernelUsageError(f"nl.{fn}: shape must be a tuple of ints, got "
                               f"{shape!r}") from None
    out_dtype = x.dtype if dtype is None else dt.to_dtype(dtype)
    if len(target) != x.ndim:
        raise ShapeMismatchError(f"nl.{fn}: shape {list(target)} must have the rank of x "
                                 f"{x.name}{list(x.shape)}")
    for d, (have, want) in enumerate(zip(x.shape, target, strict=True)):
        if want < 1 or (have != want and have != 1):
            raise ShapeMismatchError(f"nl.{fn}: x {x.name}{list(x.shape)} cannot broadcast "
                                     f"to {list(target)} (dimension {d}: {have} -> {want})")
    pmax = ctx.run.limits.pmax
    if target[0] > pmax:
        raise PartitionError(f"nl.{fn}: shape {list(target)} spans {target[0]} partitions; "
                             f"the limit is pmax={pmax}")
    if target == x.shape and out_dtype == x.dtype:
        return x
    out = _new(ctx, target, out_dtype, Buffer.SBUF)
    if x.shape[0] == target[0]:
        view = x
        for d in range(1, x.ndim):
            if x.shape[d] != target[d]:
                view = view.broadcast(d, target[d])
        isa.tensor_copy(out, view)
        return out
    # one partition repeated: a DMA reading the source row with partition stride 0
    src = _in_sbuf(ctx, x)
    pattern = [[0, target[0]]] + [[s if n == t else 0, t] for s, n, t in
                                   zip(src.strides[1:], src.shape[1:], target[1:], strict=True)]
    isa.dma_copy(out, src.ap(pattern))
    return out


@kernel_api
def transpose(x: NkiTensor, dtype: object = None) -> NkiTensor:
    """The 2-D tile x [P, F] transposed to [F, P] in PSUM by the Tensor engine (up to
    pmax x pmax); a PSUM input is first copied to SBUF, a `dtype` other than x's is a
    Vector-engine cast of the transposed tile (the transpose itself keeps the dtype)."""
    fn = "transpose"
    ctx = current()
    x = _require(_tensor(x, "x", fn), "x", fn, (Buffer.SBUF, Buffer.PSUM))
    _two_d(x, "x", fn)
    pmax = ctx.run.limits.pmax
    p, f = x.shape
    if p > pmax or f > pmax:
        raise MatmulShapeError(f"nl.{fn}: x {x.name}{list(x.shape)} is {p}x{f}; the Tensor "
                               f"engine transposes at most {pmax}x{pmax}")
    src = _in_sbuf(ctx, x)
    result = _new(ctx, (f, p), x.dtype, Buffer.PSUM)
    isa.nc_transpose(result, src, engine=Engine.TENSOR)
    if dtype is None or dt.to_dtype(dtype) == x.dtype:
        return result
    cast = _new(ctx, (f, p), dtype, Buffer.PSUM)
    isa.tensor_copy(cast, result)
    return cast


@kernel_api
def matmul(x: NkiTensor, y: NkiTensor, transpose_x: bool = False) -> NkiTensor:
    """x @ y (x.T @ y with transpose_x) into a new float32 PSUM tile.

    x and y are 2-D SBUF tiles. x [M, K] has at most 128 partitions and a free size of at
    most 128 (gemm_stationary_fmax); with transpose_x it is given as [K, M]. y [K, N] has
    K partitions and N <= 512 (gemm_moving_fmax)."""
    fn = "matmul"
    ctx = current()
    lim = ctx.run.limits
    x = _require(_tensor(x, "x", fn), "x", fn, (Buffer.SBUF,))
    y = _require(_tensor(y, "y", fn), "y", fn, (Buffer.SBUF,))
    _two_d(x, "x", fn)
    _two_d(y, "y", fn)
    k, m = x.shape if transpose_x else x.shape[::-1]
    k2, n = y.shape
    if k != k2:
        layout = "x [K, M]" if transpose_x else "x [M, K]"
        raise MatmulShapeError(f"nl.{fn}: {layout} {list(x.shape)} contracts K={k}, but y "
                               f"{list(y.shape)} has {k2} partitions")
    if x.shape[0] > lim.pmax or x.shape[1] > lim.stationary_fmax or k > lim.pmax:
        raise MatmulShapeError(f"nl.{fn}: x {x.name}{list(x.shape)} exceeds {lim.pmax} "
                               f"partitions x {lim.stationary_fmax} free elements")
    if n > lim.moving_fmax:
        raise MatmulShapeError(f"nl.{fn}: y {y.name}{list(y.shape)} has {n} free elements; "
                               f"the limit is {lim.moving_fmax}")
    stationary = x
    if not transpose_x:
        # nc_matmul contracts over partitions: x [M, K] must become [K, M] in SBUF first
        flipped = _new(ctx, (k, m), x.dtype, Buffer.PSUM)
        isa.nc_transpose(flipped, x, engine=Engine.TENSOR)
        stationary = _new(ctx, (k, m), x.dtype, Buffer.SBUF)
        isa.tensor_copy(stationary, flipped)
    result = _new(ctx, (m, n), dt.float32, Buffer.PSUM)
    isa.nc_matmul(result, stationary, y)
    return result


@kernel_api
def load_transpose2d(src: NkiTensor, dtype: object = None) -> NkiTensor:
    """A new SBUF tile [P, F] holding the HBM tensor src [F, P] transposed (P <= pmax),
    cast to `dtype` (default src's) by a Vector-engine copy when it differs."""
    fn = "load_transpose2d"
    ctx = current()
    src = _tensor(src, "src", fn)
    if src.buffer.on_chip:
        raise BufferKindError(f"nl.{fn}: src {src.name}{list(src.shape)} is in "
                              f"{src.buffer.value}; it must be an HBM tensor")
    _two_d(src, "src", fn)
    f, p = src.shape
    pmax = ctx.run.limits.pmax
    if p > pmax:
        raise PartitionError(f"nl.{fn}: src {src.name}{list(src.shape)} transposes to {p} "
                             f"partitions; the limit is pmax={pmax}")
    tile = _new(ctx, (p, f), src.dtype, Buffer.SBUF)
    if src.itemsize in _DMA_TRANSPOSE_ITEMSIZES:
        isa.dma_transpose(tile, src, axes=(1, 0))
    else:
        isa.dma_copy(tile, src.permute((1, 0)))
    if dtype is None or dt.to_dtype(dtype) == src.dtype:
        return tile
    out = _new(ctx, (p, f), dtype, Buffer.SBUF)
    isa.tensor_copy(out, tile)
    return out
