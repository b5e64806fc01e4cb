"""Beta-1 data movement: tensor_copy (and its dynamic and predicated forms), memset,
nc_stream_shuffle, local_gather, dma_copy and dma_transpose.

Per the Neuron 2.26 pages the copies return a new SBUF tile ("unless the returned value
is assigned to a pre-declared PSUM tile"), memset returns a new tile of the given shape,
and the calls with a `dst` argument (tensor_copy_dynamic_dst, tensor_copy_predicated,
nc_stream_shuffle, dma_copy) write it in place and return nothing.
"""

from __future__ import annotations

import operator

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as _ops
from tessera.nki.beta1.isa_base import (
    box_of,
    check_dtype,
    in_place,
    masked,
    name_arg,
    new_tile,
    op_arg,
    out_dtype,
    tile_arg,
)
from tessera.nki.beta1.values import require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError
from tessera.nki.isa.gather import GPSIMD_CORE_PARTITIONS
from tessera.nki.runtime import kernel_api
from tessera.nki.stream import Engine
from tessera.nki.tensor import NkiTensor


# --------------------------------------------------------------------- on-chip copies
@kernel_api
def tensor_copy(src: NkiTensor, *, mask: object = None, dtype: object = None,
                engine: object = Engine.UNKNOWN, **kwargs: object) -> NkiTensor:
    """A copy of src as a new SBUF tile (cast to `dtype` through fp32 when it differs)."""
    fn = "nisa.tensor_copy"
    name = name_arg(fn, kwargs)
    src = tile_arg(src, "src", fn)
    return new_tile(fn, src.shape, out_dtype(dtype, src.dtype), Buffer.SBUF,
                    masked(mask, (src,), lambda d, s: isa.tensor_copy(d, s, engine=engine,
                                                                      name=name), fn))


@kernel_api
def tensor_copy_dynamic_src(src: NkiTensor, *, mask: object = None, dtype: object = None,
                            engine: object = Engine.UNKNOWN, **kwargs: object) -> NkiTensor:
    """A copy of src, a view at a runtime offset within each partition, as a new tile."""
    fn = "nisa.tensor_copy_dynamic_src"
    name = name_arg(fn, kwargs)
    src = tile_arg(src, "src", fn)
    if mask is not None:
        raise KernelUsageError(f"{fn}: a mask cannot cut a runtime-offset view; slice the "
                               "static pattern instead")
    return new_tile(fn, src.shape, out_dtype(dtype, src.dtype), Buffer.SBUF,
                    lambda d: isa.tensor_copy_dynamic_src(d, src, engine=engine, name=name))


@kernel_api
def tensor_copy_dynamic_dst(*, dst: NkiTensor, src: NkiTensor, mask: object = None,
                            dtype: object = None, engine: object = Engine.UNKNOWN,
                            **kwargs: object) -> None:
    """src copied into dst, a view at a runtime offset within each partition."""
    fn = "nisa.tensor_copy_dynamic_dst"
    name = name_arg(fn, kwargs)
    require_beta1(fn)
    check_dtype(dtype, tile_arg(dst, "dst", fn), fn)
    if mask is not None:
        raise KernelUsageError(f"{fn}: a mask cannot cut a runtime-offset view; slice the "
                               "static pattern instead")
    isa.tensor_copy_dynamic_dst(dst, src, engine=engine, name=name)


@kernel_api
def tensor_copy_predicated(*, src: object, dst: NkiTensor, predicate: NkiTensor,
                           reverse_pred: bool = False, mask: object = None,
                           dtype: object = None, **kwargs: object) -> None:
    """src (a tile or a number) copied into dst where predicate is nonzero (zero with
    reverse_pred); other elements of dst keep their values."""
    fn = "nisa.tensor_copy_predicated"
    name = name_arg(fn, kwargs)
    check_dtype(dtype, tile_arg(dst, "dst", fn), fn)

    def call(d: NkiTensor, s: object, pr: NkiTensor) -> None:
        isa.tensor_copy_predicated(d, s, pr, reverse_pred=reverse_pred, name=name)

    in_place(fn, dst, mask, (src, predicate), call)


@kernel_api
def memset(shape: object, value: object, dtype: object, *, mask: object = None,
           engine: object = Engine.UNKNOWN, **kwargs: object) -> NkiTensor:
    """A new SBUF tile of `shape` filled with `value`; the first dimension is the partition
    dimension (an `nl.par_dim` mark is ignored, as the page says)."""
    fn = "nisa.memset"
    name = name_arg(fn, kwargs)
    dims = (shape,) if not isinstance(shape, tuple | list) else tuple(shape)
    try:
        ints = tuple(operator.index(d) for d in dims)  # type: ignore[arg-type]
    except TypeError:
        raise KernelUsageError(f"{fn}: shape must be a tuple of ints, got {shape!r}") from None
    return new_tile(fn, ints, dt.to_dtype(dtype), Buffer.SBUF,
                    masked(mask, (), lambda d: isa.memset(d, value, engine=engine, name=name),
                           fn))


