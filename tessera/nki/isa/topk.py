"""Top-8 search on the Vector engine (max8, nc_find_index8, nc_match_replace8) and nonzero
index compaction on the GpSimd engine (nonzero_with_count).

Semantics follow the NKI API reference pages (Neuron 2.32/2.33 for the newest wording):
the Vector-engine instructions compare in float32, work per partition over the flattened
free elements, and pair duplicated search values with distinct positions (nc_find_index8 in
ascending column order, nc_match_replace8 in descending column order, as the pages state).
A search value that is absent gets the all-ones index (0xFFFF / 0xFFFFFFFF), the sentinel
the nc_find_index8 page documents; nc_match_replace8 calls that case undefined, and Tessera
writes the same sentinel and replaces nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import NO_ATTRS, MatchReplaceAttrs, NonzeroCountAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import DTypeError, KernelUsageError, PartitionError, ShapeMismatchError
from tessera.nki.isa._common import check_same_layout, record, require_on_chip, tensor_arg
from tessera.nki.isa.vector import prepare
from tessera.nki.runtime import current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

K = 8  # values found per partition by one instruction
MAX_FREE = 16384  # elements per partition the Vector engine searches in one instruction
INDEX_DTYPES = ("uint16", "uint32")  # nc_find_index8's documented output types
GPSIMD_PARTITION_STRIDE = 16  # each of the 8 GpSimd cores owns 16 partitions
_INT32 = np.iinfo(np.int32)


# ---------------------------------------------------------------------- shared checks
def _max_rank(t: NkiTensor, rank: int, what: str, op: str) -> None:
    if t.ndim > rank:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} has {t.ndim} "
                                 f"dimensions; at most {rank} (partition dimension included) "
                                 "are supported")


def _same_rows(tensors: Iterable[tuple[NkiTensor, str]], op: str) -> None:
    """Every operand spans the partition count of the first one."""
    items = list(tensors)
    first, first_what = items[0]
    for t, what in items[1:]:
        if t.partitions != first.partitions:
            raise ShapeMismatchError(f"{op}: {first_what} {first.name}{list(first.shape)} and "
                                     f"{what} {t.name}{list(t.shape)} span different partition "
                                     f"counts ({first.partitions} vs {t.partitions})")


def _free_exactly(t: NkiTensor, n: int, what: str, op: str) -> None:
    if t.free_size != n:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} must hold exactly {n} "
                                 f"elements per partition, has {t.free_size}")


def _free_between(t: NkiTensor, low: int, high: int, what: str, op: str) -> None:
    if not low <= t.free_size <= high:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} has {t.free_size} "
                                 f"elements per partition; it must have between {low} and "
                                 f"{high}")


def _index_dtype(t: NkiTensor, what: str, op: str, allowed: tuple[str, ...]) -> None:
    if t.dtype.name not in allowed:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be "
                         f"{' or '.join(allowed)}")


def _rows(t: NkiTensor) -> np.ndarray:
    """[P, N] float32 values of a tile, free dimensions flattened (engines compute in fp32)."""
    return t.read_f32().reshape(t.partitions, t.free_size)


def pair_positions(data: np.ndarray, vals: np.ndarray, order: Iterable[int]) -> np.ndarray:
    """[P, 8] position of each search value in its partition's data, -1 where absent.

    Values are taken in `order`; each takes the first position not taken by an earlier one,
    so duplicated values are paired with distinct, increasing positions in that order.
    """
    p = data.shape[0]
    rows = np.arange(p)
    taken = np.zeros(data.shape, dtype=bool)
    out = np.full(vals.shape, -1, dtype=np.int64)
    for j in order:
        hits = (data == vals[:, j:j + 1]) & ~taken
        first = hits.argmax(axis=1)
        found = hits[rows, first]
        out[found, j] = first[found]
        taken[rows[found], first[found]] = True
    return out


def _write_indices(dst: NkiTensor, positions: np.ndarray) -> None:
    """Store positions as dst's integer type, absent ones (-1) as its all-ones sentinel."""
    storage = np.dtype(dst.dtype.storage)
    sentinel = np.array(-1, dtype=np.int64).astype(storage)  # all ones in any width
    bits = np.where(positions >= 0, positions, 0).astype(storage)
    bits[positions < 0] = sentinel
    dst.write_raw(bits.reshape(dst.shape))


