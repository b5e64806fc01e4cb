"""Tensor engine instructions: nc_matmul and nc_transpose."""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import NO_ATTRS, MatmulAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import DTypeError, EngineAccessError, MatmulShapeError, PsumBankError
from tessera.nki.isa._common import (
    check_partitions,
    record,
    require_on_chip,
    resolve_engine,
    tensor_arg,
)
from tessera.nki.isa.constants import matmul_perf_mode
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

_WIDE = (dt.float32, dt.tfloat32)


def check_psum_bank(ctx: CoreContext, dst: NkiTensor, op: str) -> None:
    """A Tensor-engine write must stay inside one 2 KiB-per-partition PSUM bank."""
    bank = ctx.run.limits.psum_bank_bytes
    lo, hi = dst.access().free_byte_range
    if hi - lo > bank or lo // bank != (hi - 1) // bank:
        raise PsumBankError(
            f"{op}: dst {dst.name}{list(dst.shape)} {dst.dtype.name} covers bytes {lo}..{hi} of "
            f"each partition, which crosses a PSUM bank boundary (banks are {bank} bytes per "
            "partition, i.e. 512 fp32 values)")


def _check_double_row(lim: object, stationary: NkiTensor, moving: NkiTensor,
                      perf_mode: object, op: str) -> None:
    """double_row (NC-v3+): fp8 operands laid out [K, 2, free], two rows per partition."""
    if lim.version < 3:  # type: ignore[attr-defined]
        raise EngineAccessError(f"{op}: perf_mode={perf_mode} needs NeuronCore-v3 or later; "
                                f"this kernel runs on {lim.chip} (v{lim.version})")  # type: ignore[attr-defined]
    for t, what in ((stationary, "stationary"), (moving, "moving")):
        if t.ndim != 3 or t.shape[1] != 2:
            raise MatmulShapeError(f"{op}: double_row {what} {t.name}{list(t.shape)} must be "
                                   "[K, 2, free] (two rows per partition)")
        if t.dtype.kind is not dt.DTypeKind.FLOAT8:
            raise DTypeError(f"{op}: double_row needs fp8 operands; {what} {t.name} is "
                             f"{t.dtype.name}")


