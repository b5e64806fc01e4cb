"""DMA instructions: dma_copy (and dma_transpose)."""

from __future__ import annotations

import numpy as np

from tessera.nki.attrs import DmaCopyAttrs, DmaTransposeAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import DmaSourceError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.indirect import IndirectTensor, gather, scatter
from tessera.nki.isa._common import check_partitions, record, tensor_arg
from tessera.nki.isa.constants import dge_mode as DgeMode
from tessera.nki.isa.constants import oob_mode as OobMode
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor


def _dma_shape(dst: NkiTensor, src: NkiTensor) -> tuple[int, int]:
    """(partitions, elements per partition) of the on-chip side, else of dst."""
    side = dst if dst.buffer.on_chip else src if src.buffer.on_chip else dst
    return side.partitions, side.free_size


def copy_values(dst: NkiTensor, src: NkiTensor) -> None:
    """Element-wise copy in C order: bit-exact for equal dtypes, else cast through fp32."""
    if dst.dtype is src.dtype or dst.dtype == src.dtype:
        dst.write_raw(src.numpy())
    elif src.dtype.is_int and dst.dtype.is_int:
        dst.write(src.numpy())  # integer to integer saturates without a float detour
    else:
        dst.write(src.read_f32().reshape(dst.shape))


def check_dma_endpoints(ctx: CoreContext, dst: NkiTensor, src: NkiTensor, op: str) -> None:
    if src.buffer is Buffer.PSUM:
        raise DmaSourceError(f"{op}: src {src.name}{list(src.shape)} is in PSUM; DMA cannot "
                             "read PSUM: copy it to SBUF first (nisa.tensor_copy)")
    if dst.buffer is Buffer.PSUM:
        raise DmaSourceError(f"{op}: dst {dst.name}{list(dst.shape)} is in PSUM; DMA writes "
                             "SBUF or HBM")
    check_partitions(ctx, src, "src", op)
    check_partitions(ctx, dst, "dst", op)


@kernel_api
def dma_copy(dst: NkiTensor, src: NkiTensor, priority: object = None,
             oob_mode: OobMode = OobMode.error, dge_mode: DgeMode = DgeMode.unknown,
             engine: object = None, name: str | None = None) -> None:
    """Copy src to dst through the DMA engines (HBM<->SBUF, SBUF<->SBUF, HBM<->HBM).

    Shapes may differ as long as the element counts match (elements are taken in C order);
    a dtype change casts through fp32.
    """
    op = "dma_copy"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    check_dma_endpoints(ctx, dst, src, op)
    if dst.size != src.size:
        raise ShapeMismatchError(f"{op}: dst {dst.name}{list(dst.shape)} has {dst.size} "
                                 f"elements, src {src.name}{list(src.shape)} has {src.size}")
    partitions, free = _dma_shape(dst, src)
    src_ind, dst_ind = isinstance(src, IndirectTensor), isinstance(dst, IndirectTensor)
    if src_ind and dst_ind:
        raise KernelUsageError(f"{op}: only one side of a DMA can use runtime offsets")
    offsets = tuple(t for v in (src, dst) if isinstance(v, IndirectTensor)
                    for t in (v.index, v.scalar) if isinstance(t, NkiTensor))
    record(ctx, Engine.DMA, Opcode.DMA_COPY, (src, *offsets), (dst,),
           DmaCopyAttrs(getattr(dge_mode, "value", str(dge_mode)),
                        getattr(oob_mode, "value", str(oob_mode)),
                        "src" if src_ind else "dst" if dst_ind else None),
           partitions=partitions, free_elements=free)
    if ctx.run.symbolic:
        return
    skip = oob_mode is OobMode.skip
    if src_ind:
        gather(dst, src, skip)
    elif dst_ind:
        scatter(dst, src, skip)
    else:
        copy_values(dst, src)


# The permutation dma_transpose applies per source rank (the only ones the DMA supports).
_TRANSPOSE_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}
_TRANSPOSE_ITEMSIZES = (2, 4)


def _transpose_axes(src: NkiTensor, axes: object, op: str) -> tuple[int, ...]:
    expected = _TRANSPOSE_AXES.get(src.ndim)
    if expected is None:
        raise ShapeMismatchError(f"{op}: src {src.name}{list(src.shape)} is {src.ndim}-D; "
                                 "the DMA transposes 2-D, 3-D and 4-D tensors")
    if axes is None:
        return expected
    try:
        given = tuple(int(a) for a in axes)  # type: ignore[union-attr]
    except TypeError:
        raise KernelUsageError(f"{op}: axes must be a tuple of ints, got {axes!r}") from None
    if given != expected:
        raise KernelUsageError(f"{op}: axes={given} is not supported for a {src.ndim}-D src; "
                               f"the DMA transposes with axes={expected}")
    return given


