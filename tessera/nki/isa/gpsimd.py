"""GpSimd-engine pattern instructions: iota and affine_select.

Both evaluate the affine expression
    value[p, i0, i1, ...] = offset + p * channel_multiplier + sum_k i_k * step_k
over the partitions `p` and a free-axis access pattern `[[step, num], ...]` (outermost
first, at most 4 entries), in 32-bit integer arithmetic. iota writes the values; affine_select
uses `cmp_op(value, 0)` as a predicate choosing between a tile and a constant (causal masks).
GpSimd has no PSUM port: every operand lives in SBUF.
"""

from __future__ import annotations

import math

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import AffineSelectAttrs, IotaAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, ShapeMismatchError
from tessera.nki.isa._common import check_same_layout, record, require_on_chip, tensor_arg
from tessera.nki.isa.vector import prepare
from tessera.nki.ops import AluOp, OpKind, equal, to_op
from tessera.nki.runtime import current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

_MAX_PATTERN_DIMS = 4


def _pattern(pairs: object) -> tuple[tuple[int, int], ...]:
    """An affine pattern as hashable (step, count) pairs."""
    return tuple((int(step), int(count)) for step, count in pairs)  # type: ignore[attr-defined]


def _int_arg(value: object, what: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise KernelUsageError(f"{op}: {what} must be an int (a compile-time int32), "
                               f"got {value!r}")
    return int(value)


def normalise_pattern(pattern: object, free_size: int, op: str) -> tuple[tuple[int, int], ...]:
    """`[[step, num], ...]` as int pairs whose counts multiply to `free_size`."""
    if not isinstance(pattern, list | tuple) or not pattern:
        raise KernelUsageError(f"{op}: pattern must be a non-empty list of [step, num] pairs, "
                               f"got {pattern!r}")
    if len(pattern) > _MAX_PATTERN_DIMS:
        raise KernelUsageError(f"{op}: pattern has {len(pattern)} dimensions; at most "
                               f"{_MAX_PATTERN_DIMS} are supported")
    pairs = []
    for entry in pattern:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise KernelUsageError(f"{op}: pattern entries must be [step, num], got {entry!r}")
        step = _int_arg(entry[0], "pattern step", op)
        num = _int_arg(entry[1], "pattern num", op)
        if num < 1:
            raise KernelUsageError(f"{op}: pattern num must be >= 1, got {num}")
        pairs.append((step, num))
    count = math.prod([n for _, n in pairs])
    if count != free_size:
        raise ShapeMismatchError(f"{op}: pattern {[list(p) for p in pairs]} covers {count} "
                                 f"elements per partition; dst has {free_size}")
    return tuple(pairs)


def affine_values(partitions: int, pattern: tuple[tuple[int, int], ...], offset: int,
                  channel_multiplier: int) -> np.ndarray:
    """[partitions, free] int64 holding the int32 (wrapped) affine expression."""
    free = np.zeros(1, dtype=np.int64)
    for step, num in pattern:
        # C order: the last pattern entry varies fastest.
        free = (free[:, None] + np.arange(num, dtype=np.int64)[None, :] * step).reshape(-1)
    lanes = np.arange(partitions, dtype=np.int64)[:, None] * channel_multiplier
    values = offset + lanes + free[None, :]
    # The engine computes in int32: wrap like two's-complement hardware would.
    return values.astype(np.int32).astype(np.int64)


@kernel_api
def iota(dst: NkiTensor, pattern: object, offset: int = 0, channel_multiplier: int = 0,
         name: str | None = None) -> None:
    """dst[p, i...] = offset + p * channel_multiplier + sum_k i_k * step_k (GpSimd engine).

    `pattern` is `[[step, num], ...]` over the free axes (outermost first, up to 4); the
    counts must multiply to dst's elements per partition. Values are computed as int32 and
    cast to dst's dtype. dst must be in SBUF.
    """
    op = "iota"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    prepare(ctx, op, Engine.GPSIMD, (), (dst,))
    require_on_chip(dst, "dst", op, (Buffer.SBUF,))
    pairs = normalise_pattern(pattern, dst.free_size, op)
    off = _int_arg(offset, "offset", op)
    mult = _int_arg(channel_multiplier, "channel_multiplier", op)
    record(ctx, Engine.GPSIMD, Opcode.IOTA, (), (dst,),
           IotaAttrs(_pattern(pairs), off, mult))
    if ctx.run.symbolic:
        return
    values = affine_values(dst.partitions, pairs, off, mult)
    dst.write(values.reshape(dst.shape))


def _compare_op(cmp_op: object, op: str) -> AluOp:
    alu = to_op(cmp_op, "cmp_op")
    if alu.kind is not OpKind.COMPARE:
        raise KernelUsageError(f"{op}: cmp_op must be a comparison (nl.equal, nl.greater_equal,"
                               f" ...), got nl.{alu.name}")
    return alu


@kernel_api
def affine_select(dst: NkiTensor, pattern: object, channel_multiplier: int,
                  on_true_tile: NkiTensor, on_false_value: object, cmp_op: object = equal,
                  offset: int = 0, name: str | None = None) -> None:
    """dst = on_true_tile where cmp_op(affine value, 0) holds, else on_false_value (GpSimd).

    The affine value is the iota expression `offset + p * channel_multiplier + sum i_k *
    step_k`. A causal mask keeps element (p, i) when p - i >= 0: `pattern=[[-1, n]]`,
    `channel_multiplier=1`, `cmp_op=nl.greater_equal`. Selected elements keep their bits
    when dtypes match; `on_false_value` is a float32 constant cast to dst's dtype.
    """
    op = "affine_select"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(on_true_tile, "on_true_tile", op)
    prepare(ctx, op, Engine.GPSIMD, (src,), (dst,))
    require_on_chip(src, "on_true_tile", op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.SBUF,))
    check_same_layout(src, dst, "on_true_tile", "dst", op)
    pairs = normalise_pattern(pattern, dst.free_size, op)
    off = _int_arg(offset, "offset", op)
    mult = _int_arg(channel_multiplier, "channel_multiplier", op)
    alu = _compare_op(cmp_op, op)
    if isinstance(on_false_value, NkiTensor) or isinstance(on_false_value, bool):
        raise KernelUsageError(f"{op}: on_false_value must be a number (a float32 constant)")
    try:
        fill = float(on_false_value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise KernelUsageError(f"{op}: on_false_value must be a number, got "
                               f"{on_false_value!r}") from None
    record(ctx, Engine.GPSIMD, Opcode.AFFINE_SELECT, (src,), (dst,),
           AffineSelectAttrs(_pattern(pairs), off, mult, alu.name, fill))
    if ctx.run.symbolic:
        return
    p, f = dst.partitions, dst.free_size
    affine = affine_values(p, pairs, off, mult)
    # Compare the exact integers (float32 would blur values beyond 2**24).
    keep = np.asarray(alu.rule(affine, np.int64(0))) != 0
    fill_f32 = np.float32(fill)
    if src.dtype == dst.dtype:
        out = src.numpy().reshape(p, f).copy()
        out[~keep] = dt.cast(np.full(int((~keep).sum()), fill_f32), dst.dtype)
        dst.numpy()[...] = out.reshape(dst.shape)
    else:
        dst.write(np.where(keep, src.read_f32().reshape(p, f), fill_f32).reshape(dst.shape))
