"""Per-instruction scheduling facts, computed once before the timeline runs.

For every stream position: what kind of work it is, which queue it waits in, how long it
occupies its engine, its result latency, the shared ports it holds and (for DMAs) its
`DmaPlan`. Kernels repeat a handful of instruction shapes thousands of times, so costs are
computed once per shape (`tessera.sim.lower`: everything but tensor names and offsets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.nki.stream import Engine, Instruction, Opcode
from tessera.sim.calib import Calibration
from tessera.sim.costs import DMA_OPCODES, engine_cost
from tessera.sim.dma import DmaPlan, dma_plan
from tessera.sim.lower import StreamArrays, lower

ENGINE_ORDER = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC,
                Engine.UNKNOWN, Engine.DMA)
# Enum hashing is a Python-level call; stream-sized loops key engines by id() instead.
ENGINE_CODE = {id(e): i for i, e in enumerate(ENGINE_ORDER)}
DMA_CODE = ENGINE_ORDER.index(Engine.DMA)
QUEUES_PER_CORE = len(ENGINE_ORDER)
COMPUTE, TRANSFER, BARRIER, SENDRECV = 0, 1, 2, 3
SBUF_PORT, PSUM_PORT = 1, 2  # bits of `ports`


@dataclass(frozen=True)
class StreamPlan:
    """Per-position scheduling facts as arrays, from a table of distinct instruction shapes.

    Instruction `pos` has shape `shape[pos]` (from the lowered `stream`); its facts are row
    `shape[pos]` of the per-shape tables, spread to `np.int64` / `np.float64` arrays indexed
    by position for the scheduler.
    """

    stream: StreamArrays  # what the plan was made from
    dma_table: tuple[DmaPlan | None, ...]  # each shape's DMA plan (None: compute)
    shape_engine: np.ndarray  # each shape's engine (index into ENGINE_ORDER)
    kind: np.ndarray  # COMPUTE, TRANSFER, BARRIER or SENDRECV
    engine: np.ndarray  # index into ENGINE_ORDER
    occupancy_s: np.ndarray  # engine occupancy (DMA: each engine piece)
    latency_s: np.ndarray  # result latency (DMA: fixed issue latency before the transfer)
    ports: np.ndarray  # SBUF_PORT | PSUM_PORT bits held on NC-v2
    dma_engines: np.ndarray  # engines a DMA is split over (0: compute)
    hbm_s: np.ndarray  # time a DMA holds the core's HBM share
    dma_queue: np.ndarray  # LOAD/STORE/COPY queue of a DMA

    @property
    def shape(self) -> np.ndarray:
        """[n] index into the per-shape tables."""
        return self.stream.shape

    @property
    def first(self) -> tuple[Instruction, ...]:
        """The first instruction of each shape."""
        return self.stream.shapes

    @property
    def core(self) -> np.ndarray:
        return self.stream.core

    @property
    def cores(self) -> int:
        """Highest core + 1: the number of per-core queues the scheduler keeps."""
        return int(self.core.max()) + 1 if len(self.core) else 1

    @property
    def queue(self) -> np.ndarray:
        """Compute queue of each position: core * QUEUES_PER_CORE + engine."""
        return self.core * QUEUES_PER_CORE + self.engine

    @property
    def dma_positions(self) -> np.ndarray:
        """Positions that have a DMA plan (transfers and sendrecv)."""
        has_plan = np.array([p is not None for p in self.dma_table], dtype=bool)
        return np.flatnonzero(has_plan[self.shape]) if len(self.dma_table) else self.shape[:0]


def plan_stream(instructions: Sequence[Instruction], chip: ChipSpec, cal: Calibration,
                stream: StreamArrays | None = None) -> StreamPlan:
    """Costs, queues and ports of every instruction of the stream.

    Costs are computed once per instruction shape (`StreamArrays.shapes`); pass the lowered
    `stream` when there is one.
    """
    sa = stream if stream is not None else lower(instructions)
    core = chip.core
    share_sbuf = bool(core.access.vector_gpsimd_share_sbuf_port)
    share_psum = bool(core.access.vector_scalar_share_psum_port)
    sbuf_users = (Engine.VECTOR, Engine.GPSIMD) if share_sbuf else ()
    psum_users = (Engine.VECTOR, Engine.SCALAR) if share_psum else ()
    facts = [_facts(inst, chip, cal, sbuf_users, psum_users) for inst in sa.shapes]
    ids = sa.shape

    def column(i: int, dtype: type) -> np.ndarray:
        table = np.array([f[i] for f in facts], dtype=dtype)
        return table[ids] if len(facts) else np.zeros(0, dtype=dtype)

    return StreamPlan(
        sa, tuple(f[5] for f in facts), np.array([f[1] for f in facts], dtype=np.int64),
        column(0, np.int64), column(1, np.int64), column(2, np.float64),
        column(3, np.float64), column(4, np.int64), column(6, np.int64),
        column(7, np.float64), column(8, np.int64))


def _facts(inst: Instruction, chip: ChipSpec, cal: Calibration, sbuf_users: tuple,
           psum_users: tuple) -> tuple:
    op = inst.opcode
    if op in DMA_OPCODES:
        plan = dma_plan(inst, chip, cal)
        k = SENDRECV if op is Opcode.SENDRECV else TRANSFER
        return (k, DMA_CODE, plan.piece_s, plan.latency_s, 0, plan, plan.engines, plan.hbm_s,
                plan.queue)
    k = BARRIER if op is Opcode.CORE_BARRIER else COMPUTE
    occupancy, latency = engine_cost(inst, chip.core, cal)
    aps = inst.reads + inst.writes
    bits = 0
    if inst.engine in sbuf_users and any(ap.buffer is Buffer.SBUF for ap in aps):
        bits |= SBUF_PORT
    if inst.engine in psum_users and any(ap.buffer is Buffer.PSUM for ap in aps):
        bits |= PSUM_PORT
    return k, ENGINE_CODE[id(inst.engine)], occupancy, latency, bits, None, 0, 0.0, 0
