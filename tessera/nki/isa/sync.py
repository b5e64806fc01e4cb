"""Logical-NeuronCore synchronisation: get_nc_version, core_barrier and sendrecv.

With LNC=2 a kernel body runs once per physical core and the cores share HBM. The launch's
`CoreScheduler` (`tessera.nki.multicore`) runs them one at a time: a `core_barrier` hands
the turn over until both cores reached it, a `sendrecv` posts this core's tile and waits
for the peer's n-th one; a peer that can never come is reported as a deadlock naming both
cores.
"""

from __future__ import annotations

import numpy as np

from tessera.nki.attrs import BarrierAttrs, SendRecvAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError
from tessera.nki.isa._common import (
    check_partitions,
    check_same_layout,
    record,
    require_on_chip,
    resolve_engine,
    tensor_arg,
)
from tessera.nki.isa.constants import dma_engine as _dma_engines
from tessera.nki.isa.constants import nc_version
from tessera.nki.runtime import (
    CoreContext,
    core_limits,
    current,
    default_chip,
    kernel_api,
    maybe_current,
)
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor


@kernel_api
def get_nc_version() -> nc_version:
    """The NeuronCore generation the kernel targets (gen2 trn1/inf2, gen3 trn2, gen4 trn3).

    Inside a kernel it is the launch's chip; on the host, the default chip
    (NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).
    """
    ctx = maybe_current()
    limits = ctx.run.limits if ctx is not None else core_limits(default_chip())
    try:
        return nc_version(limits.version)
    except ValueError:
        raise KernelUsageError(f"chip {limits.chip} has NeuronCore version {limits.version}, "
                               "which nisa.nc_version does not name") from None


def _require_lnc_chip(ctx: CoreContext, op: str) -> None:
    lim = ctx.run.limits
    if lim.version < 3:
        raise KernelUsageError(f"{op} needs NeuronCore-v3 or later (logical NeuronCores); "
                               f"this kernel runs on {lim.chip} (v{lim.version})")


def _rank(value: object, what: str, ctx: CoreContext, op: str) -> int:
    n = ctx.run.num_cores
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not (
            0 <= int(value) < n):
        raise KernelUsageError(f"{op}: {what}={value!r} is not a core of this launch "
                               f"(ranks 0..{n - 1})")
    return int(value)


@kernel_api
def core_barrier(data: NkiTensor, cores: tuple[int, ...] = (0, 1), engine: object = None,
                 name: str | None = None) -> None:
    """Wait until both cores of the logical NeuronCore reach this point (NeuronCore-v3+).

    `data` is the shared HBM tensor both cores write before and read after the barrier;
    only `cores=(0, 1)` is supported. With LNC=1 there is nobody to wait for and the call
    only records the instruction. Runs on GpSimd unless `engine` names another engine.
    """
    op = "core_barrier"
    ctx = current()
    data = tensor_arg(data, "data", op)
    _require_lnc_chip(ctx, op)
    if tuple(cores) != (0, 1):  # type: ignore[arg-type]
        raise KernelUsageError(f"{op}: cores={cores!r}; only cores=(0, 1) is supported")
    if data.buffer.on_chip:
        raise BufferKindError(f"{op}: data {data.name}{list(data.shape)} is in "
                              f"{data.buffer.value}; the barrier guards a shared HBM tensor")
    eng = resolve_engine(engine, Opcode.CORE_BARRIER, op)
    # Recorded as reading and writing `data`: DMAs into data before the barrier and reads of
    # it after must stay on their side of it in the timeline.
    inst = record(ctx, eng, Opcode.CORE_BARRIER, (data,), (data,),
                  BarrierAttrs(tuple(int(c) for c in cores)), partitions=1, free_elements=0)
    if ctx.run.cores is not None:  # LNC=1: nobody to wait for
        ctx.run.cores.barrier(ctx.core_id, str(inst.location))  # type: ignore[attr-defined]


def _check_sendrecv_tiles(ctx: CoreContext, src: NkiTensor, dst: NkiTensor, op: str) -> None:
    require_on_chip(src, "src", op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.SBUF,))
    check_partitions(ctx, src, "src", op)
    check_partitions(ctx, dst, "dst", op)
    check_same_layout(src, dst, "src", "dst", op)
    if src.dtype != dst.dtype:
        raise DTypeError(f"{op}: src {src.name} is {src.dtype.name} but dst {dst.name} is "
                         f"{dst.dtype.name}; sendrecv moves bytes and needs equal dtypes")


@kernel_api
def sendrecv(src: NkiTensor, dst: NkiTensor, send_to_rank: int, recv_from_rank: int,
             pipe_id: int, dma_engine: object = None, name: str | None = None,
             use_gpsimd_dma: bool | None = None) -> None:
    """Send src to core `send_to_rank` and receive core `recv_from_rank`'s src into dst.

    Both tiles are in SBUF with equal dtype and layout. Each core's n-th sendrecv pairs
    with the peer's n-th one (`pipe_id` is recorded for the timing model). Needs an LNC=2
    launch (`kernel[2]`) on NeuronCore-v3+; the transfer runs on the DMA queues.
    `use_gpsimd_dma=True` (the older keyword the vendor's kernels still pass) is
    `dma_engine=nisa.dma_engine.gpsimd_dma`.
    """
    op = "sendrecv"
    ctx = current()
    if use_gpsimd_dma is not None:
        if dma_engine is not None:
            raise KernelUsageError(f"{op}: pass dma_engine= or use_gpsimd_dma=, not both")
        if use_gpsimd_dma:
            dma_engine = _dma_engines.gpsimd_dma
    src = tensor_arg(src, "src", op)
    dst = tensor_arg(dst, "dst", op)
    _require_lnc_chip(ctx, op)
    if ctx.run.num_cores < 2:
        raise KernelUsageError(f"{op} exchanges tiles between the two cores of a logical "
                               "NeuronCore; launch the kernel with kernel[2] (LNC=2)")
    to_rank = _rank(send_to_rank, "send_to_rank", ctx, op)
    from_rank = _rank(recv_from_rank, "recv_from_rank", ctx, op)
    if isinstance(pipe_id, bool) or not isinstance(pipe_id, int | np.integer):
        raise KernelUsageError(f"{op}: pipe_id must be an int, got {pipe_id!r}")
    _check_sendrecv_tiles(ctx, src, dst, op)
    inst = record(ctx, Engine.DMA, Opcode.SENDRECV, (src,), (dst,),
                  SendRecvAttrs(to_rank, from_rank, int(pipe_id),
                                getattr(dma_engine, "value", None if dma_engine is None
                                        else str(dma_engine))),
                  partitions=src.partitions, free_elements=src.free_size)
    # symbolic runs exchange too (no values): the pairing and deadlocks are the same
    tile = None if ctx.run.symbolic else src.numpy().copy()
    values = ctx.run.cores.sendrecv(ctx.core_id, to_rank, from_rank,  # type: ignore[attr-defined]
                                    tile, str(inst.location))
    if values is None:
        return
    if values.size != dst.size or values.dtype != dst.dtype.storage:
        raise KernelUsageError(f"{op}: core {from_rank} sent {values.size} {values.dtype} "
                               f"elements; dst {dst.name}{list(dst.shape)} holds {dst.size} "
                               f"{dst.dtype.name}")
    dst.numpy()[...] = values.reshape(dst.shape)
