"""Lanes: the rows of a kernel's timeline, one per engine queue and DMA engine of each core.

Both derived views (the Chrome trace and the PNG) draw the same lanes, so the mapping from
scheduled instructions to rows lives here once.

Compute instructions go on their engine's lane and last their occupancy (`busy`); the result
latency that follows is not drawn, because the engine is free to start the next instruction
then and drawing it would make slices of one in-order queue overlap. A core barrier lasts from
its arrival until both cores have met, which is how long it holds its queue.

A DMA is split over `DmaPlan.engines` of the core's DMA engines, each piece running from the
DMA's start to its end on the engines the scheduler gave it (`Timeline.dma_engines`). A
sendrecv does not hold the DMA engine pool (the scheduler pairs it with the other core), so
it gets a lane of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tessera.nki.stream import Engine, Opcode
from tessera.sim import Profile, Resource
from tessera.sim.dma import COPY_QUEUE, LOAD_QUEUE, STORE_QUEUE

_ENGINE_RANK = {e: i for i, e in enumerate(Engine)}  # rows follow the enum's order


class LaneKind(Enum):
    """What a lane shows."""

    ENGINE = "engine"  # an in-order compute queue (Tensor, Vector, Scalar, GpSimd, ...)
    DMA_ENGINE = "dma_engine"  # one of the core's DMA engines
    DMA_QUEUE = "dma_queue"  # one of the core's DMA queues (loads, stores, HBM copies)
    SENDRECV = "sendrecv"  # core-to-core transfers (LNC=2)


@dataclass(frozen=True)
class Piece:
    """One drawn slice: (part of) the instruction at stream `position`."""

    position: int
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Lane:
    """One row of the timeline; `pieces` are sorted by start time."""

    core: int
    kind: LaneKind
    label: str  # e.g. "tensor", "dma 3", "sendrecv"
    resource: Resource
    pieces: tuple[Piece, ...]

    @property
    def busy_s(self) -> float:
        """Summed duration of the lane's pieces."""
        return sum(p.duration_s for p in self.pieces)


def lanes(profile: Profile) -> tuple[Lane, ...]:
    """Every non-empty lane, ordered by core, then engine order, then DMA engine number."""
    tl = profile.timeline
    plans = tl.dma_plans
    engines = tl.dma_engines
    rows: dict[tuple[int, int, int], list[Piece]] = {}  # (core, group, slot) -> pieces
    sendrecv_slot = len(_ENGINE_RANK)
    starts, ends, occupancy = tl.start_s.tolist(), tl.end_s.tolist(), tl.occupancy_s.tolist()
    for pos, inst in enumerate(tl.stream.instructions):
        start = starts[pos]
        if pos in plans:
            if inst.opcode is Opcode.SENDRECV:
                key = (inst.core, 0, sendrecv_slot)
                rows.setdefault(key, []).append(Piece(pos, start, ends[pos] - start))
            else:
                piece = Piece(pos, start, ends[pos] - start)
                for e in engines[pos]:
                    rows.setdefault((inst.core, 1, e), []).append(piece)
            continue
        if inst.opcode is Opcode.CORE_BARRIER:
            duration = ends[pos] - start  # holds its queue until both cores arrive
        else:
            duration = occupancy[pos]
        rows.setdefault((inst.core, 0, _ENGINE_RANK[inst.engine]), []).append(
            Piece(pos, start, duration))
    out = []
    for (core, group, slot), pieces in sorted(rows.items()):
        pieces.sort(key=lambda p: (p.start_s, p.position))
        if group == 1:
            out.append(Lane(core, LaneKind.DMA_ENGINE, f"dma {slot}", Engine.DMA,
                            tuple(pieces)))
        elif slot == sendrecv_slot:
            out.append(Lane(core, LaneKind.SENDRECV, "sendrecv", Engine.DMA, tuple(pieces)))
        else:
            resource = tl.stream.instructions[pieces[0].position].engine
            out.append(Lane(core, LaneKind.ENGINE, resource.value, resource, tuple(pieces)))
    return tuple(out)


_QUEUE_NAMES = {LOAD_QUEUE: "dma loads", STORE_QUEUE: "dma stores", COPY_QUEUE: "dma copies"}


def queue_lanes(profile: Profile) -> tuple[Lane, ...]:
    """The lanes with the DMA engines grouped into the core's DMA queues: one lane per
    (core, loads / stores / HBM copies), each DMA a piece from its start to its end (DMAs of
    one queue start in order but may overlap on different engines)."""
    tl = profile.timeline
    plans = tl.dma_plans
    rows: dict[tuple[int, int], list[Piece]] = {}
    instructions = tl.stream.instructions
    starts, ends = tl.start_s.tolist(), tl.end_s.tolist()
    for pos in tl.dma_engines:  # transfers (a sendrecv keeps its own lane)
        piece = Piece(pos, starts[pos], ends[pos] - starts[pos])
        rows.setdefault((instructions[pos].core, plans[pos].queue), []).append(piece)
    queued = [Lane(core, LaneKind.DMA_QUEUE, _QUEUE_NAMES[q], Engine.DMA,
                   tuple(sorted(pieces, key=lambda p: (p.start_s, p.position))))
              for (core, q), pieces in sorted(rows.items())]
    others = [lane for lane in lanes(profile) if lane.kind is not LaneKind.DMA_ENGINE]
    return tuple(sorted(others + queued,
                        key=lambda lane: (lane.core, lane.kind is LaneKind.DMA_QUEUE)))
