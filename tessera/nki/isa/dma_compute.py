"""nisa.dma_compute: element-wise scaled reduction of several tensors by the DMA engines,
with the read-modify-write scatter/gather modes of the Neuron 2.31-2.34 page.

The page (nki.isa.dma_compute, v2.34): dst = reduce_op(srcs[0] * scales[0], ...), computed
in float32 and cast to dst's dtype; only nl.add, and every scale must be 1.0 (None means
all 1.0); srcs and dst are in HBM or SBUF with static addresses; the element counts match;
at most 16 sources. With a vector_offset (an `.ap(..., vector_offset=ids)` view) exactly
two sources and unique_indices=True:

- scatter RMW: dst(HBM)[ids] += src(SBUF): dst is the indirect view and one source is that
  same view, the other an SBUF tile;
- gather RMW: dst(SBUF) += src(HBM)[ids]: one source is an indirect HBM view, the other
  is dst itself.

oob_mode.error raises on a row outside the tensor, oob_mode.skip leaves that row alone.
The page is relevant for Trn2 and Trn3 only: Tessera refuses it on NeuronCore-v2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tessera.nki.attrs import DmaComputeAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.dtypes import cast
from tessera.nki.errors import KernelUsageError, ShapeMismatchError
from tessera.nki.indirect import IndirectTensor
from tessera.nki.isa._common import record, tensor_arg
from tessera.nki.isa.constants import oob_mode as OobMode
from tessera.nki.isa.dma import check_dma_endpoints
from tessera.nki.ops import to_op
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

MAX_SOURCES = 16  # "The max number of source tensors in srcs is 16"
OP = "dma_compute"


def _sources(srcs: object) -> list[NkiTensor]:
    if isinstance(srcs, NkiTensor) or not isinstance(srcs, Sequence):
        raise KernelUsageError(f"{OP}: srcs must be a list of NKI tensors, got "
                               f"{type(srcs).__name__}")
    if not 1 <= len(srcs) <= MAX_SOURCES:
        raise KernelUsageError(f"{OP}: srcs has {len(srcs)} tensors; it takes 1 to "
                               f"{MAX_SOURCES}")
    return [tensor_arg(s, f"srcs[{i}]", OP) for i, s in enumerate(srcs)]


def _check_scales(scales: object, count: int) -> None:
    if scales is None:
        return
    if isinstance(scales, NkiTensor) or not isinstance(scales, Sequence) or len(
            scales) != count:
        raise KernelUsageError(f"{OP}: scales must be None or a list of {count} numbers "
                               "(one per source)")
    for i, s in enumerate(scales):
        if isinstance(s, bool) or not isinstance(s, int | float | np.integer | np.floating) \
                or float(s) != 1.0:
            raise KernelUsageError(f"{OP}: scales[{i}]={s!r}; every scale must be 1.0 (the "
                                   "only value the DMA engines support)")


def _same_view(a: NkiTensor, b: NkiTensor) -> bool:
    """Whether two views address the same elements (and, if indirect, the same offsets)."""
    if a is b:
        return True
    same = (a.storage is b.storage and a.offset == b.offset and a.shape == b.shape
            and a.strides == b.strides)
    if isinstance(a, IndirectTensor) or isinstance(b, IndirectTensor):
        return (same and isinstance(a, IndirectTensor) and isinstance(b, IndirectTensor)
                and a.index is b.index and a.scalar is b.scalar
                and a.indirect_dim == b.indirect_dim)
    return same


def _rmw_mode(dst: NkiTensor, srcs: list[NkiTensor], unique_indices: object) -> str | None:
    """None for a static reduction, else "scatter" / "gather" (checked against the page)."""
    views = [t for t in (dst, *srcs) if isinstance(t, IndirectTensor)]
    if not views:
        return None
    if any(v.index is None for v in views):
        raise KernelUsageError(f"{OP}: tensors must have compile-time known addresses; only "
                               "a vector_offset (read-modify-write scatter/gather) may make "
                               "an address dynamic")
    if len(srcs) != 2:
        raise KernelUsageError(f"{OP}: a read-modify-write with vector_offset takes exactly "
                               f"2 sources, got {len(srcs)}")
    if unique_indices is not True:
        raise KernelUsageError(f"{OP}: unique_indices must be True with vector_offset "
                               "(non-unique indices are not supported)")
    if isinstance(dst, IndirectTensor):
        other = [s for s in srcs if not _same_view(s, dst)]
        if len(other) != 1 or other[0].buffer is not Buffer.SBUF or isinstance(
                other[0], IndirectTensor):
            raise KernelUsageError(f"{OP}: scatter RMW (dst with vector_offset) needs one "
                                   "source equal to dst and the other an SBUF tile")
        return "scatter"
    other = [s for s in srcs if not _same_view(s, dst)]
    if dst.buffer is not Buffer.SBUF or len(other) != 1 or not isinstance(
            other[0], IndirectTensor):
        raise KernelUsageError(f"{OP}: gather RMW needs dst in SBUF, one source equal to "
                               "dst and the other an HBM view with vector_offset")
    return "gather"


def _flat_f32(t: NkiTensor) -> np.ndarray:
    return t.read_f32().reshape(-1)


def _check_unique(view: IndirectTensor, inside: np.ndarray) -> None:
    rows = view.row_offsets()[inside]
    if np.unique(rows).size != rows.size:
        raise KernelUsageError(f"{OP}: unique_indices=True but the vector_offset of "
                               f"{view.name} repeats a row; the DMA would lose updates")


def _run(dst: NkiTensor, srcs: list[NkiTensor], mode: str | None, skip: bool) -> None:
    if mode is None:
        total = _flat_f32(srcs[0])
        for s in srcs[1:]:
            total = total + _flat_f32(s)  # float32, in source order
        dst.write(total.reshape(dst.shape))
        return
    if mode == "scatter":
        view = dst
        addend = next(s for s in srcs if not _same_view(s, dst))
        addr, inside = view.addresses(skip)
        _check_unique(view, inside)
        flat = view.storage.array
        rows = addr[inside]
        plus = addend.read_f32().reshape(addr.shape)[inside]
        flat[rows] = cast(flat[rows].astype(np.float32) + plus, view.dtype)
        return
    view = next(s for s in srcs if isinstance(s, IndirectTensor))
    addr, inside = view.addresses(skip)
    _check_unique(view, inside)
    values = dst.numpy().reshape(addr.shape).copy()
    total = values.astype(np.float32)
    total[inside] += view.storage.array[addr[inside]].astype(np.float32)
    values[inside] = cast(total[inside], dst.dtype)
    dst.write_raw(values.reshape(dst.shape))


def _check_version(ctx: CoreContext) -> None:
    limits = ctx.run.limits
    if limits.version < 3:
        raise KernelUsageError(f"{OP} is available only on NeuronCore-v3 and newer (its page "
                               f"covers Trn2 and Trn3); this kernel targets {limits.chip} "
                               f"(NeuronCore-v{limits.version})")


@kernel_api
def dma_compute(dst: NkiTensor, srcs: object, reduce_op: object, scales: object = None,
                unique_indices: bool = True, oob_mode: OobMode = OobMode.error,
                name: str | None = None) -> None:
    """dst = srcs[0] + srcs[1] + ... computed in float32 by the DMA engines (NC-v3+).

    Every tensor holds the same number of elements (taken in C order), in HBM or SBUF;
    reduce_op must be nl.add and scales None or all 1.0; 1 to 16 sources. A
    vector_offset view makes it a read-modify-write (see the module docstring): scatter
    (dst(HBM)[ids] += src(SBUF)) or gather (dst(SBUF) += src(HBM)[ids]), with exactly two
    sources and unique_indices=True; rows out of bounds raise (oob_mode.error) or are
    skipped (oob_mode.skip). Recorded as one DMA transfer reading every source.
    """
    ctx = current()
    dst = tensor_arg(dst, "dst", OP)
    sources = _sources(srcs)
    _check_version(ctx)
    op = to_op(reduce_op, "reduce_op")
    if op.name != "add":
        raise KernelUsageError(f"{OP}: reduce_op=nl.{op.name}; the DMA engines reduce with "
                               "nl.add only")
    _check_scales(scales, len(sources))
    if not isinstance(oob_mode, OobMode):
        raise KernelUsageError(f"{OP}: oob_mode must be a nisa.oob_mode member, got "
                               f"{oob_mode!r}")
    for i, s in enumerate(sources):
        check_dma_endpoints(ctx, dst, s, OP)
        if s.size != dst.size:
            raise ShapeMismatchError(f"{OP}: srcs[{i}] {s.name}{list(s.shape)} has {s.size} "
                                     f"elements, dst {dst.name}{list(dst.shape)} has "
                                     f"{dst.size}; the counts must match")
    mode = _rmw_mode(dst, sources, unique_indices)
    on_chip = next((t for t in (dst, *sources) if t.buffer.on_chip), dst)
    offsets = tuple(t.index for t in (dst, *sources)
                    if isinstance(t, IndirectTensor) and t.index is not None)
    record(ctx, Engine.DMA, Opcode.DMA_COMPUTE, (*sources, *offsets[:1]), (dst,),
           DmaComputeAttrs(len(sources), op.name, mode, oob_mode.value),
           partitions=on_chip.partitions, free_elements=on_chip.free_size)
    if ctx.run.symbolic:
        return
    _run(dst, sources, mode, oob_mode is OobMode.skip)
