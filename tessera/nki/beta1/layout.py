"""Beta-1 tile movement: `nl.matmul`, `transpose`, `load_transpose2d`, `copy`,
`broadcast_to` and `expand_dims`, each a call that returns a new tile.

Per the Beta-1 pages (2.26: "nki.language.matmul", "transpose", "load_transpose2d",
"copy", "broadcast_to", "expand_dims"), each is the instruction(s) the Beta-2 helper of
the same name issues (`tessera.nki.language_layout`), recorded through `produce` so that
`t[...] = nl.copy(x)` and `psum += nl.matmul(...)` need no extra copy or add:

- `matmul(x, y, transpose_x=False)`: `x @ y` (`x.T @ y` with transpose_x) as one
  `nc_matmul` into a float32 PSUM tile; without transpose_x the page inserts a transpose
  of x first (Tensor-engine transpose into PSUM, copied back to SBUF). `psum += ...`
  re-issues the matmul with `accumulate=True`: the Tensor engine adds into PSUM itself;
- `transpose(x)`: the Tensor-engine transpose of a 2-D tile into PSUM;
- `load_transpose2d(src)`: an HBM [F, P] tensor into SBUF [P, F] by a DMA transpose;
- `copy(src)`: a `tensor_copy` into a new SBUF tile (also the `op=nl.copy` operator);
- `broadcast_to(src, shape=)`: src itself when nothing changes, else a copy of a stride-0
  view (free axes) or a DMA repeating one partition;
- `expand_dims(data, axis)`: a view with size-1 axes after the last one.

Masks: matmul's is over its output [M, N], cut onto x's M axis and y's N axis (operand
masks, `x[i_f < 64]`, cut the operands themselves); transpose's and load_transpose2d's
are over the input's index space (the expressions that index it), the output cut to the
transposed box; copy's over its tile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.beta1.masking import plan, run_masked
from tessera.nki.beta1.values import produce, require_beta1, sbuf_operand
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import (
    BufferKindError,
    KernelUsageError,
    MatmulShapeError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.language_layout import _require, _tensor, _two_d
from tessera.nki.language_layout import expand_dims as _b2_expand_dims
from tessera.nki.ops import ALL_OPS, register_callable
from tessera.nki.runtime import add_note, current, kernel_api, maybe_current
from tessera.nki.stream import Engine
from tessera.nki.tensor import NkiTensor

__all__ = ["broadcast_to", "copy", "expand_dims", "load_transpose2d", "matmul", "transpose"]

_DMA_TRANSPOSE_ITEMSIZES = (2, 4)  # what the DMA transpose moves (nisa.dma_transpose)
Axes = Sequence[int | None]  # per tensor axis: the mask-space axis it follows (None: whole)


def _tile(x: object, what: str, fn: str, buffers: tuple[Buffer, ...] = (Buffer.SBUF,
                                                                          Buffer.PSUM)
          ) -> NkiTensor:
    # the Beta-2 helpers' checks and messages
    return _require(_tensor(x, what, fn), what, fn, buffers)


def _scratch(shape: tuple[int, ...], dtype: object, buffer: Buffer) -> NkiTensor:
    return new_tensor(current(), shape, dtype, buffer, None)


def _run_mapped(mask: object, space: tuple[int, ...], fn: str, dst: NkiTensor, dst_axes: Axes,
                operands: Sequence[tuple[NkiTensor, Axes]],
                call: Callable[..., None]) -> None:
    """`call(dst, *operands)` under a mask over `space`, each tensor cut along the axes
    mapped to the space's (so a transposed dst, or a matmul's operands, follow the box).
    dst_axes must be a permutation of the space's axes; outside a non-box mask dst keeps
    its previous values (the predicated instruction does not write there)."""
    p = plan(mask, space, fn)
    if p is None:
        call(dst, *[t for t, _ in operands])
        return
    if p.box is None:
        return  # nothing is true: no instruction

    def cut(t: NkiTensor, axes: Axes) -> NkiTensor:
        return t[tuple(slice(None) if a is None else p.box[a] for a in axes)]

    d = cut(dst, dst_axes)
    saved = None
    if p.residual is not None and d.storage.array is not None:
        saved = d.numpy().copy()
    call(d, *[cut(t, axes) for t, axes in operands])
    if saved is not None:
        keep = ~np.transpose(p.residual, tuple(dst_axes))  # type: ignore[arg-type]
        d.numpy()[keep] = saved[keep]


def _in_sbuf(x: NkiTensor) -> NkiTensor:
    """x if in SBUF, else a copy there (the Tensor engine and DMAs read SBUF)."""
    if x.buffer is Buffer.SBUF:
        return x
    staged = _scratch(x.shape, x.dtype, Buffer.SBUF)
    isa.tensor_copy(staged, x)
    return staged


# ---------------------------------------------------------------------------- matmul
@kernel_api
def matmul(x: object, y: object, *, transpose_x: bool = False, mask: object = None,
           **kwargs: object) -> NkiTensor:
    """`x @ y` (`x.T @ y` with transpose_x) as a new float32 PSUM tile [M, N].

    x is [M, K] (or [K, M] with transpose_x), at most 128 x 128; y is [K, N] with
    N <= 512; both SBUF. `psum += nl.matmul(...)` accumulates in the matmul itself."""
    fn = "matmul"
    require_beta1(f"nl.{fn}")
    if kwargs:
        add_note(f"nl.matmul: keyword(s) {', '.join(sorted(kwargs))} accepted and not "
                 "modelled")
    lim = current().run.limits
    x = sbuf_operand(_tile(x, "x", fn, (Buffer.SBUF, Buffer.PSUM)), f"nl.{fn}")
    y = sbuf_operand(_tile(y, "y", fn, (Buffer.SBUF, Buffer.PSUM)), f"nl.{fn}")
    _two_d(x, "x", fn)
    _two_d(y, "y", fn)
    k, m = x.shape if transpose_x else x.shape[::-1]
    k2, n = y.shape
    if k != k2:
        layout = "x [K, M]" if transpose_x else "x [M, K]"
        raise MatmulShapeError(f"nl.{fn}: {layout} {list(x.shape)} contracts K={k}, but y "
                               f"{list(y.shape)} has {k2} partitions")
    if k > lim.pmax or m > lim.stationary_fmax:
        raise MatmulShapeError(f"nl.{fn}: x {x.name}{list(x.shape)} exceeds {lim.pmax} "
                               f"partitions x {lim.stationary_fmax} free elements")
    if n > lim.moving_fmax:
        raise MatmulShapeError(f"nl.{fn}: y {y.name}{list(y.shape)} has {n} free elements; "
                               f"the limit is {lim.moving_fmax}")
    x_axes: Axes = (None, 0) if transpose_x else (0, None)

    def issue(dst: NkiTensor, xs: NkiTensor, ys: NkiTensor, accumulate: bool) -> None:
        stationary = xs
        if not transpose_x:
            # nc_matmul contracts over partitions: x [M, K] becomes [K, M] in SBUF first
            flipped = _scratch(xs.shape[::-1], xs.dtype, Buffer.PSUM)
            isa.nc_transpose(flipped, xs, engine=Engine.TENSOR)
            stationary = _scratch(xs.shape[::-1], xs.dtype, Buffer.SBUF)
            isa.tensor_copy(stationary, flipped)
        isa.nc_matmul(dst, stationary, ys, accumulate=accumulate)

    def compute(dst: NkiTensor, accumulate: bool) -> None:
        _run_mapped(mask, (m, n), f"nl.{fn}", dst, (0, 1), [(x, x_axes), (y, (None, 1))],
                    lambda d, xs, ys: issue(d, xs, ys, accumulate))

    return produce((m, n), dt.float32, Buffer.PSUM, compute, accumulates=True)


# ---------------------------------------------------------------------------- transposes
@kernel_api
def transpose(x: object, *, dtype: object = None, mask: object = None) -> NkiTensor:
    """The 2-D tile x [P, F] with partition and free axes swapped: a new PSUM tile [F, P]
    written by the Tensor engine (at most 128 x 128). A PSUM x is staged through SBUF; a
    `dtype` other than x's is a cast of the transposed tile. `mask` is over x's indices."""
    fn = "transpose"
    require_beta1(f"nl.{fn}")
    x = _tile(x, "x", fn)
    _two_d(x, "x", fn)
    pmax = current().run.limits.pmax
    p, f = x.shape
    if p > pmax or f > pmax:
        raise MatmulShapeError(f"nl.{fn}: x {x.name}{list(x.shape)} is {p}x{f}; the Tensor "
                               f"engine transposes at most {pmax}x{pmax}")
    out_dtype = x.dtype if dtype is None else dt.to_dtype(dtype)

    def issue(dst: NkiTensor, xs: NkiTensor) -> None:
        src = _in_sbuf(xs)
        if dst.dtype == xs.dtype:
            isa.nc_transpose(dst, src, engine=Engine.TENSOR)
            return
        # the transpose keeps the dtype; the cast is a second instruction
        flipped = _scratch(dst.shape, xs.dtype, Buffer.PSUM)
        isa.nc_transpose(flipped, src, engine=Engine.TENSOR)
        isa.tensor_copy(dst, flipped)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        _run_mapped(mask, x.shape, f"nl.{fn}", dst, (1, 0), [(x, (0, 1))], issue)

    return produce((f, p), out_dtype, Buffer.PSUM, compute)


@kernel_api
def load_transpose2d(src: object, *, mask: object = None, dtype: object = None
                     ) -> NkiTensor:
    """The HBM tensor src [F, P] transposed into a new SBUF tile [P, F] (P <= 128) by a DMA
    transpose (a strided DMA for 1-byte dtypes); a `dtype` other than src's is a cast
    after it. `mask` is over src's index space."""
    fn = "load_transpose2d"
    require_beta1(f"nl.{fn}")
    if not isinstance(src, NkiTensor):
        raise KernelUsageError(f"nl.{fn}: src must be an HBM tensor, got "
                               f"{type(src).__name__}")
    if src.buffer.on_chip:
        raise BufferKindError(f"nl.{fn}: src {src.name}{list(src.shape)} is in "
                              f"{src.buffer.value}; it must be an HBM tensor")
    _two_d(src, "src", fn)
    f, p = src.shape
    pmax = current().run.limits.pmax
    if p > pmax:
        raise PartitionError(f"nl.{fn}: src {src.name}{list(src.shape)} transposes to {p} "
                             f"partitions; the limit is pmax={pmax}")
    out_dtype = src.dtype if dtype is None else dt.to_dtype(dtype)

    def move(dst: NkiTensor, s: NkiTensor) -> None:
        if s.itemsize in _DMA_TRANSPOSE_ITEMSIZES:
            isa.dma_transpose(dst, s, axes=(1, 0))
        else:
            isa.dma_copy(dst, s.permute((1, 0)))

    def issue(dst: NkiTensor, s: NkiTensor) -> None:
        if dst.dtype == s.dtype:
            move(dst, s)
            return
        tile = _scratch(dst.shape, s.dtype, Buffer.SBUF)
        move(tile, s)
        isa.tensor_copy(dst, tile)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        _run_mapped(mask, src.shape, f"nl.{fn}", dst, (1, 0), [(src, (0, 1))], issue)

    return produce((p, f), out_dtype, Buffer.SBUF, compute)


