"""Per-instruction scheduling facts, computed once before the timeline runs.

For every stream position: what kind of work it is, which queue it waits in, how long it
occupies its engine, its result latency, the shared ports it holds and (for DMAs) its
`DmaPlan`. Kernels repeat a handful of instruction shapes thousands of times, so costs are
memoised on a signature that leaves out tensor names and offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.nki.stream import Engine, Instruction, Opcode
from tessera.sim.calib import Calibration
from tessera.sim.costs import DMA_OPCODES, engine_cost
from tessera.sim.dma import DmaPlan, dma_plan

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
    """Flat per-position arrays the scheduler indexes (lists, for speed)."""

    kind: list[int]
    engine: list[int]  # index into ENGINE_ORDER
    queue: list[int]  # core * QUEUES_PER_CORE + engine (compute queues only)
    occupancy_s: list[float]  # engine occupancy (DMA: each engine piece)
    latency_s: list[float]  # result latency (DMA: fixed issue latency before the transfer)
    ports: list[int]  # SBUF_PORT | PSUM_PORT bits held on NC-v2
    queue_next: list[int]  # next position in the same compute queue, -1 if none
    dma: dict[int, DmaPlan]
    core: list[int]
    cores: int


def _signature(inst: Instruction) -> tuple:
    """What the cost depends on: everything but tensor names and offsets (enums by id).

    Flat for the common one-read / one-write shape: building and hashing nested tuples for
    every instruction of a stream costs more than the rest of the planning.
    """
    reads, writes = inst.reads, inst.writes
    if len(reads) == 1 and len(writes) == 1:
        a, b = reads[0], writes[0]
        return (id(inst.opcode), id(inst.engine), inst.partitions, inst.free_elements,
                inst.flags, id(a.buffer), a.dtype, a.pattern, not a.partition_elems,
                id(b.buffer), b.dtype, b.pattern, not b.partition_elems)
    aps = [(id(ap.buffer), ap.dtype, ap.pattern, not ap.partition_elems) for ap in reads]
    aps.append(None)
    aps.extend([(id(ap.buffer), ap.dtype, ap.pattern, not ap.partition_elems)
                for ap in writes])
    return (id(inst.opcode), id(inst.engine), inst.partitions, inst.free_elements, inst.flags,
            tuple(aps))


def plan_stream(instructions: Sequence[Instruction], chip: ChipSpec,
                cal: Calibration) -> StreamPlan:
    """Costs, queues and ports of every instruction of the stream."""
    core = chip.core
    n = len(instructions)
    share_sbuf = bool(core.access.vector_gpsimd_share_sbuf_port)
    share_psum = bool(core.access.vector_scalar_share_psum_port)
    sbuf_users = (Engine.VECTOR, Engine.GPSIMD) if share_sbuf else ()
    psum_users = (Engine.VECTOR, Engine.SCALAR) if share_psum else ()
    kind, eng, queue = [COMPUTE] * n, [0] * n, [0] * n
    occ, lat, ports = [0.0] * n, [0.0] * n, [0] * n
    qnext = [-1] * n
    core_of = [0] * n
    plans: dict[int, DmaPlan] = {}
    memo: dict[tuple, tuple] = {}
    last_in_queue: dict[int, int] = {}
    n_cores = 1
    memo_get = memo.get
    for pos, inst in enumerate(instructions):
        c = core_of[pos] = inst.core
        if c >= n_cores:
            n_cores = c + 1
        sig = _signature(inst)
        facts = memo_get(sig)
        if facts is None:
            facts = memo[sig] = _facts(inst, chip, cal, sbuf_users, psum_users)
        k, code, o, la, bits, dplan = facts
        kind[pos] = k
        eng[pos] = code
        occ[pos] = o
        lat[pos] = la
        if bits:
            ports[pos] = bits
        if dplan is not None:
            plans[pos] = dplan
        else:
            q = c * QUEUES_PER_CORE + code
            queue[pos] = q
            prev = last_in_queue.get(q)
            if prev is not None:
                qnext[prev] = pos
            last_in_queue[q] = pos
    return StreamPlan(kind, eng, queue, occ, lat, ports, qnext, plans, core_of, n_cores)


def _facts(inst: Instruction, chip: ChipSpec, cal: Calibration, sbuf_users: tuple,
           psum_users: tuple) -> tuple:
    op = inst.opcode
    if op in DMA_OPCODES:
        plan = dma_plan(inst, chip, cal)
        k = SENDRECV if op is Opcode.SENDRECV else TRANSFER
        return k, DMA_CODE, plan.piece_s, plan.latency_s, 0, plan
    k = BARRIER if op is Opcode.CORE_BARRIER else COMPUTE
    occupancy, latency = engine_cost(inst, chip.core, cal)
    aps = inst.reads + inst.writes
    bits = 0
    if inst.engine in sbuf_users and any(ap.buffer is Buffer.SBUF for ap in aps):
        bits |= SBUF_PORT
    if inst.engine in psum_users and any(ap.buffer is Buffer.PSUM for ap in aps):
        bits |= PSUM_PORT
    return k, ENGINE_CODE[id(inst.engine)], occupancy, latency, bits, None
