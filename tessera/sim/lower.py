"""The instruction stream as flat arrays: what the allocator and dependency analysis read.

`lower` walks the stream once and interns what the stream-sized loops need: a tensor id
per name (in order of first access), a shape id per instruction (what its cost depends
on), and per access pattern its tensor, direction and the address box it touches.

A box is (row lo, row hi, byte lo, byte hi): on-chip, partitions x bytes within a
partition; in HBM, rows of the tensor's trailing dimensions x bytes within a row, so column
slices of different rows do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tessera.nki.stream import Instruction, Opcode, SourceLocation, TensorInfo
from tessera.sim._jit import jit

FLAT = 1 << 62  # row pitch of an HBM tensor whose shape is unknown: one flat row


@dataclass(frozen=True)
class StreamArrays:
    """Access patterns of a stream as arrays (`np.int64`), indexed by stream position.

    The access patterns of instruction `i` are `ap_ptr[i]:ap_ptr[i + 1]`, reads first.
    Instructions that differ only in tensor names and offsets share a *shape*: `shape[i]`
    indexes `shapes`, the first instruction of each shape (what costs depend on).
    """

    n: int  # instructions
    names: tuple[str, ...]  # tensor id -> name
    infos: dict[str, TensorInfo]  # every tensor the trace created, by name
    core: np.ndarray  # [n] core of each instruction
    barrier: np.ndarray  # [n] 1 for core_barrier
    shape: np.ndarray  # [n] index into `shapes`
    shapes: tuple[Instruction, ...]
    location: np.ndarray  # [n] index into `locations` (the kernel line that issued it)
    locations: tuple[SourceLocation, ...]
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


def hbm_pitches(tensors: Iterable[TensorInfo]) -> dict[str, int]:
    """Row pitch (elements) of every HBM tensor: the product of its trailing dimensions."""
    return {t.name: max(1, math.prod(t.shape[1:])) for t in tensors if not t.buffer.on_chip}


@jit
def _boxes(view, offset, pitch, v_pe, v_isz, v_len, v_pattern):  # pragma: no cover
    """The box of every access: view `view[a]` (a pattern) at `offset[a]` elements, with HBM
    rows of `pitch[a]` elements (see the module docstring)."""
    m = view.shape[0]
    out = np.zeros((m, 4), np.int64)
    for a in range(m):
        v = view[a]
        pe, isz, n = v_pe[v], v_isz[v], v_len[v]
        off = offset[a]
        empty = False
        for d in range(n):
            if v_pattern[v, d, 1] == 0:
                empty = True
        if empty:
            continue
        if pe:  # partitions x bytes within a partition; dimension 0 walks partitions
            lo = hi = off % pe
            for d in range(1, n):
                reach = v_pattern[v, d, 0] * (v_pattern[v, d, 1] - 1)
                if reach >= 0:
                    hi += reach
                else:
                    lo += reach
            p0 = off // pe
            count = v_pattern[v, 0, 1] if n else 1
            step = max(1, v_pattern[v, 0, 0] // pe) if n else 1
            out[a, 0] = p0
            out[a, 1] = p0 + (count - 1) * step + 1
            out[a, 2] = lo * isz
            out[a, 3] = (hi + 1) * isz
            continue
        # HBM: rows of `row` elements x bytes within a row
        row = pitch[a]
        lo = hi = 0  # reach of the whole pattern
        ilo = ihi = 0  # reach of the inner dimensions
        for d in range(n):
            reach = v_pattern[v, d, 0] * (v_pattern[v, d, 1] - 1)
            if reach >= 0:
                hi += reach
                if d:
                    ihi += reach
            else:
                lo += reach
                if d:
                    ilo += reach
        first, last = off + lo, off + hi
        outer_stride = v_pattern[v, 0, 0] if n else 0
        outer_count = v_pattern[v, 0, 1] if n else 1
        col = off % row
        if first // row == last // row:  # inside one row
            out[a, 0] = first // row
            out[a, 1] = first // row + 1
            out[a, 2] = (first % row) * isz
            out[a, 3] = (last % row + 1) * isz
        elif (outer_stride > 0 and outer_stride % row == 0 and 0 <= col + ilo
              and col + ihi < row):  # the outer dimension steps whole rows
            r0 = off // row
            out[a, 0] = r0
            out[a, 1] = r0 + (outer_count - 1) * outer_stride // row + 1
            out[a, 2] = (col + ilo) * isz
            out[a, 3] = (col + ihi + 1) * isz
        else:  # wraps rows otherwise: whole rows
            out[a, 0] = first // row
            out[a, 1] = last // row + 1
            out[a, 2] = 0
            out[a, 3] = row * isz
    return out


def lower(instructions: Sequence[Instruction],
          tensors: Iterable[TensorInfo] = ()) -> StreamArrays:
    """Intern tensors, views and instruction shapes of the stream; box every access.

    Written as one flat loop: it is the part of scheduling that stays in Python. A *view*
    is what an access pattern is without its tensor and offset (pattern, partition row,
    item size, dtype, buffer); boxes are computed from views and offsets over arrays.
    """
    infos = {t.name: t for t in tensors}
    pitch = hbm_pitches(infos.values())
    ids: dict[str, int] = {}
    views: dict[tuple, int] = {}
    shape_ids: dict[tuple, int] = {}
    shapes: list[Instruction] = []
    tid: list[int] = []
    vid: list[int] = []
    offsets: list[int] = []
    shape: list[int] = []
    cores: list[int] = []
    loc_ids: dict[int, int] = {}  # instructions of one kernel line share its location record
    locations: list[SourceLocation] = []
    location: list[int] = []
    ids_get, views_get, shapes_get = ids.get, views.get, shape_ids.get
    add_tensor, add_view, add_offset = tid.append, vid.append, offsets.append
    for inst in instructions:
        reads = inst.reads
        m0 = len(vid)
        for aps in (reads, inst.writes):
            for ap in aps:
                name = ap.tensor
                t = ids_get(name)
                if t is None:
                    t = ids[name] = len(ids)
                view = (ap.pattern, ap.partition_elems, ap.itemsize, ap.dtype, id(ap.buffer))
                v = views_get(view)
                if v is None:
                    v = views[view] = len(views)
                add_tensor(t)
                add_view(v)
                add_offset(ap.offset_elems)
        sig = (id(inst.opcode), id(inst.engine), inst.partitions, inst.free_elements,
               inst.flags, len(reads), *vid[m0:])
        k = shapes_get(sig)
        if k is None:
            k = shape_ids[sig] = len(shapes)
            shapes.append(inst)
        shape.append(k)
        cores.append(inst.core)
        loc = loc_ids.get(id(inst.location))
        if loc is None:
            loc = loc_ids[id(inst.location)] = len(locations)
            locations.append(inst.location)
        location.append(loc)
    n = len(shape)
    shape_of = np.array(shape, dtype=np.int64)
    n_reads = np.array([len(i.reads) for i in shapes], dtype=np.int64)
    count = n_reads + np.array([len(i.writes) for i in shapes], dtype=np.int64)
    is_barrier = np.array([i.opcode is Opcode.CORE_BARRIER for i in shapes], dtype=np.int64)
    count_of = count[shape_of] if n else shape_of
    ap_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count_of, out=ap_ptr[1:])
    m = int(ap_ptr[-1])
    # the k-th pattern of an instruction is a write once k reaches its read count
    local = np.arange(m, dtype=np.int64) - np.repeat(ap_ptr[:-1], count_of)
    ap_write = (local >= np.repeat(n_reads[shape_of] if n else shape_of, count_of)
                ).astype(np.int64)
    view_of = np.array(vid, dtype=np.int64)
    ap_tensor = np.array(tid, dtype=np.int64)
    tensor_pitch = np.array([pitch.get(name, FLAT) for name in ids], dtype=np.int64)
    width = max((len(v[0]) for v in views), default=0)
    v_pattern = np.zeros((len(views), max(width, 1), 2), dtype=np.int64)
    for v, view in enumerate(views):
        if view[0]:
            v_pattern[v, :len(view[0])] = view[0]
    v_pe = np.array([v[1] for v in views], dtype=np.int64)
    boxes = _boxes(view_of, np.array(offsets, dtype=np.int64),
                   tensor_pitch[ap_tensor] if m else ap_tensor, v_pe,
                   np.array([v[2] for v in views], dtype=np.int64),
                   np.array([len(v[0]) for v in views], dtype=np.int64), v_pattern)
    return StreamArrays(
        n=n, names=tuple(ids), infos=infos, core=np.array(cores, dtype=np.int64),
        barrier=is_barrier[shape_of] if n else shape_of, shape=shape_of, shapes=tuple(shapes),
        location=np.array(location, dtype=np.int64), locations=tuple(locations),
        ap_ptr=ap_ptr, ap_tensor=ap_tensor, ap_write=ap_write,
        ap_onchip=(v_pe[view_of] != 0).astype(np.int64) if m else ap_tensor,
        ap_box=boxes)