# ---------------------------------------------------------------------------- copies
def _copy_tile(src: NkiTensor, mask: object, dtype: object) -> NkiTensor:
    fn = "copy"
    src = _tile(src, "src", fn)
    out_dtype = src.dtype if dtype is None else dt.to_dtype(dtype)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        run_masked(mask, dst, [src], lambda d, s: isa.tensor_copy(d, s), f"nl.{fn}")

    # the page: the new tile may be assigned into PSUM (the copy then writes PSUM)
    return produce(src.shape, out_dtype, Buffer.SBUF, compute,
                   buffers=(Buffer.SBUF, Buffer.PSUM))


def copy(src: object, *, mask: object = None, dtype: object = None,
         **kwargs: object) -> object:
    """A copy of the tile src in a new SBUF tile (one `tensor_copy`, cast to `dtype`);
    numpy's copy on the host, and the copy operator in `op=nl.copy` arguments."""
    if kwargs:
        raise KernelUsageError(f"nl.copy: unexpected argument(s) {', '.join(sorted(kwargs))}")
    if maybe_current() is None or not isinstance(src, NkiTensor):
        out = np.array(src, copy=True)
        return out.astype(dt.to_dtype(dtype).storage) if dtype is not None else out
    return _kernel_copy(src, mask, dtype)