# --------------------------------------------------------------------- partition moves
@kernel_api
def nc_stream_shuffle(src: NkiTensor, dst: NkiTensor, shuffle_mask: object, *,
                      dtype: object = None, mask: object = None, **kwargs: object) -> None:
    """dst partition i of each 32-partition quadrant <- src partition shuffle_mask[i]
    (255 leaves it), in place. A mask may bound the free axes only."""
    fn = "nisa.nc_stream_shuffle"
    name = name_arg(fn, kwargs)
    dst = tile_arg(dst, "dst", fn)
    check_dtype(dtype, dst, fn)
    p = box_of(mask, dst.shape, fn, dst)
    if p is not None and p.box is not None and p.box[0] != slice(0, dst.shape[0]):
        raise KernelUsageError(f"{fn}: the mask excludes partitions; the shuffle maps whole "
                               "quadrants, so a mask may bound the free axes only")
    in_place(fn, dst, mask, (src,),
             lambda d, s: isa.nc_stream_shuffle(d, s, shuffle_mask, name=name))


@kernel_api
def local_gather(src_buffer: NkiTensor, index: NkiTensor, num_elem_per_idx: int = 1,
                 num_valid_indices: int | None = None, *, mask: object = None) -> NkiTensor:
    """Gather within each GpSimd core's 16 partitions, as a new tile of src's dtype shaped
    [P, indices] (or [P, indices, num_elem_per_idx] for several elements per index)."""
    fn = "nisa.local_gather"
    src = tile_arg(src_buffer, "src_buffer", fn)
    idx = tile_arg(index, "index", fn)
    p = box_of(mask, src.shape, fn, src)
    if p is not None:
        raise KernelUsageError(f"{fn}: a mask cannot cut a gather within 16-partition "
                               "groups; slice the operands instead")
    valid = idx.free_size * GPSIMD_CORE_PARTITIONS if num_valid_indices is None \
        else num_valid_indices
    per = num_elem_per_idx
    shape = (src.shape[0], valid) if per == 1 else (src.shape[0], valid, per)
    if not isinstance(valid, int) or not isinstance(per, int):
        raise KernelUsageError(f"{fn}: num_elem_per_idx and num_valid_indices must be ints")
    return new_tile(fn, shape, src.dtype, Buffer.SBUF,
                    lambda d: isa.local_gather(d, src, idx, num_elem_per_idx=per,
                                               num_valid_indices=num_valid_indices))


# --------------------------------------------------------------------- DMA
@kernel_api
def dma_copy(*, dst: NkiTensor, src: NkiTensor, mask: object = None, dst_rmw_op: object = None,
             oob_mode: object = isa.oob_mode.error, dge_mode: object = isa.dge_mode.unknown
             ) -> None:
    """src copied into dst by the DMA engines, in place; `dst_rmw_op=np.add` adds src to
    dst (a read-modify-write, issued as the DMA compute instruction, NeuronCore-v3+)."""
    fn = "nisa.dma_copy"
    if dst_rmw_op is None:
        def call(d: NkiTensor, s: NkiTensor) -> None:
            isa.dma_copy(d, s, oob_mode=oob_mode, dge_mode=dge_mode)
    else:
        op = _ops.to_op(op_arg(dst_rmw_op), "dst_rmw_op")
        if op is not _ops.add:
            raise KernelUsageError(f"{fn}: dst_rmw_op=nl.{op.name}; the DMA read-modify-write "
                                   "adds only (np.add)")

        def call(d: NkiTensor, s: NkiTensor) -> None:
            isa.dma_compute(d, [d, s], _ops.add, oob_mode=oob_mode)

    in_place(fn, dst, mask, (src,), call)


_TRANSPOSE = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}  # "nki.isa.dma_transpose"


@kernel_api
def dma_transpose(src: NkiTensor, *, axes: object = None, mask: object = None,
                  dtype: object = None, **kwargs: object) -> NkiTensor:
    """src transposed by the DMA engines into a new SBUF tile (2-D (1, 0), 3-D (2, 1, 0),
    4-D (3, 1, 2, 0)); a different `dtype` adds a copy that casts."""
    fn = "nisa.dma_transpose"
    name = name_arg(fn, kwargs)
    src = tile_arg(src, "src", fn)
    perm = _TRANSPOSE.get(src.ndim, tuple(range(src.ndim))[::-1])
    shape = tuple(src.shape[a] for a in perm)
    to = out_dtype(dtype, src.dtype)
    p = box_of(mask, shape, fn)
    cut = src
    if p is not None and p.box is not None:
        key = [slice(None)] * src.ndim
        for out_axis, src_axis in enumerate(perm):
            key[src_axis] = p.box[out_axis]
        cut = src[tuple(key)]

    def call(d: NkiTensor) -> None:
        if d.dtype == src.dtype:
            isa.dma_transpose(d, cut, axes=axes, name=name)
            return
        from tessera.nki.creation import new_tensor  # a staging tile of src's dtype
        from tessera.nki.runtime import current

        tmp = new_tensor(current(), d.shape, src.dtype, Buffer.SBUF, None)
        isa.dma_transpose(tmp, cut, axes=axes, name=name)
        isa.tensor_copy(d, tmp, name=name)

    return new_tile(fn, shape, to, Buffer.SBUF, masked(mask, (), call, fn))

