"""DMA instructions: dma_copy (and dma_transpose)."""

from __future__ import annotations

from tessera.nki.buffers import Buffer
from tessera.nki.errors import DmaSourceError, ShapeMismatchError
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
    if dst.dtype == src.dtype:
        dst.numpy()[...] = src.numpy().reshape(dst.shape)
        if dst.storage.acc is not None:
            dst.acc_mask()[...] = False
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
    record(ctx, Engine.DMA, Opcode.DMA_COPY, (src,), (dst,),
           {"dge_mode": getattr(dge_mode, "value", str(dge_mode)),
            "oob_mode": getattr(oob_mode, "value", str(oob_mode))},
           partitions=partitions, free_elements=free)
    if not ctx.run.symbolic:
        copy_values(dst, src)


def dma_transpose(*args: object, **kwargs: object) -> None:  # placeholder, replaced soon
    raise NotImplementedError