@kernel_api
def _kernel_copy(src: NkiTensor, mask: object, dtype: object) -> NkiTensor:
    require_beta1("nl.copy")
    return _copy_tile(src, mask, dtype)


register_callable(copy, ALL_OPS["copy"])


def _target_shape(shape: object, fn: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in shape)  # type: ignore[union-attr]
    except TypeError:
        raise KernelUsageError(f"nl.{fn}: shape must be a tuple of ints, got "
                               f"{shape!r}") from None


@kernel_api
def broadcast_to(src: object, shape: object = None) -> NkiTensor:
    """src broadcast to `shape` (numpy rules, same rank) in a new SBUF tile; src itself
    when the shapes already match. Free axes repeat through a copy of a stride-0 view; a
    [1, F] tile repeats across partitions by a DMA (engines cannot cross partitions)."""
    fn = "broadcast_to"
    require_beta1(f"nl.{fn}")
    if shape is None:
        raise KernelUsageError(f"nl.{fn}: shape= is required")
    x = _tile(src, "src", fn)
    target = _target_shape(shape, fn)
    if target == x.shape:
        return x
    if x.ndim < len(target) and x.size == x.shape[0]:
        # a per-partition column named with one iterator ([P], as `t[i_p, 0]` gives) is
        # the [P, 1] tile the pages broadcast along the free axes
        x = x.reshape(x.shape[:1] + (1,) * (len(target) - 1))
    if len(target) != x.ndim:
        raise ShapeMismatchError(f"nl.{fn}: shape {list(target)} must have the rank of src "
                                 f"{x.name}{list(x.shape)}")
    for d, (have, want) in enumerate(zip(x.shape, target, strict=True)):
        if want < 1 or (have != want and have != 1):
            raise ShapeMismatchError(f"nl.{fn}: src {x.name}{list(x.shape)} cannot broadcast "
                                     f"to {list(target)} (dimension {d}: {have} -> {want})")
    pmax = current().run.limits.pmax
    if target[0] > pmax:
        raise PartitionError(f"nl.{fn}: shape {list(target)} spans {target[0]} partitions; "
                             f"the limit is pmax={pmax}")

    def compute(dst: NkiTensor, _acc: bool) -> None:
        if x.shape[0] == target[0]:
            view = x
            for d in range(1, x.ndim):
                if x.shape[d] != target[d]:
                    view = view.broadcast(d, target[d])
            isa.tensor_copy(dst, view)
            return
        # one partition repeated: a DMA reading the source row with partition stride 0
        s = _in_sbuf(x)
        pattern = [[0, target[0]]] + [[st if n == t else 0, t] for st, n, t in
                                       zip(s.strides[1:], s.shape[1:], target[1:],
                                           strict=True)]
        isa.dma_copy(dst, s.ap(pattern))

    # a free-axis broadcast is a copy an assignment may send to PSUM; the partition
    # broadcast is a DMA, which cannot write PSUM
    targets = (Buffer.SBUF, Buffer.PSUM) if x.shape[0] == target[0] else (Buffer.SBUF,)
    return produce(target, x.dtype, Buffer.SBUF, compute, buffers=targets)


@kernel_api
def expand_dims(data: object, axis: object) -> NkiTensor:
    """A view of the tile `data` with size-1 axes inserted at `axis` (positions in the
    result, as numpy.expand_dims); the page allows positions after the last axis only."""
    fn = "expand_dims"
    x = _tile(data, "data", fn)
    view = _b2_expand_dims(x, axis)  # the Beta-2 checks and view
    n, k = view.ndim, x.ndim
    items = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    if not items or min(int(a) % n for a in items) < k:
        raise KernelUsageError(f"nl.{fn}: axis={axis!r} must place the new axes after the "
                               f"last axis of the {k}-D tile {x.name} (positions >= {k})")
    return view