@kernel_api
def dma_transpose(dst: NkiTensor, src: NkiTensor, axes: object = None,
                  dge_mode: DgeMode = DgeMode.unknown, oob_mode: OobMode = OobMode.error,
                  name: str | None = None) -> None:
    """dst = src transposed by the DMA engines (HBM->SBUF, SBUF->SBUF, ...; never PSUM).

    The permutation is fixed by the rank: (1, 0) for 2-D, (2, 1, 0) for 3-D and
    (3, 1, 2, 0) for 4-D src (`axes`, if given, must be that one). dst has exactly the
    permuted shape and src's dtype, which must be 2 or 4 bytes wide; the copy is
    bit-exact. `dge_mode=hwdge` (NeuronCore-v3+) additionally needs a 2-byte dtype,
    src.shape[0] == 16 and src.shape[-1] a multiple of 128.
    """
    op = "dma_transpose"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    check_dma_endpoints(ctx, dst, src, op)
    perm = _transpose_axes(src, axes, op)
    if src.dtype != dst.dtype:
        raise DTypeError(f"{op}: dst {dst.name} is {dst.dtype.name} but src {src.name} is "
                         f"{src.dtype.name}; the DMA transpose does not convert dtypes")
    if src.itemsize not in _TRANSPOSE_ITEMSIZES:
        raise DTypeError(f"{op}: {src.dtype.name} is {src.itemsize} byte(s) wide; the DMA "
                         "transposes 2- or 4-byte elements only")
    want = tuple(src.shape[a] for a in perm)
    if tuple(dst.shape) != want:
        raise ShapeMismatchError(f"{op}: dst {dst.name}{list(dst.shape)} must be {list(want)} "
                                 f"(src {list(src.shape)} permuted by {perm})")
    if not isinstance(dge_mode, DgeMode):
        raise KernelUsageError(f"{op}: dge_mode must be a nisa.dge_mode member, got "
                               f"{dge_mode!r}")
    indirect = isinstance(src, IndirectTensor)
    if indirect:
        _check_indirect_transpose(src, dge_mode, op)
    elif dge_mode not in (DgeMode.unknown, DgeMode.hwdge):
        raise KernelUsageError(f"{op}: dge_mode={dge_mode.value}; a direct DMA transpose "
                               "takes dge_mode unknown or hwdge")
    if dge_mode is DgeMode.hwdge:
        _check_hwdge_transpose(ctx, src, op)
    partitions, free = _dma_shape(dst, src)
    offsets = tuple(t for t in (src.index, src.scalar) if isinstance(t, NkiTensor)) \
        if indirect else ()
    record(ctx, Engine.DMA, Opcode.DMA_TRANSPOSE, (src, *offsets), (dst,),
           DmaTransposeAttrs(tuple(int(a) for a in perm), dge_mode.value,
                             getattr(oob_mode, "value", str(oob_mode))),
           partitions=partitions, free_elements=free)
    if ctx.run.symbolic:
        return
    # Raw storage values: a transpose only moves bytes, so NaN payloads etc. survive.
    if indirect:
        # an indirect transpose gathers the rows at their runtime offsets, then permutes
        # (the page: it lowers to a DMA gather-transpose); skipped rows read as zeros
        addr, inside = src.addresses(oob_mode is OobMode.skip)
        rows = np.zeros(addr.shape, dtype=src.storage.array.dtype)
        rows[inside] = src.storage.array[addr[inside]]
        dst.numpy()[...] = np.transpose(rows.reshape(src.shape), perm)
        return
    dst.numpy()[...] = np.transpose(src.numpy(), perm)


INDIRECT_TRANSPOSE_MAX_LAST = 128  # elements of src's last dimension


def _check_indirect_transpose(src: IndirectTensor, dge_mode: DgeMode, op: str) -> None:
    """The "DMA Indirect Transpose Constraints" of the dma_transpose page (2.29-2.34):
    software DGE (unknown or swdge), src in HBM, a 2-byte dtype, src.shape[-1] <= 128,
    offsets in an SBUF integer tile."""
    if dge_mode not in (DgeMode.unknown, DgeMode.swdge):
        raise KernelUsageError(f"{op}: dge_mode={dge_mode.value}; an indirect DMA transpose "
                               "(src with runtime offsets) takes dge_mode unknown or swdge")
    if src.storage.buffer.on_chip:
        raise KernelUsageError(f"{op}: an indirect DMA transpose reads its src from HBM; "
                               f"{src.name} is in {src.storage.buffer.value}")
    if src.itemsize != 2:
        raise DTypeError(f"{op}: an indirect DMA transpose moves 2-byte elements; "
                         f"{src.name} is {src.dtype.name}")
    if src.shape[-1] > INDIRECT_TRANSPOSE_MAX_LAST:
        raise ShapeMismatchError(f"{op}: an indirect DMA transpose takes src.shape[-1] <= "
                                 f"{INDIRECT_TRANSPOSE_MAX_LAST}; src is {list(src.shape)}")
    index = src.index
    if isinstance(index, NkiTensor) and index.storage.buffer is not Buffer.SBUF:
        raise KernelUsageError(f"{op}: the offsets {index.name} of an indirect DMA transpose "
                               "must be in SBUF")


def _check_hwdge_transpose(ctx: CoreContext, src: NkiTensor, op: str) -> None:
    lim = ctx.run.limits
    if lim.version < 3:
        raise KernelUsageError(f"{op}: dge_mode=hwdge needs NeuronCore-v3 or later; this "
                               f"kernel runs on {lim.chip} (v{lim.version})")
    if src.itemsize != 2 or src.shape[0] != 16 or src.shape[-1] % 128:
        raise ShapeMismatchError(f"{op}: a hardware-DGE transpose needs a 2-byte dtype, "
                                 f"src.shape[0] == 16 and src.shape[-1] % 128 == 0; got "
                                 f"{src.dtype.name} {list(src.shape)}")
