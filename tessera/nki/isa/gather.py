"""On-chip gathers and shuffles: local_gather and nc_n_gather (GpSimd engine),
nc_stream_shuffle (Vector engine); dma_compute lives in `dma_compute.py`.

Semantics follow the NKI API reference pages (Neuron 2.34 wording, with the numpy
reference of the vendor's local_gather example for its index order):

- nc_n_gather: per partition, dst[p, j] = data[p, indices[p, j]] over the flattened free
  elements of data; indices are uint32 and must lie in [0, elements per partition).
- local_gather: each GpSimd core owns 16 partitions; it reads its 16-partition slice of
  `index` partition first (index[0, 0], index[1, 0], ..., index[15, 0], index[0, 1], ...),
  keeps the first `num_valid_indices`, and every partition p of the slice gathers
  `num_elem_per_idx` contiguous elements of its own src row starting at each index.
  The page calls an out-of-bound index undefined; Tessera stops with an error.
- nc_stream_shuffle: within each 32-partition quadrant, dst row i copies src row
  shuffle_mask[i] of the same quadrant; 255 leaves dst row i as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tessera.nki.attrs import NO_ATTRS, LocalGatherAttrs, StreamShuffleAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import (
    DTypeError,
    KernelUsageError,
    OutOfBoundsError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.isa._common import record, require_on_chip, tensor_arg
from tessera.nki.isa.dma_compute import dma_compute
from tessera.nki.isa.vector import prepare
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

__all__ = ["dma_compute", "local_gather", "nc_n_gather", "nc_stream_shuffle"]

GPSIMD_CORE_PARTITIONS = 16  # each of the 8 GpSimd cores is wired to 16 SBUF partitions
ELEMS_PER_INDEX = (1, 2, 4, 8, 16, 32)  # local_gather's allowed num_elem_per_idx
MAX_INDICES_PER_CORE = 4096  # local_gather: indices one GpSimd core may use
QUADRANT = 32  # nc_stream_shuffle moves data within 32-partition quadrants
KEEP_ROW = 255  # shuffle_mask value that leaves the dst row unmodified
# nc_stream_shuffle page: legal src/dst start partitions per number of active partitions
SHUFFLE_STARTS = {32: (0, 32, 64, 96), 64: (0, 64), 96: (0,), 128: (0,)}


def start_partition(t: NkiTensor) -> int:
    """First physical partition an on-chip view accesses."""
    per = t.storage.partition_elems
    return t.offset // per if per else 0


def _rows(t: NkiTensor) -> np.ndarray:
    """[P, N] raw storage values, free dimensions flattened in C order."""
    return t.numpy().reshape(t.partitions, t.free_size)


def _same_dtype(a: NkiTensor, b: NkiTensor, what_a: str, what_b: str, op: str) -> None:
    if a.dtype != b.dtype:
        raise DTypeError(f"{op}: {what_a} {a.name} is {a.dtype.name} but {what_b} {b.name} "
                         f"is {b.dtype.name}; this instruction moves data without casting")


def _dtype_is(t: NkiTensor, name: str, what: str, op: str) -> None:
    if t.dtype.name != name:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be {name}")


def _same_partitions(a: NkiTensor, b: NkiTensor, what_a: str, what_b: str, op: str) -> None:
    if a.partitions != b.partitions:
        raise ShapeMismatchError(f"{op}: {what_a} {a.name}{list(a.shape)} and {what_b} "
                                 f"{b.name}{list(b.shape)} span different partition counts "
                                 f"({a.partitions} vs {b.partitions})")


def _free_is(t: NkiTensor, n: int, what: str, why: str, op: str) -> None:
    if t.free_size != n:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} holds {t.free_size} "
                                 f"elements per partition; it must hold {n} ({why})")


# ---------------------------------------------------------------------- nc_n_gather
def issue_n_gather(ctx: CoreContext, op: str, dst: NkiTensor, data: NkiTensor,
                   indices: NkiTensor, out_of_range_ok: bool) -> None:
    """Check, record and run one nc_n_gather. With `out_of_range_ok` (nl.gather_flattened,
    whose page says such indices "return garbage values") an out-of-range index leaves
    its dst element as it was instead of raising."""
    for t, what in ((dst, "dst"), (data, "data"), (indices, "indices")):
        require_on_chip(t, what, op, (Buffer.SBUF,))
    prepare(ctx, op, Engine.GPSIMD, (data, indices), (dst,))
    _dtype_is(indices, "uint32", "indices", op)
    _same_dtype(dst, data, "dst", "data", op)
    _same_partitions(data, indices, "data", "indices", op)
    _same_partitions(data, dst, "data", "dst", op)
    _free_is(dst, indices.free_size, "dst", "one element per index", op)
    record(ctx, Engine.GPSIMD, Opcode.NC_N_GATHER, (data, indices), (dst,), NO_ATTRS,
           free_elements=indices.free_size)
    if ctx.run.symbolic:
        return
    n = data.free_size
    ids = _rows(indices).astype(np.int64)
    inside = ids < n  # uint32: never negative
    if not out_of_range_ok and not inside.all():
        p, j = (int(v[0]) for v in np.nonzero(~inside))
        raise OutOfBoundsError(f"{op}: indices {indices.name}[{p}, {j}] = {ids[p, j]} is "
                               f"outside [0, {n}), the elements per partition of data "
                               f"{data.name}{list(data.shape)}")
    values = np.take_along_axis(_rows(data), np.where(inside, ids, 0), axis=1)
    out = _rows(dst).copy()
    out[inside] = values[inside]
    dst.write_raw(out.reshape(dst.shape))


@kernel_api
def nc_n_gather(dst: NkiTensor, data: NkiTensor, indices: NkiTensor,
                name: str | None = None) -> None:
    """dst[p, j] = data[p, indices[p, j]] on the GpSimd engine, partition by partition,
    indexing data's free dimensions flattened in C order.

    data, indices and dst are in SBUF and span the same partitions (<= 128); indices
    are uint32 in [0, data's elements per partition) (an index outside is an error);
    dst has data's dtype and one element per index (its free shape is free).
    """
    op = "nc_n_gather"
    ctx = current()
    issue_n_gather(ctx, op, tensor_arg(dst, "dst", op), tensor_arg(data, "data", op),
                   tensor_arg(indices, "indices", op), out_of_range_ok=False)


# ---------------------------------------------------------------------- local_gather
def _count_arg(value: object, what: str, allowed: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise KernelUsageError(f"{op}: {what} must be an int ({allowed}), got {value!r}")
    return int(value)


@kernel_api
def local_gather(dst: NkiTensor, src_buffer: NkiTensor, index: NkiTensor,
                 num_elem_per_idx: int = 1, num_valid_indices: int | None = None,
                 name: str | None = None) -> None:
    """Gather within each GpSimd core's 16 partitions (GpSimd engine).

    For each 16-partition group g: ids = index[g] read partition first, first
    `num_valid_indices` kept (default: all, 16 x index's elements per partition); each
    partition p of the group writes, for j, k: dst[p, j, k] = src_buffer[p, ids[j] + k]
    with k < num_elem_per_idx (src's free dimensions flattened; ids count elements).

    All three tiles are in SBUF, span the same partitions (a multiple of 16) starting on
    the same partition; index is uint16; dst has src's dtype and exactly
    num_valid_indices x num_elem_per_idx elements per partition; num_elem_per_idx is
    1, 2, 4, 8, 16 or 32; at most 4,096 indices per core. An index whose elements leave
    src's row is an error (the page: undefined behaviour).
    """
    op = "local_gather"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src_buffer, "src_buffer", op)
    index = tensor_arg(index, "index", op)
    for t, what in ((dst, "dst"), (src, "src_buffer"), (index, "index")):
        require_on_chip(t, what, op, (Buffer.SBUF,))
    prepare(ctx, op, Engine.GPSIMD, (src, index), (dst,))
    _dtype_is(index, "uint16", "index", op)
    _same_dtype(dst, src, "dst", "src_buffer", op)
    _same_partitions(src, index, "src_buffer", "index", op)
    _same_partitions(src, dst, "src_buffer", "dst", op)
    if src.partitions % GPSIMD_CORE_PARTITIONS:
        raise PartitionError(f"{op}: src_buffer {src.name}{list(src.shape)} spans "
                             f"{src.partitions} partitions; it must be a multiple of 16 (one "
                             "slice per GpSimd core)")
    starts = {start_partition(t) for t in (src, index, dst)}
    if len(starts) > 1 or min(starts) % GPSIMD_CORE_PARTITIONS:
        raise PartitionError(f"{op}: src_buffer, index and dst start at partitions "
                             f"{sorted(starts)}; each GpSimd core gathers within its own 16 "
                             "partitions, so all three must start on the same multiple of 16")
    per_elem = _count_arg(num_elem_per_idx, "num_elem_per_idx", "1, 2, 4, 8, 16 or 32", op)
    if per_elem not in ELEMS_PER_INDEX:
        raise KernelUsageError(f"{op}: num_elem_per_idx={per_elem}; it must be 1, 2, 4, 8, "
                               "16 or 32")
    per_core = index.free_size * GPSIMD_CORE_PARTITIONS
    valid = per_core if num_valid_indices is None else _count_arg(
        num_valid_indices, "num_valid_indices", f"1 to {per_core}", op)
    if not 1 <= valid <= per_core:
        raise KernelUsageError(f"{op}: num_valid_indices={valid}; a core's 16-partition "
                               f"slice of index {index.name}{list(index.shape)} holds "
                               f"{per_core} indices, so it must be between 1 and {per_core}")
    if valid > MAX_INDICES_PER_CORE:
        raise KernelUsageError(f"{op}: {valid} indices per GpSimd core; at most "
                               f"{MAX_INDICES_PER_CORE} (pass num_valid_indices or a smaller "
                               "index tile)")
    _free_is(dst, valid * per_elem, "dst", "num_valid_indices x num_elem_per_idx", op)
    record(ctx, Engine.GPSIMD, Opcode.LOCAL_GATHER, (src, index), (dst,),
           LocalGatherAttrs(per_elem, valid), free_elements=valid * per_elem)
    if ctx.run.symbolic:
        return
    rows, n = _rows(src), src.free_size
    ids = _rows(index).astype(np.int64)
    out = np.empty((src.partitions, valid, per_elem), dtype=rows.dtype)
    span = np.arange(per_elem)
    for g in range(0, src.partitions, GPSIMD_CORE_PARTITIONS):
        group = slice(g, g + GPSIMD_CORE_PARTITIONS)
        order = ids[group].T.reshape(-1)[:valid]  # partition first, then free position
        bad = np.flatnonzero(order + per_elem > n)
        if bad.size:
            j = int(bad[0])
            raise OutOfBoundsError(f"{op}: index {order[j]} (position {j} of the core at "
                                   f"partitions {g}..{g + 15}) reads elements {order[j]}.."
                                   f"{order[j] + per_elem - 1} of src_buffer rows of {n}; "
                                   "out-of-bound gathers are undefined on the hardware")
        out[group] = rows[group][:, order[:, None] + span]
    dst.write_raw(out.reshape(dst.shape))


# ---------------------------------------------------------------------- nc_stream_shuffle
def _shuffle_mask(mask: object, op: str) -> tuple[int, ...]:
    if isinstance(mask, NkiTensor) or not isinstance(mask, Sequence | np.ndarray):
        raise KernelUsageError(f"{op}: shuffle_mask must be a list of {QUADRANT} ints, got "
                               f"{type(mask).__name__}")
    items = list(mask)
    if len(items) != QUADRANT:
        raise KernelUsageError(f"{op}: shuffle_mask has {len(items)} entries; it must have "
                               f"exactly {QUADRANT} (one per partition of a quadrant)")
    out = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not (
                0 <= int(v) < QUADRANT or int(v) == KEEP_ROW):
            raise KernelUsageError(f"{op}: shuffle_mask[{i}]={v!r}; each entry must be a "
                                   f"source partition 0..{QUADRANT - 1} of the quadrant or "
                                   f"{KEEP_ROW} (leave dst partition {i} unmodified)")
        out.append(int(v))
    return tuple(out)


@kernel_api
def nc_stream_shuffle(dst: NkiTensor, src: NkiTensor, shuffle_mask: object,
                      name: str | None = None) -> None:
    """Move partitions within 32-partition quadrants (Vector engine): for each quadrant q
    and row i, dst[32q + i] = src[32q + shuffle_mask[i]] (rows relative to each tile's
    first partition); shuffle_mask[i] = 255 leaves dst row i unmodified.

    src and dst are in SBUF or PSUM (in place allowed), have the same dtype (copied bit
    for bit), the same elements per partition and rank <= 5. With
    active = ceil(max(src, dst partitions) / 32) * 32, both start at partition 0 (96 or
    128 active), 0/64 (64) or 0/32/64/96 (32). A mask entry naming a src row the src
    tile does not have (src = t[0:1] with a nonzero entry) is an error; dst rows past
    dst's partitions are not written. The mask is the same for every quadrant.
    """
    op = "nc_stream_shuffle"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    mask = _shuffle_mask(shuffle_mask, op)
    require_on_chip(src, "src", op)
    require_on_chip(dst, "dst", op)
    _same_dtype(dst, src, "dst", "src", op)
    if src.free_size != dst.free_size:
        raise ShapeMismatchError(f"{op}: src {src.name}{list(src.shape)} and dst "
                                 f"{dst.name}{list(dst.shape)} differ in elements per "
                                 f"partition ({src.free_size} vs {dst.free_size})")
    for t, what in ((src, "src"), (dst, "dst")):
        if t.ndim > 5:
            raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} has {t.ndim} "
                                     "dimensions; at most 5 (four free dimensions)")
    active = math.ceil(max(src.partitions, dst.partitions) / QUADRANT) * QUADRANT
    legal = SHUFFLE_STARTS.get(active, ())
    for t, what in ((src, "src"), (dst, "dst")):
        if start_partition(t) not in legal:
            raise PartitionError(f"{op}: {what} {t.name} starts at partition "
                                 f"{start_partition(t)}; with {active} active partitions "
                                 f"src and dst must start at {' or '.join(map(str, legal))}")
    moves = _moves(mask, src.partitions, dst.partitions, active, op)
    prepare(ctx, op, Engine.VECTOR, (src,), (dst,))
    record(ctx, Engine.VECTOR, Opcode.NC_STREAM_SHUFFLE, (src,), (dst,),
           StreamShuffleAttrs(mask), free_elements=src.free_size)
    if ctx.run.symbolic:
        return
    to_rows, from_rows = moves
    values = _rows(src)[from_rows].copy()  # read first: dst may be src
    out = _rows(dst).copy()
    out[to_rows] = values
    dst.write_raw(out.reshape(dst.shape))


def _moves(mask: tuple[int, ...], src_rows: int, dst_rows: int, active: int,
           op: str) -> tuple[np.ndarray, np.ndarray]:
    """(dst rows written, src rows they copy), rows relative to each tile's start."""
    to_rows, from_rows = [], []
    for q in range(0, active, QUADRANT):
        for i, m in enumerate(mask):
            if m == KEEP_ROW or q + i >= dst_rows:
                continue
            if q + m >= src_rows:
                raise ShapeMismatchError(f"{op}: shuffle_mask[{i}]={m} makes dst row {q + i} "
                                         f"copy src row {q + m}, but src spans {src_rows} "
                                         "partition(s)")
            to_rows.append(q + i)
            from_rows.append(q + m)
    return np.array(to_rows, dtype=np.int64), np.array(from_rows, dtype=np.int64)
