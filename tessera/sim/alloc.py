"""The allocator: an address for every on-chip tensor, from its liveness in the stream.

A tensor is live from its first access to its last (positions in `TraceResult.instructions`).
SBUF tensors get partitions [0, shape[0]) and a byte range of each partition; PSUM tensors
get whole accumulation banks (ceil(bytes per partition / bank bytes) consecutive banks).
HBM tensors need no placement: each is its own address space.

Placement is first-fit from a rotating cursor (next-fit): the search starts where the last
allocation ended, so freed space is reused as late as possible. That is what lets a loop's
iteration i+1 load its tiles while iteration i computes (the multi-buffering a compiler
gives `affine_range` loops) until memory runs out. Reusing a range makes the new tensor's
accesses wait for the previous occupants' accesses to the same bytes (a `Reuse` records who
held which bytes; `deps` resolves it per address, as the hardware's semaphores do): the
reason SBUF pressure serialises a kernel, and only as far as the reused addresses go.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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
    """A tensor placed over memory that earlier tensors used.

    `producers` are the last accesses of the previous occupants. `previous` says which
    occupant held which bytes: (tensor, its start byte, lo, hi) with [lo, hi) the absolute
    per-partition byte range it shares with this tensor. Dependency analysis uses it to make
    each access wait only for the earlier accesses of the same addresses, as the hardware's
    semaphores do; without it, every access waits for all `producers`.
    """

    tensor: str
    core: int
    first: int  # stream position of the tensor's first access
    producers: tuple[int, ...]
    partitions: int  # the tensor's extent: partitions x bytes per partition
    row_bytes: int
    start_bytes: int = 0  # the tensor's own per-partition start byte
    previous: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True)
class Allocation:
    """Placements of all on-chip tensors, the reuse edges they imply and the peaks."""

    # Placement and Reuse fields per tensor, in birth order. The objects are built on first
    # use: streams create a tile per load, and dependency analysis reads the rows directly.
    placement_rows: tuple[tuple, ...] = field(repr=False)
    reuse_rows: tuple[tuple, ...] = field(repr=False)
    peak_sbuf_bytes: int  # per partition, the largest over cores
    peak_psum_bytes: int  # per partition (whole banks), the largest over cores
    hbm_tensors: tuple[str, ...]  # address spaces that need no placement

    @functools.cached_property
    def placements(self) -> tuple[Placement, ...]:
        """Where and when each on-chip tensor lives."""
        return tuple(Placement(*row) for row in self.placement_rows)

    @functools.cached_property
    def reuses(self) -> tuple[Reuse, ...]:
        """The WAR/WAW edges the address reuse creates."""
        return tuple(Reuse(*row) for row in self.reuse_rows)


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
        self.prev = [-1]  # free segments: the tensor that held them last (-1: never used)
        self.cursor = 0
        self.live = 0
        self.peak = 0

    def alloc(self, size: int, owner: int
              ) -> tuple[int, list[int], list[tuple[int, int, int]]] | None:
        """Place `size` units; returns (start, previous occupants' last positions,
        (previous occupant, lo, hi) unit ranges it held).

        Looks at the first `_CANDIDATES` free runs from the cursor and takes the one whose
        previous occupants were freed earliest in the stream (never-used space at once),
        so a new tile waits on the oldest possible work.
        """
        starts, ends, owners, lasts = self.starts, self.ends, self.owner, self.last
        n = len(starts)
        i = bisect_right(starts, self.cursor) - 1
        best_i = best_stop = -1
        best_score = 0
        seen = 0
        for _ in range(n):
            if owners[i] < 0:
                # extend a free run from segment i until it holds `size`
                need = starts[i] + size
                stop = i
                while stop < n and owners[stop] < 0 and ends[stop] < need:
                    stop += 1
                if stop < n and owners[stop] < 0:
                    stop += 1
                    score = lasts[i] if stop - i == 1 else max(lasts[i:stop])
                    if best_i < 0 or score < best_score:
                        best_i, best_stop, best_score = i, stop, score
                    seen += 1
                    if score < 0 or seen >= _CANDIDATES:
                        break
            i += 1
            if i == n:
                i = 0
        if best_i < 0:
            return None
        i, stop = best_i, best_stop
        start = starts[i]
        end = start + size
        prevs = self.prev
        tail_end, tail_last, tail_prev = ends[stop - 1], lasts[stop - 1], prevs[stop - 1]
        if stop - i == 1:  # the common case: part of one free segment
            last, prev = lasts[i], prevs[i]
            edges = [last] if last >= 0 else []
            held = [(prev, start, min(tail_end, end))] if prev >= 0 else []
            ends[i], owners[i], lasts[i], prevs[i] = end, owner, -1, -1
            if tail_end > end:  # the rest of the segment stays free with its history
                starts.insert(i + 1, end)
                ends.insert(i + 1, tail_end)
                owners.insert(i + 1, -1)
                lasts.insert(i + 1, tail_last)
                prevs.insert(i + 1, tail_prev)
        else:
            edges = [p for p in lasts[i:stop] if p >= 0]
            held = [(prevs[k], starts[k], min(ends[k], end)) for k in range(i, stop)
                    if prevs[k] >= 0]
            seg_s, seg_e, seg_o, seg_l, seg_p = [start], [end], [owner], [-1], [-1]
            if tail_end > end:  # the rest of the last segment stays free with its history
                seg_s.append(end)
                seg_e.append(tail_end)
                seg_o.append(-1)
                seg_l.append(tail_last)
                seg_p.append(tail_prev)
            starts[i:stop] = seg_s
            ends[i:stop] = seg_e
            owners[i:stop] = seg_o
            lasts[i:stop] = seg_l
            prevs[i:stop] = seg_p
        self.cursor = end if end < self.capacity else 0
        self.live += size
        if self.live > self.peak:
            self.peak = self.live
        return start, edges, held



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
    sizes: dict[tuple, tuple[int, int, _Arena, int]] = {}
    where: list[tuple[_Arena, int]] = [None] * len(keys)  # type: ignore[list-item]
    starts_of = [0] * len(keys)  # per-partition start byte of each placed tensor
    placed: list[tuple] = []
    reuses: list[tuple] = []
    for pos, death, i in events:
        if death:  # free the tensor's segment, remembering who held it and until when
            arena, start = where[i]
            j = bisect_right(arena.starts, start) - 1
            arena.live -= arena.ends[j] - start
            arena.prev[j] = i
            arena.owner[j] = -1
            arena.last[j] = pos
            continue
        name = keys[i]
        info = infos.get(name)
        if info is None:
            raise CapacityError(f"tensor {name} is accessed but was never created; the trace "
                                "is incomplete")
        # (row bytes, size in arena units, arena, unit bytes) per tensor kind and core
        kind_key = (info.shape, info.itemsize, id(info.buffer), info.core)  # enum by id
        kind = sizes.get(kind_key)
        if kind is None:
            sbuf = info.buffer is _SBUF
            row = max(1, info.itemsize * math.prod(info.shape[1:]))
            size = (-(-row // sbuf_alignment_bytes) * sbuf_alignment_bytes if sbuf
                    else -(-row // bank_bytes))
            arena = arenas.get((info.core, sbuf))
            if arena is None:
                arena = arenas[(info.core, sbuf)] = _Arena(sbuf_capacity if sbuf else n_banks)
            kind = sizes[kind_key] = (row, size, arena, 1 if sbuf else bank_bytes)
        row, size, arena, unit = kind
        got = arena.alloc(size, i) if size <= arena.capacity else None
        if got is None:
            _raise_capacity(info, size * unit, arena.capacity * unit, arena, keys, infos)
        start, previous, held = got  # type: ignore[misc]
        where[i] = (arena, start)
        if previous:
            shared = tuple([(keys[k], starts_of[k], lo * unit, hi * unit) for k, lo, hi in held])
            reuses.append((name, info.core, pos, tuple(sorted(set(previous)))
                           if len(previous) > 1 else tuple(previous),
                           info.shape[0], row, start * unit, shared))
        starts_of[i] = start * unit
        placed.append((name, info.core, info.buffer, info.shape[0], start * unit, size * unit,
                       pos, live[name][1]))
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
