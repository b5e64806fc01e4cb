"""Beta-1 runtime-index views and `nl.atomic_rmw`.

The Beta-1 pages ("nki.language.load" / "store": indirect DMA; "nki.language.atomic_rmw")
index an HBM tensor with a tile of row numbers loaded into SBUF: `t[idx_tile, i_f]`,
`idx_tile` an integer [N, 1] tile, selects row `idx_tile[p]` of `t` for partition p, and
the remaining subscripts select the columns. `indirect_view` builds that view on the
Beta-2 machinery (`tessera.nki.indirect`: a vector_offset view that only DMAs read or
write).

`nl.atomic_rmw(dst, value, op, mask=None)`: `dst = op(dst, value)` on HBM, atomically;
dst must be such a runtime-indexed view and op `np.add` (the page's only ones). It is one
DMA read-modify-write (recorded as the scatter form of `dma_compute`, which the timing
model prices as a DMA transfer at the DMA-compute rate). Being atomic, rows named twice by
the index tile accumulate every update (the engines apply them one after another);
Tessera adds them in float32 and rounds once to dst's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.attrs import DmaComputeAttrs
from tessera.nki.beta1.masking import plan
from tessera.nki.beta1.values import require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError, ShapeMismatchError
from tessera.nki.indirect import IndirectTensor, select_rows
from tessera.nki.isa._common import record
from tessera.nki.ops import to_op
from tessera.nki.runtime import kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor


def is_indirect_key(key: object) -> bool:
    """True for a subscript whose first item is a tile (`t[idx_tile, ...]`)."""
    first = key[0] if isinstance(key, tuple) and key else key
    return isinstance(first, NkiTensor)


def indirect_view(tensor: NkiTensor, key: object) -> NkiTensor:
    """`tensor[idx_tile, *rest]`: rows `idx_tile[p]` of HBM `tensor`, then the columns
    `rest` selects (ints, slices, nl.ds, nl.arange expressions), as an indirect view."""
    items = list(key) if isinstance(key, tuple) else [key]
    ids = items[0]
    if not isinstance(ids, NkiTensor) or not ids.dtype.is_int or not ids.buffer.on_chip:
        raise KernelUsageError(f"indexing {tensor.name} with a tile: the index must be an "
                               "integer tile in SBUF (load the row numbers with nl.load)")
    if ids.free_size != 1:
        raise ShapeMismatchError(f"indexing {tensor.name}: the index tile {ids.name}"
                                 f"{list(ids.shape)} must be [N, 1] (one row number per "
                                 "partition)")
    if tensor.buffer.on_chip:
        raise KernelUsageError(f"indexing {tensor.name} with a tile: runtime (indirect) "
                               "indices address HBM tensors only; "
                               f"{tensor.name} is in {tensor.buffer.value}")
    if any(isinstance(k, NkiTensor) for k in items[1:]):
        raise KernelUsageError(f"indexing {tensor.name}: only the first subscript may be a "
                               "runtime index tile")
    rows = tensor[(slice(None), *items[1:])]  # every row, the columns the rest selects
    return select_rows(rows, 0, ids)


def _value_tile(value: NkiTensor, dst: NkiTensor, fn: str) -> NkiTensor:
    if not value.buffer.on_chip:
        raise KernelUsageError(f"{fn}: value {value.name} is in {value.buffer.value}; it "
                               "must be a tile in SBUF (or a number)")
    if value.size != dst.size:
        raise ShapeMismatchError(f"{fn}: value {value.name}{list(value.shape)} and dst "
                                 f"{list(dst.shape)} must hold as many elements")
    if value.buffer is Buffer.PSUM:  # the DMA reads SBUF: a PSUM value goes through SBUF
        staged = new_tensor(require_beta1(fn), value.shape, value.dtype, Buffer.SBUF, None)
        isa.tensor_copy(staged, value)
        return staged
    return value


@kernel_api
def atomic_rmw(dst: object, value: object, op: object, *, mask: object = None,
               **kwargs: object) -> None:
    """`nl.atomic_rmw(t[idx_tile, i_f], value, op=np.add, mask=None)`: t's rows
    idx_tile[p] += value[p] on HBM, atomically (value a tile or a number)."""
    fn = "nl.atomic_rmw"
    ctx = require_beta1(fn)
    if not isinstance(dst, IndirectTensor) or dst.index is None:
        raise KernelUsageError(f"{fn}: dst must be an HBM tensor indexed with a runtime "
                               "index tile, e.g. t[idx_tile, i_f] (the page supports only "
                               "indirect dynamic indexing)")
    alu = to_op(op, "op")
    if alu.name != "add":
        raise KernelUsageError(f"{fn}: op={alu.name}; only np.add (nl.add) is supported")
    tile = None
    if isinstance(value, NkiTensor):
        tile = _value_tile(value, dst, fn)
    elif isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise KernelUsageError(f"{fn}: value must be a tile or a number, got "
                               f"{type(value).__name__}")
    p = plan(mask, dst.shape, fn)
    if p is not None and p.box is None:
        return None  # every element masked out: no instruction
    if p is None:
        keep = np.ones(dst.shape, dtype=np.bool_)
        extent = dst.shape
    else:
        keep = np.zeros(dst.shape, dtype=np.bool_)
        keep[p.box] = True if p.residual is None else p.residual
        extent = tuple(s.stop - s.start for s in p.box)
    reads = (dst, tile, dst.index) if tile is not None else (dst, dst.index)
    record(ctx, Engine.DMA, Opcode.DMA_COMPUTE, reads, (dst,),
           DmaComputeAttrs(2 if tile is not None else 1, "add", "scatter", "error"),
           partitions=extent[0], free_elements=math.prod(extent[1:]))
    if ctx.run.symbolic:
        return None
    addr, inside = dst.addresses(False)  # a row outside the tensor is an error
    sel = keep & inside.reshape((-1,) + (1,) * (dst.ndim - 1))
    plus = (tile.read_f32().reshape(addr.shape) if tile is not None
            else np.full(addr.shape, np.float32(value)))
    touched, where = np.unique(addr[sel], return_inverse=True)
    flat = dst.storage.array
    acc = flat[touched].astype(np.float32)
    np.add.at(acc, where, plus[sel])  # rows named twice take both updates
    flat[touched] = dt.cast(acc, dst.dtype)
    return None


__all__ = ["atomic_rmw", "indirect_view", "is_indirect_key"]
