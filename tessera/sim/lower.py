"""The instruction stream as flat arrays: what the allocator and dependency analysis read.

`lower` walks the stream once and interns what the stream-sized loops need: a tensor id
per name (in order of first access), and per access pattern its tensor, direction and the
address box it touches. Boxes are computed once per distinct pattern: kernels repeat a
few view shapes thousands of times.

A box is (row lo, row hi, byte lo, byte hi): on-chip, partitions x bytes within a
partition; in HBM, rows of the tensor's trailing dimensions x bytes within a row, so column
slices of different rows do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tessera.nki.stream import AccessPattern, Instruction, Opcode, TensorInfo

Box = tuple[int, int, int, int]
FLAT = 1 << 62  # row pitch of an HBM tensor whose shape is unknown: one flat row


@dataclass(frozen=True)
class StreamArrays:
    """Access patterns of a stream as arrays (`np.int64`), indexed by stream position.

    The access patterns of instruction `i` are `ap_ptr[i]:ap_ptr[i + 1]`, reads first.
    """

    n: int  # instructions
    names: tuple[str, ...]  # tensor id -> name
    infos: dict[str, TensorInfo]  # every tensor the trace created, by name
    core: np.ndarray  # [n] core of each instruction
    barrier: np.ndarray  # [n] 1 for core_barrier
    ap_ptr: np.ndarray  # [n + 1]
    ap_tensor: np.ndarray  # [m] tensor id
    ap_write: np.ndarray  # [m] 1 for a write
    ap_onchip: np.ndarray  # [m] 1 for SBUF/PSUM (partitioned) patterns
    ap_box: np.ndarray  # [m, 4] the address box

    @property
    def tensors(self) -> int:
        return len(self.names)

    @property
    def cores(self) -> int:
        """Distinct cores the stream runs on."""
        return len(np.unique(self.core)) if self.n else 1


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


def region(ap: AccessPattern, pitch: int = FLAT) -> Box:
    """The address box an access touches (see the module docstring).

    HBM: a pattern inside one row is a byte range of that row; a pattern whose outer
    stride steps whole rows covers its column range of each row; anything that wraps rows
    otherwise covers whole rows.
    """
    isz = ap.itemsize
    if ap.num_elements == 0:
        return (0, 0, 0, 0)
    if ap.partition_elems:
        lo, hi = ap.free_byte_range
        p0 = ap.partition_start
        return (p0, p0 + (ap.partition_count - 1) * ap.partition_step + 1, lo, hi)
    off, pattern = ap.offset_elems, ap.pattern
    lo, hi = _span(pattern)
    first, last = off + lo, off + hi
    outer = pattern[0] if pattern else (0, 1)
    ilo, ihi = _span(pattern[1:])
    col = off % pitch
    if first // pitch == last // pitch:  # inside one row
        return (first // pitch, first // pitch + 1, (first % pitch) * isz,
                (last % pitch + 1) * isz)
    if outer[0] > 0 and outer[0] % pitch == 0 and 0 <= col + ilo and col + ihi < pitch:
        r0 = off // pitch
        return (r0, r0 + (outer[1] - 1) * outer[0] // pitch + 1, (col + ilo) * isz,
                (col + ihi + 1) * isz)
    return (first // pitch, last // pitch + 1, 0, pitch * isz)


def hbm_pitches(tensors: Iterable[TensorInfo]) -> dict[str, int]:
    """Row pitch (elements) of every HBM tensor: the product of its trailing dimensions."""
    return {t.name: max(1, math.prod(t.shape[1:])) for t in tensors if not t.buffer.on_chip}


def lower(instructions: Sequence[Instruction],
          tensors: Iterable[TensorInfo] = ()) -> StreamArrays:
    """Intern tensors and boxes of every access pattern of the stream.

    Written as one flat loop: it is the part of scheduling that stays in Python.
    """
    infos = {t.name: t for t in tensors}
    pitch = hbm_pitches(infos.values())
    ids: dict[str, int] = {}
    box_ids: dict[tuple, int] = {}
    boxes: list[tuple[int, int, int, int, int]] = []
    tid: list[int] = []
    bid: list[int] = []
    counts: list[int] = []
    n_reads: list[int] = []
    cores: list[int] = []
    barrier: list[int] = []
    barrier_op = Opcode.CORE_BARRIER
    for inst in instructions:
        reads, writes = inst.reads, inst.writes
        n_reads.append(len(reads))
        counts.append(len(reads) + len(writes))
        cores.append(inst.core)
        barrier.append(inst.opcode is barrier_op)
        for aps in (reads, writes):
            for ap in aps:
                name = ap.tensor
                t = ids.get(name)
                if t is None:
                    t = ids[name] = len(ids)
                pe = ap.partition_elems
                key = (ap.offset_elems, ap.pattern, pe, ap.itemsize,
                       FLAT if pe else pitch.get(name, FLAT))
                b = box_ids.get(key)
                if b is None:
                    b = box_ids[key] = len(boxes)
                    boxes.append((*region(ap, key[4]), 1 if pe else 0))
                tid.append(t)
                bid.append(b)
    n = len(counts)
    count = np.array(counts, dtype=np.int64)
    ap_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count, out=ap_ptr[1:])
    m = int(ap_ptr[-1])
    # the k-th pattern of an instruction is a write once k reaches its read count
    local = np.arange(m, dtype=np.int64) - np.repeat(ap_ptr[:-1], count)
    ap_write = (local >= np.repeat(np.array(n_reads, dtype=np.int64), count)).astype(np.int64)
    table = np.array(boxes, dtype=np.int64).reshape(-1, 5)
    rows = table[np.array(bid, dtype=np.int64)] if m else np.zeros((0, 5), dtype=np.int64)
    return StreamArrays(
        n=n, names=tuple(ids), infos=infos, core=np.array(cores, dtype=np.int64),
        barrier=np.array(barrier, dtype=np.int64), ap_ptr=ap_ptr,
        ap_tensor=np.array(tid, dtype=np.int64), ap_write=ap_write,
        ap_onchip=np.ascontiguousarray(rows[:, 4]), ap_box=np.ascontiguousarray(rows[:, :4]))