# ---------------------------------------------------------------------- Vector engine
@kernel_api
def max8(dst: NkiTensor, src: NkiTensor, name: str | None = None) -> None:
    """dst[P, 8] = the 8 largest values of each partition of src, in descending order.

    src is read as float32 (all its free dimensions, 8 to 16,384 elements per partition,
    rank <= 5); the values are cast to dst's dtype (rank <= 3, 8 elements per partition).
    Equal values each take a slot, so a partition holding 5 three times yields three 5s.
    The page does not order NaN; Tessera sorts it above every number. Vector engine.
    """
    op = "max8"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    prepare(ctx, op, Engine.VECTOR, (src,), (dst,))
    _max_rank(src, 5, "src", op)
    _max_rank(dst, 3, "dst", op)
    _same_rows(((src, "src"), (dst, "dst")), op)
    _free_between(src, K, MAX_FREE, "src", op)
    _free_exactly(dst, K, "dst", op)
    record(ctx, Engine.VECTOR, Opcode.MAX8, (src,), (dst,), NO_ATTRS,
           free_elements=src.free_size)
    if ctx.run.symbolic:
        return
    ordered = np.sort(_rows(src), axis=1)[:, ::-1]  # ascending sort puts NaN last: reversed
    dst.write(ordered[:, :K])


