"""`nki.lnc`: exchange, reduction and synchronisation between the two physical NeuronCores
that share an HBM stack (the `nki.lnc` pages, v2.34).

`core_barrier` is `nki.isa.core_barrier` (LNC=1 or 2). `sendrecv` is `nki.isa.sendrecv`
without `pipe_id` and with a DMA QoS `priority` (0 highest .. 3 lowest, NeuronCore-v4+ only,
and never with `dma_engine.gpsimd_dma`). `sendrecv_compute` swaps tiles like sendrecv and
writes `reduce_op(src, peer's src)` to dst (nl.add / nl.maximum / nl.minimum), using the
DMA engines' reduction; it needs LNC=2 on NeuronCore-v3+. Both pair with the peer's calls
in program order (the n-th sendrecv or sendrecv_compute of one core meets the n-th of the
other), through the launch's `CoreScheduler`, as nisa.sendrecv does.

The vendor's `nki.isa` entry points are deprecated wrappers of these that warn; Tessera's
`nisa.core_barrier` / `nisa.sendrecv` stay silent (existing kernels and tests use them).
The priority is checked and recorded but not timed: one core's swaps do not compete for QoS
in the timing model.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import collectives_math as _cm
from tessera.nki.attrs import SendRecvAttrs as _SendRecvAttrs
from tessera.nki.attrs import SendRecvComputeAttrs as _ComputeAttrs
from tessera.nki.buffers import Buffer as _Buffer
from tessera.nki.errors import BufferKindError as _BufferKindError
from tessera.nki.errors import DTypeError as _DTypeError
from tessera.nki.errors import KernelUsageError as _UsageError
from tessera.nki.isa import _common as _ic
from tessera.nki.isa import sync as _sync
from tessera.nki.isa.constants import dma_engine as _dma_engine
from tessera.nki.isa.sync import core_barrier
from tessera.nki.ops import to_op as _to_op
from tessera.nki.runtime import CoreContext as _Ctx
from tessera.nki.runtime import current as _current
from tessera.nki.runtime import kernel_api as _kernel_api
from tessera.nki.stream import Engine as _Engine
from tessera.nki.stream import Instruction as _Instruction
from tessera.nki.stream import Opcode as _Opcode
from tessera.nki.tensor import NkiTensor as _Tensor

__all__ = ["core_barrier", "sendrecv", "sendrecv_compute"]

_REDUCE_OPS = ("add", "maximum", "minimum")


def _start(src: object, dst: object, op: str) -> tuple[_Ctx, _Tensor, _Tensor]:
    ctx = _current()
    src = _ic.tensor_arg(src, "src", op)
    dst = _ic.tensor_arg(dst, "dst", op)
    _sync._require_lnc_chip(ctx, op)
    if ctx.run.num_cores != 2:
        raise _UsageError(f"{op} exchanges tiles between the two cores of a logical "
                          "NeuronCore; launch the kernel with kernel[2] (LNC=2)")
    return ctx, src, dst


def _priority(ctx: _Ctx, priority: object, op: str) -> int | None:
    """The DMA QoS level: 0 (highest) .. 3 (lowest), NeuronCore-v4 and newer only."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int | np.integer) or not (
            0 <= priority <= 3):
        raise _UsageError(f"{op}: priority={priority!r}; the DMA QoS level is 0 (highest) "
                          "to 3 (lowest)")
    lim = ctx.run.limits
    if lim.version < 4:
        raise _UsageError(f"{op}: priority is available on NeuronCore-v4 and newer only; this "
                          f"kernel runs on {lim.chip} (v{lim.version})")
    return int(priority)


def _swap(ctx: _Ctx, src: _Tensor, dst: _Tensor, to_rank: int, from_rank: int,
          inst: _Instruction, op: str) -> np.ndarray | None:
    """Post src for the peer, return the peer's tile (None in a symbolic run)."""
    tile = None if ctx.run.symbolic else src.numpy().copy()
    values = ctx.run.cores.sendrecv(ctx.core_id, to_rank, from_rank,  # type: ignore[attr-defined]
                                    tile, str(inst.location))
    if values is None:
        return None
    if values.size != dst.size or values.dtype != dst.dtype.storage:
        raise _UsageError(f"{op}: core {from_rank} sent {values.size} {values.dtype} "
                          f"elements; dst {dst.name}{list(dst.shape)} holds {dst.size} "
                          f"{dst.dtype.name}")
    return values.reshape(dst.shape)


