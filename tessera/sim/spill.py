"""Allocation as the kernel's compile configuration asks, spilling SBUF to HBM when needed.

What the NKI docs describe ("nki.compiler.Allocation", "nki.compiler.AllocationMode",
"Deep dive: NKI compile configuration", "nki.compiler.CompileConfig.nki_alloc_fallback"):

* `Allocation.COLORING` (the default): neuronx-cc allocates after tracing. When the live
  tiles do not fit it spills: a tile is stored to HBM and loaded back before its next
  use (Neuron profiles count the bytes as spill saves and reloads). Modelled here:
  next-fit placement (`tessera.sim.allocation`); if it fails, offline placement, largest
  tile first with every live range known (a colouring allocator sees them all, so
  fragmentation that next fit causes does not stop it); if that fails too, eviction:
  the live SBUF tile used again last (Belady) that the current instruction does not
  access is stored before that instruction and reloaded before its next access, as a
  new tensor wherever there is room.
* `Allocation.LINEAR`: NKI allocates by linear scan before the rest of compilation,
  `AllocationMode.RING` by next fit and `FAST` / `MAX_REUSE` by best fit. Out of memory,
  it fails with the largest live tensors named (`SbufCapacityError`) when
  `nki_alloc_fallback=False`; by default it falls back to the COLORING flow (noted).
* What cannot be spilled fails in every mode: a tile larger than a partition, the
  operands of one instruction that do not fit together, and PSUM (accumulation banks).

Allocation comes first and scheduling after, on program-order live ranges: the order the
deep dive gives for both flows (NKI allocation "before the rest of compilation"; neuronx-cc
allocating then ordering). The scheduler's reordering therefore never lengthens a live
range: it only meets the WAR edges the placement left.

The spill DMAs are inserted into the stream as `dma_copy` instructions (SBUF to a private
HBM scratch tensor and back), so they queue, take DMA engines and HBM bandwidth, and carry
dependencies like any other transfer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tessera.hw import ChipSpec
from tessera.nki.attrs import DmaCopyAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.compiler import Allocation, AllocationMode, CompileConfig
from tessera.nki.scheduling import ScheduleEdge
from tessera.nki.stream import (
    AccessPattern,
    Engine,
    Instruction,
    Opcode,
    SourceLocation,
    TensorInfo,
)
from tessera.sim.allocation import AddressPlan, allocate
from tessera.sim.errors import CapacityError, SbufCapacityError
from tessera.sim.flat import FlatStream, flatten

_MAX_ROUNDS = 8  # spill rounds: the rewritten stream is placed again until nothing spills


@dataclass(frozen=True)
class Spill:
    """One SBUF tile stored to HBM and loaded back."""

    tensor: str  # the tile evicted (its name when stored)
    shape: tuple[int, ...]
    dtype: str
    tile_bytes: int  # moved each way (the whole tile)
    created_at: SourceLocation  # where the kernel created the tile
    needed_at: SourceLocation  # the instruction whose operand needed the room
    reloaded_for: SourceLocation  # the instruction before which it comes back
    store_position: int  # the spill DMAs' positions in the scheduled stream
    reload_position: int


@dataclass(frozen=True)
class KernelAllocation:
    """The stream as scheduled (spill DMAs inserted), its placement, spills and notes."""

    instructions: tuple[Instruction, ...]
    tensors: tuple[TensorInfo, ...]
    edges: tuple[ScheduleEdge, ...]
    flat: FlatStream
    plan: AddressPlan
    spills: tuple[Spill, ...]
    notes: tuple[str, ...]

    @property
    def spill_bytes(self) -> int:
        """Bytes stored to HBM by spills (as many are loaded back)."""
        return sum(s.tile_bytes for s in self.spills)


def allocate_kernel(instructions: tuple[Instruction, ...], tensors: tuple[TensorInfo, ...],
                    edges: tuple[ScheduleEdge, ...], chip: ChipSpec, alignment_bytes: int,
                    config: CompileConfig | None = None) -> KernelAllocation:
    """Place the tensors of a traced stream as `config` says (see the module docstring)."""
    config = config or CompileConfig()
    flat = flatten(instructions, tensors)
    notes: tuple[str, ...] = ()
    if config.allocation is Allocation.LINEAR:
        best = config.allocation_mode is not AllocationMode.RING
        try:
            plan = allocate(flat, chip, alignment_bytes, best_fit=best)
            return KernelAllocation(instructions, tensors, edges, flat, plan, (), ())
        except CapacityError as err:
            if not config.nki_alloc_fallback or not isinstance(err, SbufCapacityError):
                raise
            notes = ("LINEAR allocation ran out of SBUF; nki_alloc_fallback: neuronx-cc's "
                     "allocation (with spilling) was used",)
    try:
        plan = allocate(flat, chip, alignment_bytes)
        return KernelAllocation(instructions, tensors, edges, flat, plan, (), notes)
    except SbufCapacityError:
        pass
    try:
        plan = allocate(flat, chip, alignment_bytes, offline=True)
        notes += ("next-fit placement left SBUF too fragmented; placed with every live range "
                  "known (largest first)",)
        return KernelAllocation(instructions, tensors, edges, flat, plan, (), notes)
    except SbufCapacityError:
        pass
    spills: list[Spill] = []
    for _ in range(_MAX_ROUNDS):
        plan = allocate(flat, chip, alignment_bytes, spill=True)
        if not len(plan.spill_tensor):
            notes += (f"SBUF spilled: {len(spills)} tile(s), {sum(s.tile_bytes for s in spills)} B "
                      "stored and reloaded",)
            return KernelAllocation(instructions, tensors, edges, flat, plan, tuple(spills),
                                    notes)
        instructions, tensors, edges, spills = _rewrite(flat, instructions, tensors, edges,
                                                        plan, spills)
        flat = flatten(instructions, tensors)
    raise SbufCapacityError(f"SBUF spilling did not converge in {_MAX_ROUNDS} rounds "
                            f"({len(spills)} spills); use smaller tiles")


def _whole(info: TensorInfo) -> AccessPattern:
    """The access pattern of a whole tensor."""
    if info.buffer.on_chip:
        row = math.prod(info.shape[1:])
        return AccessPattern(info.name, info.buffer, info.dtype, info.itemsize, 0,
                             ((row, info.shape[0]), (1, row)), row)
    strides, step = [], 1
    for d in reversed(info.shape):
        strides.append(step)
        step *= d
    pattern = tuple(zip(reversed(strides), info.shape, strict=True))
    return AccessPattern(info.name, info.buffer, info.dtype, info.itemsize, 0, pattern, 0)


def _copy(src: TensorInfo, dst: TensorInfo, before: Instruction) -> Instruction:
    """A compiler-inserted dma_copy of a whole tile, issued just before `before`."""
    onchip = src if src.buffer.on_chip else dst
    return Instruction(before.index, before.core, Engine.DMA, Opcode.DMA_COPY,
                       (_whole(src),), (_whole(dst),), onchip.shape[0],
                       math.prod(onchip.shape[1:]), DmaCopyAttrs("unknown"),
                       before.location, "spill")


def _rename(inst: Instruction, names: dict[str, str]) -> Instruction:
    def swap(aps: tuple[AccessPattern, ...]) -> tuple[AccessPattern, ...]:
        return tuple(dataclasses.replace(ap, tensor=names[ap.tensor])
                     if ap.tensor in names else ap for ap in aps)

    return dataclasses.replace(inst, reads=swap(inst.reads), writes=swap(inst.writes))


def _rewrite(flat: FlatStream, instructions: tuple[Instruction, ...],
             tensors: tuple[TensorInfo, ...], edges: tuple[ScheduleEdge, ...],
             plan: AddressPlan, spills: list[Spill]):
    """Insert a store before each eviction and a reload before the evicted tile's next
    access, which from there on reads a new tensor; remap the kernel's edges."""
    infos = {t.name: t for t in tensors}
    stores: dict[int, list[int]] = {}
    reloads: dict[int, list[int]] = {}
    order = sorted(range(len(plan.spill_tensor)), key=lambda k: int(plan.spill_at[k]))
    for k in order:
        stores.setdefault(int(plan.spill_at[k]), []).append(k)
        reloads.setdefault(int(plan.spill_back[k]), []).append(k)
    current: dict[str, str] = {}  # original name -> the name its accesses use now
    pending: dict[int, tuple[TensorInfo, TensorInfo, TensorInfo, int]] = {}
    new_tensors = list(tensors)
    out: list[Instruction] = []
    moved = [0] * (len(instructions) + 1)
    taken = len(spills)
    records: dict[int, dict] = {}
    for pos, inst in enumerate(instructions):
        for k in stores.get(pos, ()):
            original = flat.names[int(plan.spill_tensor[k])]
            tile = infos[current.get(original, original)]
            n = taken + k
            slot = TensorInfo(f"spill{n}.{tile.name}", Buffer.PRIVATE_HBM, tile.shape,
                              tile.dtype, tile.itemsize, tile.core, tile.location)
            back = dataclasses.replace(tile, name=f"{original}~{n}")
            new_tensors += [slot, back]
            records[k] = {"tensor": tile.name, "store": len(out), "tile": tile,
                          "needed": inst.location}
            out.append(_copy(tile, slot, inst))
            pending[k] = (tile, slot, back, n)
        for k in reloads.get(pos, ()):
            tile, slot, back, _ = pending.pop(k)
            original = flat.names[int(plan.spill_tensor[k])]
            current[original] = back.name
            infos[back.name] = back
            records[k].update(reload=len(out), reloaded_for=inst.location)
            out.append(_copy(slot, back, inst))
        moved[pos] = len(out)
        out.append(_rename(inst, {o: c for o, c in current.items()})
                   if current else inst)
    for k in sorted(records, key=lambda k: records[k]["store"]):
        r = records[k]
        tile = r["tile"]
        spills.append(Spill(r["tensor"], tile.shape, tile.dtype, tile.num_bytes,
                            tile.location, r["needed"], r["reloaded_for"], r["store"],
                            r["reload"]))
    # positions of earlier spills shift too
    spills[:taken] = [dataclasses.replace(s, store_position=moved[s.store_position],
                                          reload_position=moved[s.reload_position])
                      for s in spills[:taken]]
    edges = tuple(dataclasses.replace(e, consumer=moved[e.consumer], producer=moved[e.producer])
                  for e in edges)
    return tuple(out), tuple(new_tensors), edges, spills


