"""DMA cost: how a transfer splits over the core's DMA engines and how long each piece takes.

The NKI docs describe the mechanism ([DMAO], [A2], [DMABW], [PG]):

* a dma_copy touching on-chip memory is split by partitions, one engine per
  `dma_partitions_per_engine` (8) partitions, up to the core's 16 engines; each engine's
  share is one *DMA transfer*, a scatter-gather list of contiguous *DMA buffers*;
* an engine processes one transfer at a time. While active it streams at the guide's
  per-engine rate (`engine_effective_bytes_per_s`: 17 / 23 / 33 B/ns; the [DMAO] profile of
  one NC-v3 engine moving 32 KiB in 1416 ns is exactly 23 B/ns), and between transfers it
  is busy for `dma_transfer_overhead_s` (descriptor setup and synchronisation): the reason
  small transfers are overhead-bound and >= 4 KiB per partition (32 KiB per engine) nearly
  saturates. A piece moving b bytes occupies its engine for overhead + b / rate;
* each contiguous buffer moves at least `dma_min_burst_bytes`, so element-strided patterns
  (2-byte runs) are slow while row patterns are not;
* a fixed semaphore-to-start latency (1.3 us; 0.6 us with hardware DGE on NC-v3) precedes
  the transfer without occupying an engine, so queued DMAs overlap it.

HBM side: the transfer also holds the core's share of the chip's HBM bandwidth (chip
bandwidth / physical cores) for its HBM bytes. A row gather (an HBM access that is not one
contiguous range, e.g. a 128 x 512 tile of a [K, 8192] matrix: 128 rows of 1 KiB, 16 KiB
apart) streams at `hbm_strided_efficiency` of that share: the published NC-v2 tutorial
kernels move ~100-110 GB/s per core whatever their row length (256 B to 4 KiB), which no
payload-size curve on the engine side reproduces (see calibration/trn.yaml for the fit).

Broadcasts (a stride-0 dimension on the HBM side, e.g. one row copied into 128 partitions):
a DMA buffer is one contiguous run and an SBUF destination takes at least one buffer per
partition ([A2] "Data within a DMA buffer must be continuous"; "at least tensor.shape[0]
... different DMA buffers"), and no NKI page describes reads being merged or cached, so
every partition's buffer reads its row from HBM: the engines move, and HBM serves, all
128 rows. What the docs do not support is charging that as a row gather: the distinct
addresses are one contiguous range re-read, not rows scattered over the tensor, so the
HBM side streams at the contiguous rate and a broadcast is bound by the DMA engines (16 x
17 B/ns on NC-v2, below the core's 410 GB/s HBM share) rather than by HBM. The docs'
cheaper broadcast (load the row once, replicate on chip with nc_matmul against ones,
[A2]; or nc_stream_shuffle with a zero mask, the NKI library's stream_shuffle_broadcast,
awsdocs-neuron.readthedocs-hosted.com/en/v2.33.0/nki/library/kernel-utils/
stream-shuffle-broadcast.html) is what a kernel author can write instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.hw import ChipSpec
from tessera.nki.attrs import DmaComputeAttrs, DmaCopyAttrs, DmaTransposeAttrs
from tessera.nki.stream import AccessPattern, Instruction, Opcode
from tessera.sim.errors import ScheduleError
from tessera.sim.timing_calibration import Calibration

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
    descriptors: int  # contiguous runs moved (DMA buffers)
    bytes_moved: int
    queue: int  # LOAD_QUEUE, STORE_QUEUE or COPY_QUEUE: DMAs of a queue start in order


def _run_elements(ap: AccessPattern) -> int:
    """Elements in the innermost contiguous run (capped to a partition row on chip)."""
    return max(1, ap.contiguous_bytes // ap.itemsize)


def _one_range(ap: AccessPattern) -> bool:
    """Whether the distinct addresses of `ap` form one contiguous range (dimensions of
    stride 0 re-read it: a broadcast)."""
    run = 1
    for stride, count in reversed(ap.free_pattern):
        if count == 1 or stride == 0:
            continue
        if stride != run:
            return False
        run *= count
    return True


def _hbm_seconds(ap: AccessPattern, share_bytes_per_s: float, cal: Calibration) -> float:
    """Time an HBM access holds the core's HBM share: a single contiguous range (or one
    re-read by a broadcast) streams at the full share, a row gather at the strided
    efficiency."""
    size = ap.num_bytes
    if ap.contiguous_bytes >= size or _one_range(ap):
        return size / share_bytes_per_s
    return size / (share_bytes_per_s * cal.hbm_strided_efficiency)


# dma_compute's read-add-write: NC-v4 adds at the full DMA rate; before v4 the DMA compute
# engines run at 50% ([A4] trainium3 arch guide; /work/shared/reference/hardware.md §4)
DMA_COMPUTE_RATE_BEFORE_V4 = 0.5


def _sources(inst: Instruction) -> tuple[AccessPattern, ...]:
    """What a DMA reads data from: every `srcs` tensor of a dma_compute (its first
    `sources` reads; the rest are runtime-offset tiles), else the first read."""
    if isinstance(inst.attrs, DmaComputeAttrs):
        return inst.reads[:max(1, inst.attrs.sources)]
    return inst.reads[:1]


def dma_plan(inst: Instruction, chip: ChipSpec, cal: Calibration) -> DmaPlan:
    """The engine split, piece time, HBM time and latency of a DMA instruction."""
    if not inst.reads or not inst.writes:
        raise ScheduleError(f"{inst.opcode.value} at {inst.location} has no source or "
                            "destination access pattern")
    src, dst = inst.reads[0], inst.writes[0]
    sources = _sources(inst)  # a dma_compute streams all of them through the engines
    dma = chip.core.dma
    elements = max(sum(s.num_elements for s in sources), dst.num_elements)
    moved = max(sum(s.num_bytes for s in sources), dst.num_bytes)
    if inst.opcode is Opcode.DMA_TRANSPOSE:
        # the transposer reads whole source rows; writes are scattered by the hardware
        run = _run_elements(src)
        efficiency = (cal.dma_transpose_hbm_efficiency if src.buffer.is_hbm
                      else cal.dma_transpose_sbuf_efficiency)
    else:
        # a DMA buffer must be contiguous on both sides: the shorter run decides
        run = min(_run_elements(ap) for ap in (*sources, dst))
        efficiency = 1.0
        if isinstance(inst.attrs, DmaComputeAttrs):
            efficiency = 1.0 if chip.core.version >= 4 else DMA_COMPUTE_RATE_BEFORE_V4
    descriptors = max(1, math.ceil(elements / run)) if elements else 0
    src_on_chip = any(s.buffer.on_chip for s in sources)
    on_chip = src_on_chip or dst.buffer.on_chip
    if on_chip:
        partitions = max(1, inst.partitions)
        engines = min(dma.engines_per_core, math.ceil(partitions / cal.dma_partitions_per_engine))
    else:
        # HBM to HBM: no partitions to split by; large runs are cut into saturating chunks
        chunks = max(1, moved // max(1, dma.saturating_partition_bytes))
        engines = min(dma.engines_per_core, max(descriptors, chunks))
        descriptors = max(descriptors, engines)
    engines = max(1, engines)
    itemsize = max(src.itemsize, dst.itemsize)
    run_bytes = moved / descriptors if descriptors else 0.0
    # every run moves at least one burst: short runs cost the burst, long runs their bytes
    piece_bytes = descriptors * max(run_bytes, float(cal.dma_min_burst_bytes),
                                    float(itemsize)) / engines
    rate = dma.engine_effective_bytes_per_s * efficiency
    piece_s = cal.dma_transfer_overhead_s + piece_bytes / rate
    if elements == 0:
        piece_s = 0.0
    latency = dma.fixed_latency_s
    hwdge = isinstance(inst.attrs, DmaCopyAttrs | DmaTransposeAttrs) and (
        inst.attrs.dge_mode == "hwdge")
    if hwdge and dma.hw_dge_latency_s is not None:
        latency = dma.hw_dge_latency_s
    read = sum(s.num_bytes for s in sources if s.buffer.is_hbm)
    write = dst.num_bytes if dst.buffer.is_hbm else 0
    hbm_s = 0.0
    if inst.opcode is Opcode.SENDRECV:
        read = write = 0  # SBUF to SBUF between the two cores
    else:
        share = chip.hbm_bytes_per_s_per_core
        for ap in (*sources, dst):
            if ap.buffer.is_hbm:
                hbm_s += _hbm_seconds(ap, share, cal)
    queue = (LOAD_QUEUE if dst.buffer.on_chip else STORE_QUEUE if src_on_chip
             else COPY_QUEUE)
    return DmaPlan(engines, piece_s, hbm_s, latency, read, write, descriptors, moved, queue)
