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

The placement loop runs compiled over arrays (`tessera.sim.arena`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.nki.stream import Instruction, TensorInfo
from tessera.sim.arena import events, liveness_of, place
from tessera.sim.errors import CapacityError, PsumCapacityError, SbufCapacityError
from tessera.sim.lower import StreamArrays, lower

_LISTED = 5  # how many of the largest live tensors a capacity error names
# free runs compared per allocation: enough to skip a recently freed run next to the cursor,
# few enough to keep allocation O(1) in steady state
_CANDIDATES = 4


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
class ReuseArrays:
    """Reuses as arrays (tensor ids of a `StreamArrays`), the form `deps` reads.

    Reuse r's producers are `producers[producer_ptr[r]:producer_ptr[r + 1]]` and the ranges
    it shares with previous occupants `held_*[held_ptr[r]:held_ptr[r + 1]]` (absolute
    per-partition bytes; `held_start` is the occupant's own start byte). A reuse with no
    held ranges waits for all producers on its whole extent.
    """

    tensor: np.ndarray
    first: np.ndarray
    partitions: np.ndarray
    row_bytes: np.ndarray
    start_bytes: np.ndarray
    producer_ptr: np.ndarray
    producers: np.ndarray
    held_ptr: np.ndarray
    held_tensor: np.ndarray
    held_start: np.ndarray
    held_lo: np.ndarray
    held_hi: np.ndarray

    @staticmethod
    def of(reuses: Sequence[Reuse], ids: dict[str, int]) -> ReuseArrays:
        """Arrays of `Reuse` records; names missing from `ids` are added to it."""
        def tid(name: str) -> int:
            return ids.setdefault(name, len(ids))

        held = [h for r in reuses for h in r.previous]
        return ReuseArrays(
            _ints(tid(r.tensor) for r in reuses), _ints(r.first for r in reuses),
            _ints(r.partitions for r in reuses), _ints(r.row_bytes for r in reuses),
            _ints(r.start_bytes for r in reuses), _offsets(len(r.producers) for r in reuses),
            _ints(p for r in reuses for p in r.producers),
            _offsets(len(r.previous) for r in reuses), _ints(tid(h[0]) for h in held),
            _ints(h[1] for h in held), _ints(h[2] for h in held), _ints(h[3] for h in held))


def _ints(values: Iterable[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


def _offsets(lengths: Iterable[int]) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(_ints(lengths)))).astype(np.int64)


@dataclass(frozen=True)
class Allocation:
    """Placements of all on-chip tensors, the reuse edges they imply and the peaks."""

    peak_sbuf_bytes: int  # per partition, the largest over cores
    peak_psum_bytes: int  # per partition (whole banks), the largest over cores
    hbm_tensors: tuple[str, ...]  # address spaces that need no placement
    # tensors in birth order (ids of `stream`) with their placement, as arrays: streams
    # create a tile per load, so records are built only when asked for
    stream: StreamArrays = field(repr=False, compare=False)
    born: np.ndarray = field(repr=False, compare=False)
    start_bytes: np.ndarray = field(repr=False, compare=False)  # per tensor id
    size_bytes: np.ndarray = field(repr=False, compare=False)
    first: np.ndarray = field(repr=False, compare=False)
    last: np.ndarray = field(repr=False, compare=False)
    reuse: ReuseArrays = field(repr=False, compare=False)

    @functools.cached_property
    def placement_rows(self) -> tuple[tuple, ...]:
        """`Placement` fields per tensor, in birth order."""
        names, infos = self.stream.names, self.stream.infos
        rows = []
        for t, s, z, f, la in zip(self.born.tolist(), self.start_bytes[self.born].tolist(),
                                  self.size_bytes[self.born].tolist(),
                                  self.first[self.born].tolist(),
                                  self.last[self.born].tolist(), strict=True):
            info = infos[names[t]]
            rows.append((info.name, info.core, info.buffer, info.shape[0], s, z, f, la))
        return tuple(rows)

    @functools.cached_property
    def reuse_rows(self) -> tuple[tuple, ...]:
        """`Reuse` fields per reuse, in order of the reusing tensors' births."""
        r, names, infos = self.reuse, self.stream.names, self.stream.infos
        pp, pr = r.producer_ptr.tolist(), r.producers.tolist()
        hp = r.held_ptr.tolist()
        held = list(zip([names[t] for t in r.held_tensor.tolist()], r.held_start.tolist(),
                        r.held_lo.tolist(), r.held_hi.tolist(), strict=True))
        rows = []
        for k, (t, f, parts, row, start) in enumerate(zip(
                r.tensor.tolist(), r.first.tolist(), r.partitions.tolist(),
                r.row_bytes.tolist(), r.start_bytes.tolist(), strict=True)):
            rows.append((names[t], infos[names[t]].core, f, tuple(pr[pp[k]:pp[k + 1]]), parts,
                         row, start, tuple(held[hp[k]:hp[k + 1]])))
        return tuple(rows)

    @functools.cached_property
    def placements(self) -> tuple[Placement, ...]:
        """Where and when each on-chip tensor lives."""
        return tuple(Placement(*row) for row in self.placement_rows)

    @functools.cached_property
    def reuses(self) -> tuple[Reuse, ...]:
        """The WAR/WAW edges the address reuse creates."""
        return tuple(Reuse(*row) for row in self.reuse_rows)


def allocate(instructions: Sequence[Instruction], tensors: Iterable[TensorInfo],
             chip: ChipSpec, sbuf_alignment_bytes: int = 64) -> Allocation:
    """Place every on-chip tensor of the stream; raise a `CapacityError` when they don't fit.

    Capacities come from `chip.core` (so `hw.with_overrides` what-ifs apply).
    """
    return allocate_stream(lower(instructions, tensors), chip, sbuf_alignment_bytes)


def liveness(instructions: Sequence[Instruction]) -> dict[str, list[int]]:
    """tensor -> [first, last] stream position of every on-chip tensor accessed.

    On-chip tensor names are unique per launch (the LNC cores prefix theirs), so the name
    alone is the key.
    """
    sa = lower(instructions)
    first, last = liveness_of(sa.ap_ptr, sa.ap_tensor, sa.ap_onchip, sa.tensors)
    return {sa.names[t]: [int(first[t]), int(last[t])] for t in np.flatnonzero(first >= 0)}


def allocate_stream(sa: StreamArrays, chip: ChipSpec,
                    sbuf_alignment_bytes: int = 64) -> Allocation:
    """`allocate` on a lowered stream (`tessera.sim.lower`)."""
    core = chip.core
    bank_bytes = int(core.psum.bank_bytes_per_partition or core.psum.bytes_per_partition)
    n_banks = int(core.psum.banks or 1)
    sbuf_capacity = int(core.sbuf.bytes_per_partition)
    first, last = liveness_of(sa.ap_ptr, sa.ap_tensor, sa.ap_onchip, sa.tensors)
    on_chip = np.flatnonzero(first >= 0)
    arena_of = np.full(sa.tensors, -1, np.int64)
    size = np.zeros(sa.tensors, np.int64)
    row_of = np.zeros(sa.tensors, np.int64)
    unit_of = np.ones(sa.tensors, np.int64)
    parts_of = np.zeros(sa.tensors, np.int64)
    arenas: dict[tuple[int, bool], int] = {}
    capacity: list[int] = []
    align: list[int] = []
    kinds: dict[tuple, int] = {}
    # per kind: row bytes, size in arena units, arena, unit bytes, partitions
    table: list[tuple[int, int, int, int, int]] = []
    names, infos = sa.names, sa.infos
    missing = []
    kind_of = []
    for t in on_chip.tolist():
        info = infos.get(names[t])
        if info is None or not info.buffer.on_chip:
            missing.append(t)
            kind_of.append(0)
            continue
        # tensors of one shape, dtype, memory and core place alike
        key = (info.shape, info.itemsize, id(info.buffer), info.core)
        k = kinds.get(key)
        if k is None:
            k = kinds[key] = len(table)
            sbuf = info.buffer is Buffer.SBUF
            row = max(1, info.itemsize * math.prod(info.shape[1:]))
            units = (-(-row // sbuf_alignment_bytes) * sbuf_alignment_bytes if sbuf
                     else -(-row // bank_bytes))
            a = arenas.get((info.core, sbuf))
            if a is None:
                a = arenas[(info.core, sbuf)] = len(capacity)
                capacity.append(sbuf_capacity if sbuf else n_banks)
                align.append(sbuf_alignment_bytes if sbuf else 1)
            table.append((row, units, a, 1 if sbuf else bank_bytes, info.shape[0]))
        kind_of.append(k)
    if missing:
        t = min(missing, key=lambda m: first[m])
        raise CapacityError(f"tensor {names[t]} is accessed but was never created; the trace "
                            "is incomplete")
    if table:
        facts = np.array(table, dtype=np.int64)[np.array(kind_of, dtype=np.int64)]
        row_of[on_chip], size[on_chip] = facts[:, 0], facts[:, 1]
        arena_of[on_chip], unit_of[on_chip] = facts[:, 2], facts[:, 3]
        parts_of[on_chip] = facts[:, 4]
    cap = np.array(capacity, dtype=np.int64)
    counts = np.bincount(arena_of[on_chip], minlength=len(capacity))
    max_segments = np.minimum(counts + 1, -(-cap // np.array(align, dtype=np.int64)) + 1) + 1
    (born, start_units, peak, r_tensor, r_pp, r_prod, r_hp, held_tensor, held_lo, held_hi,
     failed, seg_start, seg_end, seg_owner) = place(
        events(first, last, arena_of), arena_of, size, cap, max_segments.astype(np.int64),
        _CANDIDATES)
    if failed >= 0:
        _raise_capacity(sa, int(failed), int(size[failed] * unit_of[failed]),
                        int(cap[arena_of[failed]] * unit_of[failed]), int(unit_of[failed]),
                        seg_start, seg_end, seg_owner)
    start_bytes = start_units * unit_of
    held_unit = unit_of[r_tensor].repeat(np.diff(r_hp))  # ranges are in the arena's units
    reuse = ReuseArrays(
        tensor=r_tensor, first=first[r_tensor], partitions=parts_of[r_tensor],
        row_bytes=row_of[r_tensor], start_bytes=start_bytes[r_tensor], producer_ptr=r_pp,
        producers=r_prod, held_ptr=r_hp, held_tensor=held_tensor,
        held_start=start_bytes[held_tensor], held_lo=held_lo * held_unit,
        held_hi=held_hi * held_unit)
    is_sbuf = [sb for (_, sb) in sorted(arenas, key=arenas.__getitem__)]
    peak_sbuf = max((int(p) for p, sb in zip(peak, is_sbuf, strict=True) if sb), default=0)
    peak_psum = max((int(p) for p, sb in zip(peak, is_sbuf, strict=True) if not sb), default=0)
    hbm = tuple(sorted(t.name for t in sa.infos.values() if not t.buffer.on_chip))
    return Allocation(peak_sbuf, peak_psum * bank_bytes, hbm, sa, born, start_bytes,
                      size * unit_of, first, last, reuse)


def _raise_capacity(sa: StreamArrays, t: int, need: int, capacity: int, unit: int,
                    seg_start: np.ndarray, seg_end: np.ndarray, seg_owner: np.ndarray) -> None:
    info = sa.infos[sa.names[t]]
    live = [((int(e) - int(s)) * unit, sa.infos[sa.names[o]])
            for s, e, o in zip(seg_start, seg_end, seg_owner, strict=True) if o >= 0]
    live.sort(key=lambda item: -item[0])
    total = sum(size for size, _ in live)
    listing = "; ".join(f"{x.name}{list(x.shape)} {x.dtype} {size} B/partition at {x.location}"
                        for size, x in live[:_LISTED])
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
