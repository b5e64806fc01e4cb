"""DMA cost: how a transfer splits over the core's DMA engines and how long each piece takes.

A dma_copy touching on-chip memory is split by partitions, one engine per
`dma_partitions_per_engine` partitions (up to the core's 16 engines), as the hardware does.
Each engine moves its share as contiguous descriptors; a descriptor of c bytes costs
(c + overhead) / engine bandwidth, so efficiency c / (c + overhead) falls for small
per-partition runs and for strided or transposing access patterns (short runs). The overhead
is derived from the DMA guide (theoretical vs effective per-engine rate at 4 KiB payloads).
A fixed latency (semaphore to start) precedes the transfer but does not occupy an engine,
so queued DMAs overlap it. All HBM traffic of a core also holds the core's share of the
chip's HBM bandwidth (chip bandwidth / physical cores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.hw import ChipSpec
from tessera.nki.stream import AccessPattern, Instruction, Opcode
from tessera.sim.calib import Calibration
from tessera.sim.errors import ScheduleError

# DMAs run from in-order queues by direction, the way kernels put loads and stores on
# separate queues: a store waiting for compute never blocks the next prefetch.
LOAD_QUEUE, STORE_QUEUE, COPY_QUEUE = 0, 1, 2
DMA_QUEUES = 3


@dataclass(frozen=True, slots=True)
class DmaPlan:
    """How one DMA instruction uses the DMA engines and HBM."""

    engines: int  # engines the transfer is split over
    piece_s: float  # busy time of each engine's piece
    hbm_s: float  # time the transfer holds the core's HBM bandwidth share
    latency_s: float  # fixed issue latency before the transfer starts (not occupying)
    hbm_read_bytes: int
    hbm_write_bytes: int
    descriptors: int  # contiguous runs moved (what the overhead is paid on)
    bytes_moved: int
    queue: int  # LOAD_QUEUE, STORE_QUEUE or COPY_QUEUE: DMAs of a queue start in order


def _run_elements(ap: AccessPattern) -> int:
    """Elements in the innermost contiguous run (capped to a partition row on chip)."""
    return max(1, ap.contiguous_bytes // ap.itemsize)


def dma_plan(inst: Instruction, chip: ChipSpec, cal: Calibration) -> DmaPlan:
    """The engine split, piece time, HBM time and latency of a DMA instruction."""
    if not inst.reads or not inst.writes:
        raise ScheduleError(f"{inst.opcode.value} at {inst.location} has no source or "
                            "destination access pattern")
    src, dst = inst.reads[0], inst.writes[0]
    dma = chip.core.dma
    elements = max(src.num_elements, dst.num_elements)
    moved = max(src.num_bytes, dst.num_bytes)
    if inst.opcode is Opcode.DMA_TRANSPOSE:
        # the transposer reads whole source rows; writes are scattered by the hardware
        run = _run_elements(src)
        efficiency = (cal.dma_transpose_hbm_efficiency if src.buffer.is_hbm
                      else cal.dma_transpose_sbuf_efficiency)
    else:
        run = min(_run_elements(src), _run_elements(dst))
        efficiency = 1.0
    descriptors = max(1, math.ceil(elements / run)) if elements else 0
    on_chip = src.buffer.on_chip or dst.buffer.on_chip
    if on_chip:
        partitions = max(1, inst.partitions)
        engines = min(dma.engines_per_core, math.ceil(partitions / cal.dma_partitions_per_engine))
    else:
        # HBM to HBM: no partitions to split by; large runs are cut into saturating chunks
        chunks = max(1, moved // max(1, dma.saturating_partition_bytes))
        engines = min(dma.engines_per_core, max(descriptors, chunks))
        descriptors = max(descriptors, engines)
    engines = max(1, engines)
    piece_bytes = moved / engines
    piece_descriptors = descriptors / engines
    piece_s = (piece_bytes + piece_descriptors * cal.dma_descriptor_overhead_bytes) / (
        dma.engine_bytes_per_s * efficiency)
    if elements == 0:
        piece_s = 0.0
    latency = dma.fixed_latency_s
    if inst.flag("dge_mode") == "hwdge" and dma.hw_dge_latency_s is not None:
        latency = dma.hw_dge_latency_s
    read = src.num_bytes if src.buffer.is_hbm else 0
    write = dst.num_bytes if dst.buffer.is_hbm else 0
    if inst.opcode is Opcode.SENDRECV:
        read = write = 0  # SBUF to SBUF between the two cores
    hbm_s = (read + write) / chip.hbm_bytes_per_s_per_core
    queue = (LOAD_QUEUE if dst.buffer.on_chip else STORE_QUEUE if src.buffer.on_chip
             else COPY_QUEUE)
    return DmaPlan(engines, piece_s, hbm_s, latency, read, write, descriptors, moved, queue)