@kernel_api
def nc_find_index8(dst: NkiTensor, data: NkiTensor, vals: NkiTensor,
                   name: str | None = None) -> None:
    """dst[P, 8] = index (from 0, over data's flattened free elements) of the first
    occurrence of each of the 8 vals of the partition in data (Vector engine).

    data has 8 to 16,384 elements per partition (rank <= 3), vals exactly 8 (rank <= 3);
    both are compared as float32. dst is uint16 or uint32. A value that appears several
    times in vals is paired with successive occurrences in data, in ascending column order
    (vals [3, 8, 8] over data [8, 3, 8] gives [1, 0, 2]); a value with no (further)
    occurrence gets the all-ones sentinel (0xFFFF or 0xFFFFFFFF).
    """
    op = "nc_find_index8"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    data = tensor_arg(data, "data", op)
    vals = tensor_arg(vals, "vals", op)
    prepare(ctx, op, Engine.VECTOR, (data, vals), (dst,))
    _max_rank(data, 3, "data", op)
    _max_rank(vals, 3, "vals", op)
    _same_rows(((data, "data"), (vals, "vals"), (dst, "dst")), op)
    _free_between(data, K, MAX_FREE, "data", op)
    _free_exactly(vals, K, "vals", op)
    _free_exactly(dst, K, "dst", op)
    _index_dtype(dst, "dst", op, INDEX_DTYPES)
    record(ctx, Engine.VECTOR, Opcode.NC_FIND_INDEX8, (data, vals), (dst,), NO_ATTRS,
           free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    _write_indices(dst, pair_positions(_rows(data), _rows(vals), range(K)))


def _immediate(imm: object, op: str) -> float:
    """`imm` as the float32 constant the instruction carries."""
    if isinstance(imm, NkiTensor) or isinstance(imm, bool) or not isinstance(
            imm, int | float | np.integer | np.floating):
        raise KernelUsageError(f"{op}: imm must be a number (a float32 constant), got "
                               f"{type(imm).__name__}")
    return float(np.float32(imm))


@kernel_api
def nc_match_replace8(dst: NkiTensor, data: NkiTensor, vals: NkiTensor, imm: object,
                      dst_idx: NkiTensor | None = None, name: str | None = None) -> None:
    """dst = data with the first occurrence of each of the partition's 8 vals replaced by
    `imm` (Vector engine); dst_idx[P, 8], if given, receives the matched positions.

    data (rank <= 5, at most 16,384 elements per partition) and dst have the same layout;
    vals (rank <= 3) holds exactly 8 values per partition; inputs may be in SBUF or PSUM
    and are compared as float32. vals are processed last column first, so a value
    repeated in vals takes successive occurrences in data from its highest column down
    (data [1, 2, 3, 4, 8 x 7], vals [3, 8 x 7] gives dst_idx [2, 10, 9, 8, 7, 6, 5, 4]).
    An absent value replaces nothing and its dst_idx slot holds the all-ones sentinel.
    Elements not replaced keep their bits when dst has data's dtype.
    """
    op = "nc_match_replace8"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    data = tensor_arg(data, "data", op)
    vals = tensor_arg(vals, "vals", op)
    idx = None if dst_idx is None else tensor_arg(dst_idx, "dst_idx", op)
    number = _immediate(imm, op)
    writes = (dst,) if idx is None else (dst, idx)
    prepare(ctx, op, Engine.VECTOR, (data, vals), writes)
    _max_rank(data, 5, "data", op)
    _max_rank(vals, 3, "vals", op)
    _same_rows(((data, "data"), (vals, "vals"), (dst, "dst")), op)
    _free_between(data, 1, MAX_FREE, "data", op)
    _free_exactly(vals, K, "vals", op)
    check_same_layout(data, dst, "data", "dst", op)
    if idx is not None:
        _same_rows(((data, "data"), (idx, "dst_idx")), op)
        _free_exactly(idx, K, "dst_idx", op)
        if not idx.dtype.is_int:
            raise DTypeError(f"{op}: dst_idx {idx.name} is {idx.dtype.name}; indices need an "
                             "integer dtype (uint32 in the page's reference)")
    record(ctx, Engine.VECTOR, Opcode.NC_MATCH_REPLACE8, (data, vals), writes,
           MatchReplaceAttrs(number, idx is not None), free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    p, n = data.partitions, data.free_size
    positions = pair_positions(_rows(data), _rows(vals), reversed(range(K)))
    raw = data.numpy().reshape(p, n).copy()  # read before writing: dst may alias data
    rows, cols = np.nonzero(positions >= 0)
    hit_cols = positions[rows, cols]
    if dst.dtype == data.dtype:
        raw[rows, hit_cols] = dt.cast(np.full(len(rows), number, np.float32), dst.dtype)
        dst.write_raw(raw.reshape(dst.shape))
    else:
        values = raw.astype(np.float32)
        values[rows, hit_cols] = number
        dst.write(values.reshape(dst.shape))
    if idx is not None:
        _write_indices(idx, positions)


# ---------------------------------------------------------------------- GpSimd engine
def _int32_arg(value: object, what: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not (
            _INT32.min <= int(value) <= _INT32.max):
        raise KernelUsageError(f"{op}: {what} must be an int32 constant, got {value!r}")
    return int(value)


def _start_partition(t: NkiTensor) -> int:
    per = t.storage.partition_elems
    return t.offset // per if per else 0


@kernel_api
def nonzero_with_count(dst: NkiTensor, src: NkiTensor, index_offset: int = 0,
                       padding_val: int = -1, name: str | None = None) -> None:
    """Per served partition: dst = [indices of src's nonzero elements + index_offset,
    padding_val for the remaining slots, count of nonzeros] (GpSimd engine, NC-v3+).

    src (float32 or int32, SBUF) has T elements per partition, dst (int32, SBUF) T + 1.
    Each of the 8 GpSimd cores serves only the first of its 16 partitions, so only tile
    rows on partitions 0, 16, ..., 112 are read and written; every other row of dst,
    count slot included, keeps its contents. src and dst therefore start on the same
    partition. index_offset and padding_val are int32 constants.
    """
    op = "nonzero_with_count"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    limits = ctx.run.limits
    if limits.version < 3:
        raise KernelUsageError(f"{op} is available only on NeuronCore-v3 and newer; this "
                               f"kernel targets {limits.chip} (NeuronCore-v{limits.version})")
    require_on_chip(src, "src", op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.SBUF,))
    prepare(ctx, op, Engine.GPSIMD, (src,), (dst,))
    _index_dtype(src, "src", op, ("float32", "int32"))
    _index_dtype(dst, "dst", op, ("int32",))
    offset = _int32_arg(index_offset, "index_offset", op)
    padding = _int32_arg(padding_val, "padding_val", op)
    _same_rows(((src, "src"), (dst, "dst")), op)
    t = src.free_size
    _free_exactly(dst, t + 1, "dst", op)
    if _start_partition(src) != _start_partition(dst):
        raise PartitionError(f"{op}: src {src.name} starts at partition "
                             f"{_start_partition(src)} and dst {dst.name} at "
                             f"{_start_partition(dst)}; each GpSimd core reads and writes its "
                             "own first partition, so both must start on the same partition")
    record(ctx, Engine.GPSIMD, Opcode.NONZERO_WITH_COUNT, (src,), (dst,),
           NonzeroCountAttrs(offset, padding), free_elements=t)
    if ctx.run.symbolic:
        return
    first = (-_start_partition(src)) % GPSIMD_PARTITION_STRIDE  # first served tile row
    served = np.arange(first, src.partitions, GPSIMD_PARTITION_STRIDE)
    values = src.numpy().reshape(src.partitions, t)[served]
    out = dst.numpy().reshape(dst.partitions, t + 1).copy()
    for row, line in zip(served, values, strict=True):
        found = np.flatnonzero(line != 0)
        # int32 arithmetic, as the engine's: the offset wraps rather than widening
        out[row, :found.size] = (found.astype(np.int64) + offset).astype(np.int32)
        out[row, found.size:t] = padding
        out[row, t] = found.size
    dst.write_raw(out.reshape(dst.shape))
