"""The allocator: an address for every on-chip tensor, from its liveness in the stream.

A tensor is live from its first access to its last (positions in `TraceResult.instructions`).
SBUF tensors get partitions [0, shape[0]) and a byte range of each partition; PSUM tensors
get whole accumulation banks (ceil(bytes per partition / bank bytes) consecutive banks).
HBM tensors need no placement: each is its own address space.

Placement is first-fit from a rotating cursor (next-fit): the search starts where the last
allocation ended, so freed space is reused as late as possible. That is what lets a loop's
iteration i+1 load its tiles while iteration i computes (the multi-buffering a compiler
gives `affine_range` loops) until memory runs out. Reusing a range makes the new tensor's
first access wait for the previous occupant's last access: a reuse edge, exactly as on
hardware, and the reason SBUF pressure serialises a kernel.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.nki.stream import Instruction, TensorInfo
from tessera.sim.errors import CapacityError, PsumCapacityError, SbufCapacityError

_LISTED = 5  # how many of the largest live tensors a capacity error names
# free runs compared per allocation: enough to skip a recently freed run next to the cursor,
# few enough to keep allocation O(1) in steady state
_CANDIDATES = 4
_SBUF = Buffer.SBUF  # enum member lookups are slow in stream-sized loops


@dataclass(frozen=True)
class Placement:
    """Where one on-chip tensor lives and when (stream positions, inclusive)."""

    name: str
    core: int
    buffer: Buffer
    partitions: int
    start_bytes: int  # per-partition byte offset (PSUM: bank index x bank bytes)
    size_bytes: int  # per-partition bytes reserved (PSUM: whole banks)
    first: int
    last: int


@dataclass(frozen=True)
class Reuse:
    """A tensor placed over memory that earlier tensors used: every access of `tensor` waits
    for the `producers` (last accesses of the previous occupants) to finish."""

    tensor: str
    core: int
    first: int  # stream position of the tensor's first access
    producers: tuple[int, ...]
    partitions: int  # the tensor's extent: partitions x bytes per partition
    row_bytes: int


@dataclass(frozen=True)
class Allocation:
    """Placements of all on-chip tensors, the reuse edges they imply and the peaks."""

    placements: tuple[Placement, ...]
    reuses: tuple[Reuse, ...]  # WAR/WAW edges the address reuse creates
    peak_sbuf_bytes: int  # per partition, the largest over cores
    peak_psum_bytes: int  # per partition (whole banks), the largest over cores
    hbm_tensors: tuple[str, ...]  # address spaces that need no placement


class _Arena:
    """One partition-row address axis (SBUF bytes or PSUM banks) as a list of segments.

    Segments tile [0, capacity): each is live (owner >= 0) or free with the stream position
    of its previous occupant's last access (-1: never used). Free segments are not merged so
    that every reuse edge survives.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.starts = [0]
        self.ends = [capacity]
        self.owner = [-1]
        self.last = [-1]
        self.cursor = 0
        self.live = 0
        self.peak = 0

    def alloc(self, size: int, owner: int) -> tuple[int, list[int]] | None:
        """Place `size` units; returns (start, previous occupants' last positions).

        Looks at the first `_CANDIDATES` free runs from the cursor and takes the one whose
        previous occupants were freed earliest in the stream (never-used space at once),
        so a new tile waits on the oldest possible work.
        """
        starts, ends, owners, lasts = self.starts, self.ends, self.owner, self.last
        n = len(starts)
        first = bisect_right(starts, self.cursor) - 1
        best_i = best_stop = -1
        best_score = 0
        seen = 0
        for k in range(n):
            i = first + k
            if i >= n:
                i -= n
            if owners[i] >= 0:
                continue
            # extend a free run from segment i until it holds `size`
            need = starts[i] + size
            stop = i
            while stop < n and owners[stop] < 0 and ends[stop] < need:
                stop += 1
            if stop == n or owners[stop] >= 0:
                continue
            stop += 1
            score = max(lasts[i:stop]) if stop - i > 1 else lasts[i]
            if best_i < 0 or score < best_score:
                best_i, best_stop, best_score = i, stop, score
            seen += 1
            if score < 0 or seen >= _CANDIDATES:
                break
        if best_i < 0:
            return None
        i, stop = best_i, best_stop
        start = starts[i]
        end = start + size
        edges = [p for p in lasts[i:stop] if p >= 0]
        tail_end, tail_last = self.ends[stop - 1], lasts[stop - 1]
        seg_s, seg_e, seg_o, seg_l = [start], [end], [owner], [-1]
        if tail_end > end:  # the rest of the last segment stays free with its history
            seg_s.append(end)
            seg_e.append(tail_end)
            seg_o.append(-1)
            seg_l.append(tail_last)
        starts[i:stop] = seg_s
        self.ends[i:stop] = seg_e
        owners[i:stop] = seg_o
        lasts[i:stop] = seg_l
        self.cursor = end if end < self.capacity else 0
        self.live += size
        if self.live > self.peak:
            self.peak = self.live
        return start, edges

    def free(self, start: int, last_position: int) -> None:
        i = bisect_right(self.starts, start) - 1
        self.live -= self.ends[i] - self.starts[i]
        self.owner[i] = -1
        self.last[i] = last_position