@kernel_api
def nc_matmul(dst: NkiTensor, stationary: NkiTensor, moving: NkiTensor,
              is_stationary_onezero: bool = False, is_moving_onezero: bool = False,
              is_transpose: bool = False, tile_position: tuple = (), tile_size: tuple = (),
              perf_mode: object = None, accumulate: bool | None = None,
              name: str | None = None) -> None:
    """dst[M, N] (PSUM, fp32) = stationary[K, M]^T @ moving[K, N], contracting partitions.

    The first matmul writing a PSUM location starts an accumulation group (overwrites);
    later ones add, until another instruction writes that location. `accumulate=True`
    always adds and `False` always overwrites.
    """
    op = "nc_matmul"
    ctx = current()
    lim = ctx.run.limits
    dst = tensor_arg(dst, "dst", op)
    stationary = tensor_arg(stationary, "stationary", op)
    moving = tensor_arg(moving, "moving", op)
    require_on_chip(stationary, "stationary", op, (Buffer.SBUF,))
    require_on_chip(moving, "moving", op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.PSUM,))
    for t, what in ((stationary, "stationary"), (moving, "moving"), (dst, "dst")):
        check_partitions(ctx, t, what, op)
    double_row = perf_mode not in (None, matmul_perf_mode.none)
    rows = 2 if double_row else 1  # double_row: two fp8 rows per partition, [K, 2, free]
    if double_row:
        _check_double_row(lim, stationary, moving, perf_mode, op)
    k, m = stationary.partitions, stationary.free_size // rows
    k2, n = moving.partitions, moving.free_size // rows
    if k != k2:
        raise MatmulShapeError(f"{op}: contraction mismatch: stationary {stationary.name}"
                               f"{list(stationary.shape)} has K={k} partitions, moving "
                               f"{moving.name}{list(moving.shape)} has K={k2}")
    if m > lim.stationary_fmax:
        raise MatmulShapeError(f"{op}: stationary {stationary.name}{list(stationary.shape)} is "
                               f"{k}x{m}; the limit is {lim.pmax}x{lim.stationary_fmax}")
    if n > lim.moving_fmax:
        raise MatmulShapeError(f"{op}: moving {moving.name}{list(moving.shape)} is {k}x{n}; "
                               f"the limit is {lim.pmax}x{lim.moving_fmax}")
    if dst.partitions != m or dst.free_size != n:
        raise MatmulShapeError(f"{op}: dst {dst.name}{list(dst.shape)} must be [{m}, {n}] "
                               f"(stationary free x moving free), got "
                               f"{dst.partitions}x{dst.free_size}")
    for t, what in ((stationary, "stationary"), (moving, "moving")):
        if t.dtype.kind is dt.DTypeKind.SCALE:
            raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}, an MX scale type, not "
                             "a matmul operand (MX scales go to nisa.nc_matmul_mx)")
        if not t.dtype.is_float:
            raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; the Tensor engine "
                             "takes fp8/bf16/fp16/tf32/fp32 inputs")
    if (stationary.dtype in _WIDE) != (moving.dtype in _WIDE):
        raise DTypeError(f"{op}: fp32/tf32 inputs cannot be mixed with narrower ones "
                         f"({stationary.dtype.name} x {moving.dtype.name})")
    allowed_out = (dt.float32, dt.bfloat16) if lim.version >= 4 else (dt.float32,)
    if dst.dtype not in allowed_out:
        raise DTypeError(f"{op}: dst {dst.name} is {dst.dtype.name}; PSUM results are "
                         f"{'/'.join(d.name for d in allowed_out)} on NeuronCore-v{lim.version}")
    check_psum_bank(ctx, dst, op)
    record(ctx, Engine.TENSOR, Opcode.NC_MATMUL, (stationary, moving), (dst,),
           MatmulAttrs(stationary_free=m, moving_free=n, contraction_rows=rows,
                       perf_mode=getattr(perf_mode, "value", perf_mode), accumulate=accumulate,
                       is_transpose=bool(is_transpose),
                       is_stationary_onezero=bool(is_stationary_onezero),
                       is_moving_onezero=bool(is_moving_onezero),
                       tile_position=tuple(tile_position) or None,
                       tile_size=tuple(tile_size) or None),
           partitions=k, free_elements=n)
    if ctx.run.symbolic:
        return
    # contract over partitions (and the row pair in double_row mode)
    product = np.dot(stationary.read_f32().reshape(k * rows, m).T,
                     moving.read_f32().reshape(k * rows, n)).reshape(dst.shape)
    target = dst.numpy()
    mask = dst.acc_mask()
    if accumulate is None:
        # the common cases without a per-element select: a fresh group, or all accumulating
        add_all = bool(mask.all())
        add_none = not add_all and not mask.any()
    else:
        add_all, add_none = accumulate, not accumulate
    if dst.dtype is dt.float32 and (add_all or add_none):
        # fp32 PSUM: accumulate in place, no cast needed (the hot path of tiled matmuls)
        if add_all:
            np.add(target, product, out=target)
        else:
            target[...] = product
    else:
        if add_none:
            result = product
        elif add_all:
            result = target.astype(np.float32) + product
        else:
            result = np.where(mask, target.astype(np.float32) + product, product)
        target[...] = dt.cast(result, dst.dtype)
    mask[...] = True


@kernel_api
def nc_transpose(dst: NkiTensor, data: NkiTensor, engine: object = None,
                 name: str | None = None) -> None:
    """dst[F, P] = data[P, F] (free axes flattened). Tensor engine: up to 128x128 into PSUM;
    Vector engine: up to 32x32, SBUF or PSUM."""
    op = "nc_transpose"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    data = tensor_arg(data, "data", op)
    eng = resolve_engine(engine, Opcode.NC_TRANSPOSE, op)
    p, f = data.partitions, data.free_size
    limit = ctx.run.limits.pmax if eng is Engine.TENSOR else 32
    if p > limit or f > limit:
        raise MatmulShapeError(f"{op}: data {data.name}{list(data.shape)} is {p}x{f}; the "
                               f"{eng.value} engine transposes at most {limit}x{limit}")
    if dst.partitions != f or dst.free_size != p:
        raise MatmulShapeError(f"{op}: dst {dst.name}{list(dst.shape)} must be [{f}, {p}]")
    if eng is Engine.TENSOR:
        require_on_chip(data, "data", op, (Buffer.SBUF,))
        require_on_chip(dst, "dst", op, (Buffer.PSUM,))
        check_psum_bank(ctx, dst, op)
    else:
        require_on_chip(data, "data", op)
        require_on_chip(dst, "dst", op)
    # the engine is passed so a Vector-engine transpose obeys the partition-start rule
    check_partitions(ctx, data, "data", op, eng)
    check_partitions(ctx, dst, "dst", op, eng)
    record(ctx, eng, Opcode.NC_TRANSPOSE, (data,), (dst,), NO_ATTRS, partitions=p,
           free_elements=f)
    if ctx.run.symbolic:
        return
    values = data.numpy().reshape(p, f).T
    if dst.dtype == data.dtype:
        dst.write_raw(values)  # bit-exact transpose
    else:
        dst.write(values.astype(np.float32))