@_kernel_api
def sendrecv(src: _Tensor, dst: _Tensor, send_to_rank: int, recv_from_rank: int,
             dma_engine: object = _dma_engine.dma, name: str | None = None,
             priority: int | None = None) -> None:
    """Send src to core `send_to_rank` and receive core `recv_from_rank`'s src into dst
    (SBUF tiles of equal dtype and layout; LNC=2 on NeuronCore-v3+). `priority` (0..3,
    NeuronCore-v4+) is refused with `dma_engine.gpsimd_dma`."""
    op = "sendrecv"
    ctx, src, dst = _start(src, dst, op)
    to_rank = _sync._rank(send_to_rank, "send_to_rank", ctx, op)
    from_rank = _sync._rank(recv_from_rank, "recv_from_rank", ctx, op)
    if not isinstance(dma_engine, _dma_engine) or dma_engine not in (
            _dma_engine.dma, _dma_engine.gpsimd_dma):
        raise _UsageError(f"{op}: dma_engine={dma_engine!r}; it is nki.isa.dma_engine.dma or "
                          "nki.isa.dma_engine.gpsimd_dma")
    prio = _priority(ctx, priority, op)
    if prio is not None and dma_engine is _dma_engine.gpsimd_dma:
        raise _UsageError(f"{op}: priority={prio} with dma_engine.gpsimd_dma; that engine "
                          "takes priority=None")
    _sync._check_sendrecv_tiles(ctx, src, dst, op)
    # pipe_id is gone from nki.lnc.sendrecv; 0 is what the record carries
    inst = _ic.record(ctx, _Engine.DMA, _Opcode.SENDRECV, (src,), (dst,),
                      _SendRecvAttrs(to_rank, from_rank, 0, dma_engine.value),
                      partitions=src.partitions, free_elements=src.free_size)
    values = _swap(ctx, src, dst, to_rank, from_rank, inst, op)
    if values is not None:
        dst.numpy()[...] = values


def _compute_tiles(ctx: _Ctx, src: _Tensor, dst: _Tensor, op: str) -> None:
    """Both in SBUF or both in private HBM; equal dtype and shape."""
    for what, t in (("src", src), ("dst", dst)):
        if t.buffer not in (_Buffer.SBUF, _Buffer.PRIVATE_HBM):
            raise _BufferKindError(f"{op}: {what} {t.name}{list(t.shape)} is in "
                                   f"{t.buffer.value}; it must be in SBUF or private HBM "
                                   "(shared HBM and PSUM are not supported)")
    if src.buffer is not dst.buffer:
        raise _BufferKindError(f"{op}: src is in {src.buffer.value} but dst is in "
                               f"{dst.buffer.value}; both must be in the same memory")
    if src.buffer is _Buffer.SBUF:
        _ic.check_partitions(ctx, src, "src", op)
        _ic.check_partitions(ctx, dst, "dst", op)
    _ic.check_same_layout(src, dst, "src", "dst", op)
    if src.dtype != dst.dtype:
        raise _DTypeError(f"{op}: src {src.name} is {src.dtype.name} but dst {dst.name} is "
                          f"{dst.dtype.name}; the reduced tile has the src dtype")


@_kernel_api
def sendrecv_compute(src: _Tensor, dst: _Tensor, send_to_rank: int, recv_from_rank: int,
                     reduce_op: object, name: str | None = None,
                     priority: int | None = None) -> None:
    """Send src to core `send_to_rank`, receive core `recv_from_rank`'s src, and write
    `reduce_op(src, received)` to dst (nl.add, nl.maximum or nl.minimum; float arithmetic in
    float32, integers in int64, then cast to dst's dtype). LNC=2 on NeuronCore-v3+."""
    op = "sendrecv_compute"
    ctx, src, dst = _start(src, dst, op)
    to_rank = _sync._rank(send_to_rank, "send_to_rank", ctx, op)
    from_rank = _sync._rank(recv_from_rank, "recv_from_rank", ctx, op)
    red = _to_op(reduce_op, "reduce_op").name
    if red not in _REDUCE_OPS:
        raise _UsageError(f"{op}: reduce_op=nl.{red}; it is nl.add, nl.maximum or nl.minimum")
    prio = _priority(ctx, priority, op)
    _compute_tiles(ctx, src, dst, op)
    on_chip = src.buffer.on_chip
    inst = _ic.record(ctx, _Engine.DMA, _Opcode.SENDRECV_COMPUTE, (src,), (dst,),
                      _ComputeAttrs(sources=1, reduce_op=red, send_to_rank=to_rank,
                                    recv_from_rank=from_rank, priority=prio),
                      partitions=src.partitions if on_chip else 1,
                      free_elements=src.free_size if on_chip else src.size)
    mine = None if ctx.run.symbolic else src.numpy().copy()  # before dst may alias src
    values = _swap(ctx, src, dst, to_rank, from_rank, inst, op)
    if values is not None:
        dst.numpy()[...] = _cm.reduce_values([mine, values], red, dst.dtype)
