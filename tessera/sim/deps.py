"""Dependencies between instructions: data hazards, allocator reuse and barrier fences.

Two accesses to the same tensor conflict when their address ranges overlap and at least one
writes (RAW, WAR, WAW). On-chip ranges are partition range x per-partition byte range; HBM
ranges are row range x byte range within a row (rows = the tensor's leading dimension).
Each tensor keeps the regions of its live writers and readers; a write that covers an older
region drops it (anything that overlaps the old region also overlaps the new write, which
already waits for the old access), so lists stay short. A tensor placed over reused memory
starts with the regions its previous occupants left on the shared bytes (WAR/WAW).

A `core_barrier` is a fence of its core: it waits for everything the core issued before it,
and everything after waits for it (the pair of barriers is joined in the timeline).
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from tessera.nki.stream import AccessPattern, Instruction, Opcode, TensorInfo
from tessera.sim.alloc import Reuse

Region = tuple[int, int, int, int]  # row (partition) lo, hi, byte lo, hi within a row

_FLAT = 1 << 62  # row pitch of an HBM tensor whose shape is unknown: one flat row
_region_cache: dict[tuple, Region] = {}


def _span(pattern: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """Lowest and highest element offset a pattern reaches from its base."""
    lo = hi = 0
    for stride, count in pattern:
        reach = stride * (count - 1)
        if reach >= 0:
            hi += reach
        else:
            lo += reach
    return lo, hi


def region(ap: AccessPattern, pitch: int = _FLAT) -> Region:
    """The address box an access touches (cached: kernels repeat a few view shapes).

    On-chip: partitions x bytes within a partition. HBM: rows of `pitch` elements (the
    tensor's trailing dimensions) x bytes within a row, so column slices of different
    rows do not conflict; a pattern that wraps rows covers whole rows.
    """
    key = (ap.offset_elems, ap.pattern, ap.partition_elems, ap.itemsize, pitch)
    hit = _region_cache.get(key)
    if hit is not None:
        return hit
    isz = ap.itemsize
    if ap.num_elements == 0:
        box = (0, 0, 0, 0)
    elif ap.partition_elems:
        lo, hi = ap.free_byte_range
        p0 = ap.partition_start
        box = (p0, p0 + (ap.partition_count - 1) * ap.partition_step + 1, lo, hi)
    else:
        off, pattern = ap.offset_elems, ap.pattern
        lo, hi = _span(pattern)
        first, last = off + lo, off + hi
        outer = pattern[0] if pattern else (0, 1)
        ilo, ihi = _span(pattern[1:])
        col = off % pitch
        if first // pitch == last // pitch:  # inside one row
            box = (first // pitch, first // pitch + 1, (first % pitch) * isz,
                   (last % pitch + 1) * isz)
        elif outer[0] > 0 and outer[0] % pitch == 0 and 0 <= col + ilo and col + ihi < pitch:
            r0 = off // pitch
            box = (r0, r0 + (outer[1] - 1) * outer[0] // pitch + 1, (col + ilo) * isz,
                   (col + ihi + 1) * isz)
        else:
            box = (first // pitch, last // pitch + 1, 0, pitch * isz)
    if len(_region_cache) > 100_000:
        _region_cache.clear()
    _region_cache[key] = box
    return box


# Indexes of up to this many regions are scanned linearly: most tensors are tiles with a
# handful of accesses, for which sorting and bisecting cost more than they save.
_SMALL = 16
_B0 = operator.itemgetter(2)


class _Index:
    """Regions (p0, p1, b0, b1, pos) of one tensor, for overlap queries.

    Small indexes are plain lists. Large ones keep `items[:nsorted]` sorted by b0 (with
    `starts` the b0 column) and `span` bounding b1 - b0, so the entries that can overlap
    [b0, b1) start in (b0 - span, b1): a bisect, not a scan of every access the tensor ever
    had. New entries are appended unsorted and put in order when a query needs them.
    """

    __slots__ = ("items", "starts", "span", "nsorted")

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.starts: list[int] = []
        self.span = 0
        self.nsorted = 0

    def _order(self) -> None:
        items, k = self.items, self.nsorted
        if k and len(items) - k <= 8:  # a few new entries: insert them in place
            tail = items[k:]
            del items[k:]
            starts, span = self.starts, self.span
            for e in tail:
                i = bisect_right(starts, e[2])
                items.insert(i, e)
                starts.insert(i, e[2])
                if e[3] - e[2] > span:
                    span = e[3] - e[2]
            self.span = span
        else:
            items.sort(key=_B0)
            self.starts = [e[2] for e in items]
            self.span = max(e[3] - e[2] for e in items)
        self.nsorted = len(items)

    def collect(self, p0: int, p1: int, b0: int, b1: int, found: set[int]) -> bool:
        """Add the positions of overlapping entries to `found`; True if `box` covers one."""
        items = self.items
        covered = False
        if len(items) <= _SMALL:
            for e in items:
                if b0 < e[3] and e[2] < b1 and e[0] < p1 and p0 < e[1]:
                    found.add(e[4])
                    if p0 <= e[0] and e[1] <= p1 and b0 <= e[2] and e[3] <= b1:
                        covered = True
            return covered
        if self.nsorted != len(items):
            self._order()
        starts = self.starts
        lo = bisect_right(starts, b0 - self.span)
        hi = bisect_left(starts, b1)
        for e in items[lo:hi]:
            if b0 < e[3] and e[0] < p1 and p0 < e[1]:
                found.add(e[4])
                if p0 <= e[0] and e[1] <= p1 and b0 <= e[2] and e[3] <= b1:
                    covered = True
        return covered

    def prune(self, p0: int, p1: int, b0: int, b1: int) -> None:
        """Drop the entries the region covers (whoever overlaps them overlaps it).

        Called right after `collect` with the same region, so a large index is in order.
        """
        items = self.items
        if len(items) <= _SMALL:
            self.items = [e for e in items
                          if not (p0 <= e[0] and e[1] <= p1 and b0 <= e[2] and e[3] <= b1)]
            self.nsorted = 0
            return
        lo = bisect_left(self.starts, b0)
        hi = bisect_right(self.starts, b1)
        keep = [e for e in items[lo:hi]
                if not (p0 <= e[0] and e[1] <= p1 and b0 <= e[2] and e[3] <= b1)]
        items[lo:hi] = keep
        self.starts[lo:hi] = [e[2] for e in keep]
        self.nsorted = len(items)
        if b1 - b0 >= self.span:
            self.span = max((e[3] - e[2] for e in items), default=0)


def _inherited(r: tuple, state: dict[object, tuple[_Index, _Index]]) -> _Index:
    """Writers of a reused range (`r` a reuse row): every access of the previous occupants
    that is still indexed (reads and writes alike, WAR and WAW) on the bytes they share,
    moved into the new tensor's coordinates. An occupant's index already holds what it
    inherited itself, so older occupants are covered transitively."""
    seeded = _Index()
    out = seeded.items
    shift = r[6]
    for name, old_start, lo, hi in r[7]:
        indexes = state.get(name)
        if indexes is None:  # never accessed as far as dependencies go: wait for all of it
            out.extend((0, r[4], lo - shift, hi - shift, p) for p in r[3])
            continue
        for index in indexes:
            for e in index.items:
                a0, a1 = e[2] + old_start, e[3] + old_start
                if a0 < hi and lo < a1:
                    if a0 >= lo and a1 <= hi and old_start == shift:
                        out.append(e)  # same place, wholly shared: the region as it is
                    else:
                        out.append((e[0], e[1], max(a0, lo) - shift, min(a1, hi) - shift,
                                    e[4]))
    return seeded


def dependencies(instructions: Sequence[Instruction], reuses: Sequence[Reuse] = (),
                 tensors: Iterable[TensorInfo] = ()) -> list[tuple[int, ...]]:
    """For every stream position, the positions it must wait for (all earlier).

    A tensor placed over reused memory inherits, on the bytes it shares with each previous
    occupant, that occupant's indexed accesses as writers, so each of its accesses waits for
    the earlier accesses of the same addresses (until a write that covers them takes their
    place). A `Reuse` without `previous` waits for all its producers on its whole extent.
    """
    rows = [(r.tensor, r.core, r.first, r.producers, r.partitions, r.row_bytes,
             r.start_bytes, r.previous) for r in reuses]
    return dependencies_of_rows(instructions, rows, tensors)


def dependencies_of_rows(instructions: Sequence[Instruction], reuse_rows: Sequence[tuple],
                         tensors: Iterable[TensorInfo] = ()) -> list[tuple[int, ...]]:
    """`dependencies` with the reuses as `Allocation.reuse_rows` (no objects built)."""
    multi = len({inst.core for inst in instructions}) > 1
    pitch = {t.name: max(1, math.prod(t.shape[1:])) for t in tensors if not t.buffer.on_chip}
    # tensor -> (writer regions, reader regions); a region is (p0, p1, b0, b1, pos). HBM
    # tensors are per core with LNC=2: cross-core order comes from the barrier fences.
    state: dict[object, tuple[_Index, _Index]] = {}
    seed_at: dict[int, list[Reuse]] = {}
    for r in reuse_rows:
        if r[7]:  # seeded when the stream reaches it: the occupants' final accesses
            seed_at.setdefault(r[2], []).append(r)
        else:
            seeded = _Index()
            seeded.items = [(0, r[4], 0, r[5], p) for p in r[3]]
            state[r[0]] = (seeded, _Index())
    written = {ap.tensor for inst in instructions for ap in inst.writes}
    written.update(r[0] for r in reuse_rows)
    barrier = Opcode.CORE_BARRIER
    has_fence = any(inst.opcode is barrier for inst in instructions)
    since_fence: dict[int, list[int]] = {}
    fence: dict[int, int] = {}
    cache = _region_cache
    out: list[tuple[int, ...]] = []
    for pos, inst in enumerate(instructions):
        if pos in seed_at:
            for r in seed_at.pop(pos):
                state[r[0]] = (_inherited(r, state), _Index())
        found: set[int] = set()
        for ap in inst.reads:
            if ap.tensor not in written:
                continue  # never written (kernel inputs): no RAW now, no WAR later
            row = _FLAT if ap.partition_elems else pitch.get(ap.tensor, _FLAT)
            box = cache.get((ap.offset_elems, ap.pattern, ap.partition_elems, ap.itemsize, row))
            p0, p1, b0, b1 = box if box is not None else region(ap, row)
            if p1 <= p0 or b1 <= b0:
                continue
            key = (inst.core, ap.tensor) if multi and not ap.partition_elems else ap.tensor
            index = state.get(key)
            if index is None:
                index = state[key] = (_Index(), _Index())
            if index[0].items:
                index[0].collect(p0, p1, b0, b1, found)
            index[1].items.append((p0, p1, b0, b1, pos))
        for ap in inst.writes:
            row = _FLAT if ap.partition_elems else pitch.get(ap.tensor, _FLAT)
            box = cache.get((ap.offset_elems, ap.pattern, ap.partition_elems, ap.itemsize, row))
            p0, p1, b0, b1 = box if box is not None else region(ap, row)
            if p1 <= p0 or b1 <= b0:
                continue
            key = (inst.core, ap.tensor) if multi and not ap.partition_elems else ap.tensor
            index = state.get(key)
            if index is None:
                index = state[key] = (_Index(), _Index())
            for entries in index:
                if entries.items and entries.collect(p0, p1, b0, b1, found):
                    entries.prune(p0, p1, b0, b1)
            index[0].items.append((p0, p1, b0, b1, pos))
        if has_fence:
            core = inst.core
            if inst.opcode is barrier:
                found.update(since_fence.get(core, ()))
                since_fence[core] = []
                fence[core] = pos
            else:
                f = fence.get(core)
                if f is not None:
                    found.add(f)
                since_fence.setdefault(core, []).append(pos)
        found.discard(pos)
        out.append(tuple(found))
    return out
