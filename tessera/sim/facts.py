"""Per-instruction scheduling facts, computed once before the timeline runs.

For every stream position: what kind of work it is, which queue it waits in, how long it
occupies its engine, its result latency, the shared ports it holds, its LNC=2 partner and
(for DMAs) its `DmaPlan`. Kernels repeat a handful of instruction shapes thousands of times,
so costs are computed once per shape (`FlatStream.shapes`: everything but tensor names and
offsets) and spread to positions with numpy indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.nki.compiler import SchedulingHeuristic
from tessera.nki.stream import Engine, Instruction, Opcode
from tessera.sim.arrays import FactArrays
from tessera.sim.cost_rules import (
    BARRIER,
    COST_RULES,
    SENDRECV,
    TRANSFER,
    engine_cost,
)
from tessera.sim.dma import DmaPlan, dma_plan
from tessera.sim.errors import ScheduleError
from tessera.sim.flat import FlatStream
from tessera.sim.timing_calibration import Calibration

ENGINE_ORDER = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC,
                Engine.UNKNOWN, Engine.DMA)
# Enum hashing is a Python-level call; per-shape loops key engines by id() instead.
ENGINE_CODE = {id(e): i for i, e in enumerate(ENGINE_ORDER)}
DMA_CODE = ENGINE_ORDER.index(Engine.DMA)
TENSOR_CODE = ENGINE_ORDER.index(Engine.TENSOR)
QUEUES_PER_CORE = len(ENGINE_ORDER)
SBUF_PORT, PSUM_PORT = 1, 2  # bits of `ports`
# the event loop's codes of `nki.compiler.SchedulingHeuristic`
HEURISTIC_TRIVIAL, HEURISTIC_ASAP, HEURISTIC_CRITICAL_PATH, HEURISTIC_DMA_PREFETCH = 0, 1, 2, 3
HEURISTIC_CODE = {SchedulingHeuristic.TRIVIAL: HEURISTIC_TRIVIAL,
                  SchedulingHeuristic.ASAP: HEURISTIC_ASAP,
                  SchedulingHeuristic.CRITICAL_PATH: HEURISTIC_CRITICAL_PATH,
                  SchedulingHeuristic.DMA_PREFETCH: HEURISTIC_DMA_PREFETCH}


@dataclass(frozen=True)
class StreamFacts:
    """Scheduling facts of a lowered stream: per-position `arrays` for the event loop, and
    per-shape tables (row `flat.arrays.shape[pos]` describes position `pos`)."""

    flat: FlatStream  # what the facts were made from
    arrays: FactArrays
    dma_table: tuple[DmaPlan | None, ...]  # each shape's DMA plan (None: compute)
    shape_engine: np.ndarray  # each shape's engine (index into ENGINE_ORDER)

    @property
    def cores(self) -> int:
        """Highest core + 1: the number of per-core queue sets the scheduler keeps."""
        core = self.arrays.core
        return int(core.max()) + 1 if len(core) else 1

    @property
    def dma_positions(self) -> np.ndarray:
        """Positions that have a DMA plan (transfers and sendrecv)."""
        shape = self.flat.arrays.shape
        has_plan = np.array([p is not None for p in self.dma_table], dtype=bool)
        return np.flatnonzero(has_plan[shape]) if len(self.dma_table) else shape[:0]


def instruction_facts(flat: FlatStream, chip: ChipSpec, cal: Calibration) -> StreamFacts:
    """Costs, queues, ports and partners of every instruction of a lowered stream."""
    core = chip.core
    share_sbuf = bool(core.access.vector_gpsimd_share_sbuf_port)
    share_psum = bool(core.access.vector_scalar_share_psum_port)
    sbuf_users = (Engine.VECTOR, Engine.GPSIMD) if share_sbuf else ()
    psum_users = (Engine.VECTOR, Engine.SCALAR) if share_psum else ()
    facts = [_facts(inst, chip, cal, sbuf_users, psum_users) for inst in flat.shapes]
    ids = flat.arrays.shape

    def column(i: int, dtype: type) -> np.ndarray:
        table = np.array([f[i] for f in facts], dtype=dtype)
        return table[ids] if len(facts) else np.zeros(0, dtype=dtype)

    kind, engine = column(0, np.int64), column(1, np.int64)
    cores = flat.arrays.core
    arrays = FactArrays(
        kind=kind, engine=engine, queue=cores * QUEUES_PER_CORE + engine,
        occupancy_s=column(2, np.float64), latency_s=column(3, np.float64),
        ports=column(4, np.int64), core=cores, dma_engines=column(6, np.int64),
        hbm_s=column(7, np.float64), dma_queue=column(8, np.int64),
        partner=_partners(kind, cores), rank=np.arange(len(kind), dtype=np.int64))
    return StreamFacts(flat, arrays, tuple(f[5] for f in facts),
                       np.array([f[1] for f in facts], dtype=np.int64))


def _facts(inst: Instruction, chip: ChipSpec, cal: Calibration, sbuf_users: tuple,
           psum_users: tuple) -> tuple:
    k = COST_RULES[inst.opcode].kind
    if k == TRANSFER or k == SENDRECV:
        plan = dma_plan(inst, chip, cal)
        return (k, DMA_CODE, plan.piece_s, plan.latency_s, 0, plan, plan.engines, plan.hbm_s,
                plan.queue)
    occupancy, latency = engine_cost(inst, chip.core, cal)
    aps = inst.reads + inst.writes
    bits = 0
    if inst.engine in sbuf_users and any(ap.buffer is Buffer.SBUF for ap in aps):
        bits |= SBUF_PORT
    if inst.engine in psum_users and any(ap.buffer is Buffer.PSUM for ap in aps):
        bits |= PSUM_PORT
    return k, ENGINE_CODE[id(inst.engine)], occupancy, latency, bits, None, 0, 0.0, 0


def _partners(kind: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Position -> partner position for the n-th core_barrier / sendrecv of core 0 and
    core 1 (-1: none)."""
    partner = np.full(len(kind), -1, np.int64)
    for code, opcode in ((BARRIER, Opcode.CORE_BARRIER), (SENDRECV, Opcode.SENDRECV)):
        positions = np.flatnonzero(kind == code)
        if not len(positions):
            continue
        cores = core[positions]
        per_core = {int(c): positions[cores == c] for c in np.unique(cores)}
        if len(per_core) < 2:
            continue
        lists = [per_core[c] for c in sorted(per_core)]
        if len(lists) != 2 or len(lists[0]) != len(lists[1]):
            counts = {c: len(v) for c, v in per_core.items()}
            raise ScheduleError(f"{opcode.value} must be called the same number of times on "
                                f"both cores; counts per core: {counts}")
        partner[lists[0]] = lists[1]
        partner[lists[1]] = lists[0]
    return partner
