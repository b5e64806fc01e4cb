"""The instruction stream as one struct of arrays: what every later stage of `sim` reads.

`flatten` walks the stream once (once per profile) and interns what the stream-sized loops
need: a tensor id per name (in order of first access), a shape id per instruction (what its
cost depends on), a location id (the kernel line), and per access pattern its tensor,
direction and the address box it touches.

A box is (row lo, row hi, byte lo, byte hi): on-chip, partitions x bytes within a
partition; in HBM, rows of the tensor's trailing dimensions x bytes within a row, so column
slices of different rows do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tessera.nki.stream import Instruction, Opcode, SourceLocation, TensorInfo
from tessera.sim.arrays import StreamArrays, ViewTable

FLAT = 1 << 62  # row pitch of an HBM tensor whose shape is unknown: one flat row


@dataclass(frozen=True)
class FlatStream:
    """A lowered stream: `arrays` (a `StreamArrays`, indexed by stream position) and what
    only Python reads.

    Instructions that differ only in tensor names and offsets share a *shape*: `shapes[k]`
    is the first instruction of shape k, which is all that costs depend on.
    """

    arrays: StreamArrays
    names: tuple[str, ...]  # tensor id -> name
    infos: dict[str, TensorInfo]  # every tensor the trace created, by name
    shapes: tuple[Instruction, ...]
    locations: tuple[SourceLocation, ...]  # location id -> the kernel line
    instructions: Sequence[Instruction] = field(repr=False)  # the stream itself, for views

    @property
    def n(self) -> int:
        """Instructions in the stream."""
        return len(self.arrays.core)

    @property
    def tensors(self) -> int:
        """Distinct tensors the stream accesses."""
        return len(self.names)

    @property
    def cores(self) -> int:
        """Distinct cores the stream runs on."""
        return len(np.unique(self.arrays.core)) if self.n else 1

    def opcode_at(self, pos: int) -> Opcode:
        """The opcode of stream position `pos`."""
        return self.shapes[int(self.arrays.shape[pos])].opcode

    def location_at(self, pos: int) -> SourceLocation:
        """The kernel line that issued stream position `pos`."""
        return self.locations[int(self.arrays.location[pos])]


def hbm_pitches(tensors: Iterable[TensorInfo]) -> dict[str, int]:
    """Row pitch (elements) of every HBM tensor: the product of its trailing dimensions."""
    return {t.name: max(1, math.prod(t.shape[1:])) for t in tensors if not t.buffer.on_chip}


def flatten(instructions: Sequence[Instruction],
            tensors: Iterable[TensorInfo] = ()) -> FlatStream:
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
               inst.attrs, len(reads), *vid[m0:])
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
    table = ViewTable(np.array([v[1] for v in views], dtype=np.int64),
                      np.array([v[2] for v in views], dtype=np.int64),
                      np.array([len(v[0]) for v in views], dtype=np.int64), v_pattern)
    from tessera.sim import _loops  # numba loads with the first stream that is scheduled

    boxes = _loops.boxes.boxes(view_of, np.array(offsets, dtype=np.int64),
                               tensor_pitch[ap_tensor] if m else ap_tensor, table)
    arrays = StreamArrays(
        core=np.array(cores, dtype=np.int64), barrier=is_barrier[shape_of] if n else shape_of,
        shape=shape_of, location=np.array(location, dtype=np.int64), ap_ptr=ap_ptr,
        ap_tensor=ap_tensor, ap_write=ap_write,
        ap_onchip=(table.partition_elems[view_of] != 0).astype(np.int64) if m else ap_tensor,
        ap_box=boxes)
    return FlatStream(arrays, tuple(ids), infos, tuple(shapes), tuple(locations), instructions)
