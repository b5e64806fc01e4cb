"""The allocator: an address for every on-chip tensor, from its liveness in the stream.

A tensor is live from its first access to its last (positions in `TraceResult.instructions`).
SBUF tensors get partitions [0, shape[0]) and a byte range of each partition; PSUM tensors
get whole accumulation banks (ceil(bytes per partition / bank bytes) consecutive banks).
HBM tensors need no placement: each is its own address space.

Placement is first-fit from a rotating cursor (next-fit): the search starts where the last
allocation ended, so freed space is reused as late as possible. That is what lets a loop's
iteration i+1 load its tiles while iteration i computes (the multi-buffering a compiler
gives `affine_range` loops) until memory runs out; it is NKI's `AllocationMode.RING` ("a
fresh address ... reuse freed memory only after the allocation wraps around"). Best fit
(`best_fit=True`) is `FAST` / `MAX_REUSE`. Reusing a range makes the new tensor's accesses
wait for the previous occupants' accesses to the same bytes (a `Reuse` records who held
which bytes; `deps` resolves it per address, as the hardware's semaphores do): the reason
SBUF pressure serialises a kernel, and only as far as the reused addresses go.

Which policy a kernel gets, and what happens when memory runs out, follows its
`nki.compiler.CompileConfig` (`tessera.sim.spill.allocate_kernel`); allocation always
comes before scheduling, on program-order live ranges.

The placement loop runs compiled over arrays (`tessera.sim._loops.arena`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki.buffers import Buffer
from tessera.sim.arrays import Arenas, Placed, ReuseArrays
from tessera.sim.errors import CapacityError, PsumCapacityError, SbufCapacityError
from tessera.sim.flat import FlatStream

_LISTED = 5  # how many of the largest live tensors a capacity error names
# free runs compared per allocation: enough to skip a recently freed run next to the cursor,
# few enough to keep allocation O(1) in steady state
_CANDIDATES = 4


@dataclass(frozen=True)
class TensorPlacement:
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
class AddressPlan:
    """Placements of all on-chip tensors, the reuse edges they imply and the peaks."""

    peak_sbuf_bytes: int  # per partition, the largest over cores
    peak_psum_bytes: int  # per partition (whole banks), the largest over cores
    hbm_tensors: tuple[str, ...]  # address spaces that need no placement
    # tensors in birth order (ids of `stream`) with their placement, as arrays: streams
    # create a tile per load, so records are built only when asked for
    stream: FlatStream = field(repr=False, compare=False)
    born: np.ndarray = field(repr=False, compare=False)
    start_bytes: np.ndarray = field(repr=False, compare=False)  # per tensor id
    size_bytes: np.ndarray = field(repr=False, compare=False)
    first: np.ndarray = field(repr=False, compare=False)
    last: np.ndarray = field(repr=False, compare=False)
    reuse: ReuseArrays = field(repr=False, compare=False)
    # evictions (with `spill`): tensor id, the position that needed the room, the position
    # of the tensor's next access
    spill_tensor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64),
                                     repr=False, compare=False)
    spill_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False,
                                 compare=False)
    spill_back: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64),
                                   repr=False, compare=False)

    @functools.cached_property
    def placements(self) -> tuple[TensorPlacement, ...]:
        """Where and when each on-chip tensor lives, in birth order."""
        names, infos = self.stream.names, self.stream.infos
        out = []
        for t, s, z, f, la in zip(self.born.tolist(), self.start_bytes[self.born].tolist(),
                                  self.size_bytes[self.born].tolist(),
                                  self.first[self.born].tolist(),
                                  self.last[self.born].tolist(), strict=True):
            info = infos[names[t]]
            out.append(TensorPlacement(info.name, info.core, info.buffer, info.shape[0], s, z,
                                       f, la))
        return tuple(out)

    @functools.cached_property
    def reuses(self) -> tuple[Reuse, ...]:
        """The WAR/WAW edges the address reuse creates, in order of the reusing tensors'
        births."""
        r, names, infos = self.reuse, self.stream.names, self.stream.infos
        pp, pr = r.producer_ptr.tolist(), r.producers.tolist()
        hp = r.held_ptr.tolist()
        held = list(zip([names[t] for t in r.held_tensor.tolist()], r.held_start.tolist(),
                        r.held_lo.tolist(), r.held_hi.tolist(), strict=True))
        out = []
        for k, (t, f, parts, row, start) in enumerate(zip(
                r.tensor.tolist(), r.first.tolist(), r.partitions.tolist(),
                r.row_bytes.tolist(), r.start_bytes.tolist(), strict=True)):
            out.append(Reuse(names[t], infos[names[t]].core, f, tuple(pr[pp[k]:pp[k + 1]]),
                             parts, row, start, tuple(held[hp[k]:hp[k + 1]])))
        return tuple(out)


def allocate(flat: FlatStream, chip: ChipSpec, sbuf_alignment_bytes: int = 64,
             best_fit: bool = False, spill: bool = False, offline: bool = False
             ) -> AddressPlan:
    """Place every on-chip tensor of a lowered stream; raise a `CapacityError` when they
    don't fit.

    Placement is next fit (`best_fit`: best fit; `offline`: largest first, with every live
    range known, `tessera.sim._loops.offline`). With `spill`, an SBUF tensor that finds
    no room evicts live ones instead (`AddressPlan.spills`; `tessera.sim.spill` turns them
    into DMAs); only what one instruction needs at once can still fail. Capacities come
    from `chip.core` (so `hw.with_overrides` what-ifs apply).
    """
    from tessera.sim import _loops  # numba loads with the first stream that is scheduled

    core = chip.core
    bank_bytes = int(core.psum.bank_bytes_per_partition or core.psum.bytes_per_partition)
    n_banks = int(core.psum.banks or 1)
    sbuf_capacity = int(core.sbuf.bytes_per_partition)
    first, last = _loops.arena.liveness(flat.arrays, flat.tensors)
    on_chip = np.flatnonzero(first >= 0)
    tensors = flat.tensors
    arena_of = np.full(tensors, -1, np.int64)
    size = np.zeros(tensors, np.int64)
    row_of = np.zeros(tensors, np.int64)
    unit_of = np.ones(tensors, np.int64)
    parts_of = np.zeros(tensors, np.int64)
    arenas: dict[tuple[int, bool], int] = {}
    capacity: list[int] = []
    align: list[int] = []
    kinds: dict[tuple, int] = {}
    # per kind: row bytes, size in arena units, arena, unit bytes, partitions
    table: list[tuple[int, int, int, int, int]] = []
    names, infos = flat.names, flat.infos
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
    by_size = -(-cap // np.array(align, dtype=np.int64)) + 1
    # re-placed spilled tensors are births beyond the count, and fixed starts split free
    # segments: only the size bound holds
    max_segments = (by_size if spill or offline else np.minimum(counts + 1, by_size)) + 1
    fixed = np.zeros(0, np.int64)
    if offline:
        ids = np.flatnonzero(arena_of >= 0)
        order = ids[np.lexsort((first[ids], -size[ids], arena_of[ids]))]
        fixed, failed = _loops.offline.offline_starts(first, last, arena_of, size, cap, order)
        if failed >= 0:
            info = infos[names[int(failed)]]
            cls = SbufCapacityError if info.buffer is Buffer.SBUF else PsumCapacityError
            raise cls(f"{'SBUF' if cls is SbufCapacityError else 'PSUM'} capacity exceeded "
                      f"on core {info.core}: no address for {info.name}{list(info.shape)} at "
                      f"{info.location} with every live range known")
    spillable = np.array([spill and sb for (_, sb) in sorted(arenas, key=arenas.__getitem__)],
                         dtype=np.bool_)
    uses_ptr, uses = _loops.arena.uses_of(flat.arrays, tensors)
    placed = _loops.arena.place(
        _lifetime_keys(first, last, arena_of),
        Arenas(arena_of, size, cap, max_segments.astype(np.int64), spillable), _CANDIDATES,
        best_fit, uses_ptr, uses, fixed)
    failed = int(placed.failed)
    if failed >= 0:
        _raise_capacity(flat, failed, int(size[failed] * unit_of[failed]),
                        int(cap[arena_of[failed]] * unit_of[failed]), int(unit_of[failed]),
                        placed, spill)
    start_bytes = placed.start_units * unit_of
    r_tensor, r_hp = placed.reuse_tensor, placed.held_ptr
    held_unit = unit_of[r_tensor].repeat(np.diff(r_hp))  # ranges are in the arena's units
    reuse = ReuseArrays(
        tensor=r_tensor, first=first[r_tensor], partitions=parts_of[r_tensor],
        row_bytes=row_of[r_tensor], start_bytes=start_bytes[r_tensor],
        producer_ptr=placed.producer_ptr, producers=placed.producers, held_ptr=r_hp,
        held_tensor=placed.held_tensor, held_start=start_bytes[placed.held_tensor],
        held_lo=placed.held_lo * held_unit, held_hi=placed.held_hi * held_unit)
    peak = placed.peak_units
    is_sbuf = [sb for (_, sb) in sorted(arenas, key=arenas.__getitem__)]
    peak_sbuf = max((int(p) for p, sb in zip(peak, is_sbuf, strict=True) if sb), default=0)
    peak_psum = max((int(p) for p, sb in zip(peak, is_sbuf, strict=True) if not sb), default=0)
    hbm = tuple(sorted(t.name for t in flat.infos.values() if not t.buffer.on_chip))
    return AddressPlan(peak_sbuf, peak_psum * bank_bytes, hbm, flat, placed.born, start_bytes,
                       size * unit_of, first, last, reuse, placed.spill_tensor,
                       placed.spill_at, placed.spill_back)


def _lifetime_keys(first: np.ndarray, last: np.ndarray, arena_of: np.ndarray) -> np.ndarray:
    """Births and deaths of the placed tensors as sorted keys (see `_loops.arena.place`)."""
    placed = np.flatnonzero(arena_of >= 0)
    n_t = len(first)
    keys = np.concatenate(((first[placed] * 2) * n_t + placed,
                           (last[placed] * 2 + 1) * n_t + placed))
    keys.sort()
    return keys


def _raise_capacity(flat: FlatStream, t: int, need: int, capacity: int, unit: int,
                    placed: Placed, spill: bool = False) -> None:
    info = flat.infos[flat.names[t]]
    live = [((int(e) - int(s)) * unit, flat.infos[flat.names[o]])
            for s, e, o in zip(placed.segment_start, placed.segment_end,
                               placed.segment_owner, strict=True) if o >= 0]
    live.sort(key=lambda item: -item[0])
    total = sum(size for size, _ in live)
    listing = "; ".join(f"{x.name}{list(x.shape)} {x.dtype} {size} B/partition at {x.location}"
                        for size, x in live[:_LISTED])
    memory = "SBUF" if info.buffer is Buffer.SBUF else "PSUM"
    if need > capacity:
        why = f"the tensor alone is larger than the {capacity} B of a partition"
    elif spill and info.buffer is Buffer.SBUF:
        why = (f"even after spilling every tensor this instruction does not use, its operands "
               f"({total} B per partition live) and {need} more do not fit in {capacity}")
    elif total + need > capacity:
        why = f"{total} B per partition are live and {need} more do not fit in {capacity}"
    else:
        why = (f"{total} + {need} B per partition would fit in {capacity} but no free range "
               "is large enough (fragmentation)")
    message = (f"{memory} capacity exceeded on core {info.core} allocating {info.name}"
               f"{list(info.shape)} {info.dtype} ({need} B per partition) at {info.location}: "
               f"{why}. Largest live tensors: {listing or 'none'}. Free tiles earlier (shorter "
               "lifetimes), use smaller tiles, or reuse one buffer")
    cls = SbufCapacityError if info.buffer is Buffer.SBUF else PsumCapacityError
    raise cls(message)
