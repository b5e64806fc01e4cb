"""Races on the HBM the two cores of an LNC=2 launch share.

What the hardware guarantees, from the NKI docs ("Using Logical NeuronCores (LNC) with
NKI", `nki.isa.core_barrier` / `nki.lnc.core_barrier`, `nki.isa.sendrecv` /
`nki.lnc.sendrecv`): each physical core runs its own instruction stream and both reach the
same HBM; `core_barrier` is the instruction that makes one core's HBM writes visible to the
other ("both cores write disjoint portions of a shared HBM tensor ... then signal to each
other when the write operation is complete"). `sendrecv` pairs the n-th call of each core
and orders the SBUF tiles it moves, not other HBM traffic, so it does not separate phases.

Hence the accesses one core makes between two barriers (a *phase*) are unordered with the
other core's accesses of the same phase. Two of them conflict when they touch a common byte
of one HBM tensor and
- one reads while the other writes: the read may see the value from before or after the
  write. Reported when the second access is issued.
- both write: whichever lands last wins. A core's own writes land in its program order
  (the compiler orders a core's writes to one byte), so what decides the byte is each core's
  *last* write of it in the phase. In functional mode those last values are compared when
  the phase ends (the next barrier, or the end of the kernel): equal values (both cores
  zero-filling one output, or storing the same scatter after their own zero-fill) give one
  result in either order and are accepted; different values are a race naming both last
  writes. Symbolic traces have no values, so there only read/write conflicts are reported.

Tensors are keyed by storage name: a shared_hbm tensor and a kernel input have one name on
both cores, a core's private HBM tensor a name of its own, so only shared tensors can meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tessera.nki.errors import CoreRaceError
from tessera.nki.indirect import IndirectTensor
from tessera.nki.stream import Instruction, Opcode, SourceLocation
from tessera.nki.tensor import NkiTensor

# a byte range [lo, hi) or the sorted byte positions of an overlap
Bytes = tuple[int, int] | np.ndarray


def _span(offset: int, pattern: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """[lo, hi) elements a strided pattern reaches."""
    lo = hi = offset
    for stride, count in pattern:
        reach = stride * (count - 1)
        if reach > 0:
            hi += reach
        else:
            lo += reach
    return lo, hi + 1


def _dense(pattern: tuple[tuple[int, int], ...]) -> bool:
    """True when the pattern touches every element of its span (sufficient test: with the
    dimensions sorted by stride, each stride stays within the span the smaller ones cover),
    so that overlaps are plain range intersections."""
    covered = 1
    for stride, count in sorted((abs(s), c) for s, c in pattern if c > 1 and s != 0):
        if stride > covered:
            return False
        covered += stride * (count - 1)
    return True


@dataclass(eq=False)
class Access:
    """One instruction's read or write of one HBM tensor, in element units of its view."""

    core: int
    write: bool
    inst: Instruction
    tensor: str
    shape: tuple[int, ...]  # the storage's shape, to name an element
    itemsize: int
    lo: int  # elements [lo, hi) bound the access
    hi: int
    offset: int = 0
    pattern: tuple[tuple[int, int], ...] = ()
    explicit: np.ndarray | None = None  # sorted element addresses (indirect DMAs)
    dense: bool = False
    array: np.ndarray | None = field(default=None, repr=False)  # the storage (functional)

    @property
    def location(self) -> SourceLocation:
        return self.inst.location

    @property
    def byte_lo(self) -> int:
        return self.lo * self.itemsize

    @property
    def byte_hi(self) -> int:
        return self.hi * self.itemsize

    def elements(self, lo: int, hi: int) -> np.ndarray:
        """The sorted distinct elements this access touches in [lo, hi)."""
        lo, hi = max(lo, self.lo), min(hi, self.hi)
        if self.dense:
            return np.arange(lo, max(lo, hi), dtype=np.int64)
        if self.explicit is not None:
            e = self.explicit
            return e[np.searchsorted(e, lo):np.searchsorted(e, hi)]
        idx = np.array([self.offset], dtype=np.int64)
        for stride, count in self.pattern:
            idx = (idx[:, None] + np.arange(count, dtype=np.int64) * stride).ravel()
        return np.unique(idx[(idx >= lo) & (idx < hi)])

    def byte_positions(self, lo: int, hi: int) -> np.ndarray:
        """The sorted bytes this access touches in the byte range [lo, hi)."""
        k = self.itemsize
        elems = self.elements(lo // k, -(-hi // k))
        pos = (elems[:, None] * k + np.arange(k, dtype=np.int64)).ravel()
        return pos[(pos >= lo) & (pos < hi)]

    def covers(self, byte: int) -> bool:
        return self.elements(byte // self.itemsize, byte // self.itemsize + 1).size > 0

    def describe(self) -> str:
        verb = "writes" if self.write else "reads"
        return f"core {self.core}'s {self.inst.opcode.value} at {self.location} {verb} it"


def access_of(core: int, inst: Instruction, t: NkiTensor, write: bool) -> Access | None:
    """The HBM access `inst` makes through view `t`, or None (on-chip, empty, or an
    indirect view in symbolic mode, whose run-time offsets are unknown)."""
    st = t.storage
    if st.buffer.on_chip or t.size == 0:
        return None
    base = dict(core=core, write=write, inst=inst, tensor=st.name, shape=st.shape,
                itemsize=st.dtype.itemsize, array=st.array)
    if isinstance(t, IndirectTensor):
        if st.array is None:
            return None
        addr, inside = t.addresses(True)  # out-of-bounds rows are the DMA's own error
        elems = np.unique(addr[inside])
        if not elems.size:
            return None
        return Access(**base, lo=int(elems[0]), hi=int(elems[-1]) + 1,  # type: ignore[arg-type]
                      explicit=elems)
    ap = t.access()
    lo, hi = _span(ap.offset_elems, ap.pattern)
    return Access(**base, lo=lo, hi=hi, offset=ap.offset_elems,  # type: ignore[arg-type]
                  pattern=ap.pattern, dense=_dense(ap.pattern))


def overlap(a: Access, b: Access) -> Bytes | None:
    """The bytes both accesses touch: a range when both are dense, else positions."""
    lo, hi = max(a.byte_lo, b.byte_lo), min(a.byte_hi, b.byte_hi)
    if lo >= hi:
        return None
    if a.dense and b.dense:
        return lo, hi
    if a.itemsize == b.itemsize:
        k = a.itemsize
        common = np.intersect1d(a.elements(lo // k, hi // k), b.elements(lo // k, hi // k),
                                assume_unique=True)
        pos = (common[:, None] * k + np.arange(k, dtype=np.int64)).ravel()
    else:  # a dtype view of the same storage: compare bytes
        pos = np.intersect1d(a.byte_positions(lo, hi), b.byte_positions(lo, hi),
                             assume_unique=True)
    return pos if pos.size else None


def _first(span: Bytes) -> int:
    return span[0] if isinstance(span, tuple) else int(span[0])


class _Log:
    """The accesses of one tensor in the current phase, with their bounds in arrays so
    that a new access finds its candidates without a Python loop over all of them."""

    def __init__(self) -> None:
        self.items: list[Access] = []
        self._lo = np.empty(16, dtype=np.int64)
        self._hi = np.empty(16, dtype=np.int64)
        self._core = np.empty(16, dtype=np.int64)
        self._write = np.empty(16, dtype=np.bool_)

    def add(self, a: Access) -> None:
        n = len(self.items)
        if n == len(self._lo):
            for name in ("_lo", "_hi", "_core", "_write"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.empty_like(old)]))
        self._lo[n], self._hi[n] = a.byte_lo, a.byte_hi
        self._core[n], self._write[n] = a.core, a.write
        self.items.append(a)

    def candidates(self, a: Access) -> list[Access]:
        """The other cores' accesses whose bounds meet a's and of which one writes,
        newest first (the newest conflict is the one that decides the value)."""
        n = len(self.items)
        hit = ((self._core[:n] != a.core) & (self._lo[:n] < a.byte_hi)
               & (self._hi[:n] > a.byte_lo))
        if not a.write:
            hit &= self._write[:n]
        return [self.items[i] for i in np.flatnonzero(hit)[::-1]]


@dataclass
class _Written:
    """One core's writes of one tensor in the current phase, each with the bytes it stored,
    and the byte range they span (only where two cores' ranges meet is anything compared)."""

    writes: list[tuple[Access, np.ndarray | slice, np.ndarray]] = field(default_factory=list)
    lo: int = 2**62
    hi: int = 0

    def add(self, a: Access) -> None:
        pos = _positions(a)
        self.writes.append((a, pos, _raw(a)[pos].copy()))
        self.lo, self.hi = min(self.lo, a.byte_lo), max(self.hi, a.byte_hi)

    def last_values(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, written, index of the write that stored it) of bytes [lo, hi), each
        byte as this core's last write of it left it."""
        values = np.zeros(hi - lo, np.uint8)
        written = np.zeros(hi - lo, np.bool_)
        owner = np.zeros(hi - lo, np.int32)
        for k, (_, pos, stored) in enumerate(self.writes):
            if isinstance(pos, slice):
                a, b = max(pos.start, lo), min(pos.stop, hi)
                if a >= b:
                    continue
                where: slice | np.ndarray = slice(a - lo, b - lo)
                part = stored[a - pos.start:b - pos.start]
            else:
                keep = (pos >= lo) & (pos < hi)
                where, part = pos[keep] - lo, stored[keep]
            values[where], written[where], owner[where] = part, True, k
        return values, written, owner


def _positions(a: Access) -> np.ndarray | slice:
    return slice(a.byte_lo, a.byte_hi) if a.dense else a.byte_positions(a.byte_lo, a.byte_hi)


def _raw(a: Access) -> np.ndarray:
    return a.array.view(np.uint8)  # type: ignore[union-attr]


def _element(a: Access, byte: int) -> str:
    idx = np.unravel_index(byte // a.itemsize, a.shape)
    return f"{a.tensor}[{', '.join(str(int(i)) for i in idx)}]"


def race_error(new: Access, old: Access, byte: int, why: str) -> CoreRaceError:
    return CoreRaceError(
        f"LNC race on {_element(new, byte)}: {new.describe()} and {old.describe()}, with no "
        f"nisa.core_barrier between them, so {why}. Separate the two with a core_barrier or "
        "give each core elements of its own", str(new.location))


class RaceTracker:
    """Collects the phase's shared-HBM accesses of every core and reports conflicts."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._unsettled: dict[int, list[Access]] = {}  # writes that have not run yet
        self._written: dict[str, dict[int, _Written]] = {}  # tensor -> core -> writes

    def new_phase(self) -> None:
        """A core_barrier released every core: the phase's last writes are compared, and
        all earlier accesses are ordered before all later ones."""
        self.finish()
        self._logs.clear()
        self._written.clear()

    def access(self, core: int, inst: Instruction, reads: tuple[object, ...],
               writes: tuple[object, ...]) -> None:
        """Check one instruction's HBM accesses (before it runs) against the other
        cores' accesses of this phase, then log them."""
        self.settle(core)
        if inst.opcode is Opcode.CORE_BARRIER:
            return  # its access to `data` is the synchronisation itself
        new = [a for views, write in ((reads, False), (writes, True)) for t in views
               if isinstance(t, NkiTensor)
               and (a := access_of(core, inst, t, write)) is not None]
        for a in new:
            self._check(a)
        for a in new:
            self._logs.setdefault(a.tensor, _Log()).add(a)
            if a.write and a.array is not None:
                self._unsettled.setdefault(core, []).append(a)

    def _check(self, a: Access) -> None:
        """A read and a write of a common byte by different cores race at once; two writes
        are decided by their last values when the phase ends (finish)."""
        log = self._logs.get(a.tensor)
        if log is None:
            return
        for old in log.candidates(a):
            if a.write and old.write:
                continue
            span = overlap(a, old)
            if span is not None:
                why = "the read sees the value from before or after the write"
                raise race_error(a, old, _first(span), why)

    def settle(self, core: int) -> None:
        """Record the values the core's writes stored (they have run by now; cores switch
        only at barriers and sendrecvs, so nothing else wrote in between)."""
        for a in self._unsettled.pop(core, ()):
            self._written.setdefault(a.tensor, {}).setdefault(core, _Written()).add(a)

    def finish(self) -> None:
        """Compare, per byte two cores both wrote this phase, each core's last value."""
        for by_core in self._written.values():
            cores = sorted(by_core)
            for i, core in enumerate(cores):
                for other in cores[i + 1:]:
                    mine, theirs = by_core[core], by_core[other]
                    lo, hi = max(mine.lo, theirs.lo), min(mine.hi, theirs.hi)
                    if lo >= hi:
                        continue
                    v0, w0, o0 = mine.last_values(lo, hi)
                    v1, w1, o1 = theirs.last_values(lo, hi)
                    clash = np.flatnonzero(w0 & w1 & (v0 != v1))
                    if clash.size:
                        at = int(clash[0])
                        raise race_error(theirs.writes[o1[at]][0], mine.writes[o0[at]][0],
                                         lo + at, "of the two different values stored, the "
                                         "one that lands last stays")