def liveness(instructions: Sequence[Instruction]) -> dict[str, list[int]]:
    """tensor -> [first, last] stream position of every on-chip tensor accessed.

    On-chip tensor names are unique per launch (the LNC cores prefix theirs), so the name
    alone is the key.
    """
    live: dict[str, list[int]] = {}
    get = live.get
    for pos, inst in enumerate(instructions):
        for aps in (inst.reads, inst.writes):
            for ap in aps:
                if ap.partition_elems:
                    span = get(ap.tensor)
                    if span is None:
                        live[ap.tensor] = [pos, pos]
                    else:
                        span[1] = pos
    return live


def allocate(instructions: Sequence[Instruction], tensors: Iterable[TensorInfo],
             chip: ChipSpec, sbuf_alignment_bytes: int = 64) -> Allocation:
    """Place every on-chip tensor of the stream; raise a `CapacityError` when they don't fit.

    Capacities come from `chip.core` (so `hw.with_overrides` what-ifs apply).
    """
    infos: dict[str, TensorInfo] = {}
    hbm: set[str] = set()
    for t in tensors:
        if t.buffer.on_chip:
            infos[t.name] = t
        else:
            hbm.add(t.name)
    core = chip.core
    bank_bytes = int(core.psum.bank_bytes_per_partition or core.psum.bytes_per_partition)
    n_banks = int(core.psum.banks or 1)
    sbuf_capacity = int(core.sbuf.bytes_per_partition)
    live = liveness(instructions)
    keys = list(live)
    events = []
    for i, name in enumerate(keys):
        first, last = live[name]
        events.append((first, 0, i))
        events.append((last, 1, i))
    events.sort()  # births before deaths at the same position
    arenas: dict[tuple[int, bool], _Arena] = {}
    sizes: dict[tuple, tuple[int, int]] = {}
    where: list[tuple[_Arena, int]] = [None] * len(keys)  # type: ignore[list-item]
    placed: list[Placement] = []
    reuses: list[Reuse] = []
    for pos, death, i in events:
        if death:
            arena, start = where[i]
            arena.free(start, pos)
            continue
        name = keys[i]
        info = infos.get(name)
        if info is None:
            raise CapacityError(f"tensor {name} is accessed but was never created; the trace "
                                "is incomplete")
        sbuf = info.buffer is _SBUF
        shape_key = (info.shape, info.itemsize, sbuf)
        cached = sizes.get(shape_key)
        if cached is None:
            row = max(1, info.itemsize * math.prod(info.shape[1:]))
            cached = sizes[shape_key] = (row, -(-row // sbuf_alignment_bytes)
                                         * sbuf_alignment_bytes if sbuf else -(-row // bank_bytes))
        row, size = cached
        arena_key = (info.core, sbuf)
        arena = arenas.get(arena_key)
        if arena is None:
            arena = arenas[arena_key] = _Arena(sbuf_capacity if sbuf else n_banks)
        got = arena.alloc(size, i) if size <= arena.capacity else None
        unit = 1 if sbuf else bank_bytes
        if got is None:
            _raise_capacity(info, size * unit, arena.capacity * unit, arena, keys, infos)
        start, previous = got  # type: ignore[misc]
        where[i] = (arena, start)
        if previous:
            reuses.append(Reuse(name, info.core, pos, tuple(sorted(set(previous))),
                                info.shape[0], row))
        placed.append(Placement(name, info.core, info.buffer, info.shape[0], start * unit,
                                size * unit, pos, live[name][1]))
    peak_sbuf = max((a.peak for (_, sb), a in arenas.items() if sb), default=0)
    peak_psum = max((a.peak for (_, sb), a in arenas.items() if not sb), default=0)
    return Allocation(tuple(placed), tuple(reuses), peak_sbuf, peak_psum * bank_bytes,
                      tuple(sorted(hbm)))


def _raise_capacity(info: TensorInfo, need: int, capacity: int, arena: _Arena,
                    keys: list[str], infos: dict[str, TensorInfo]) -> None:
    unit = capacity // arena.capacity
    live = []
    for i, owner in enumerate(arena.owner):
        if owner >= 0:
            live.append(((arena.ends[i] - arena.starts[i]) * unit, infos[keys[owner]]))
    live.sort(key=lambda item: -item[0])
    total = sum(size for size, _ in live)
    listing = "; ".join(f"{t.name}{list(t.shape)} {t.dtype} {size} B/partition at {t.location}"
                        for size, t in live[:_LISTED])
    memory = "SBUF" if info.buffer is Buffer.SBUF else "PSUM"
    why = (f"{total} B per partition are live and {need} more do not fit in {capacity}"
           if total + need > capacity else
           f"{total} + {need} B per partition would fit in {capacity} but no free range is "
           "large enough (fragmentation)")
    message = (f"{memory} capacity exceeded on core {info.core} allocating {info.name}"
               f"{list(info.shape)} {info.dtype} ({need} B per partition) at {info.location}: "
               f"{why}. Largest live tensors: {listing or 'none'}. Free tiles earlier (shorter "
               "lifetimes), use smaller tiles, or reuse one buffer")
    cls = SbufCapacityError if info.buffer is Buffer.SBUF else PsumCapacityError
    raise cls(message)
