"""`Profile`: what a kernel's timeline says, and the public entry points.

    >>> from tessera import sim
    >>> p = sim.profile(kernel, nki.TensorSpec((128, 512), nl.bfloat16), symbolic=True)
    >>> p.total_s, p.bound, p.flops_utilisation

`profile` traces a kernel with `nki.trace` and schedules it; `schedule` does the second half
for an existing `TraceResult`. Hardware what-ifs: `overrides={"core.sbuf.bytes_per_partition":
262144}` (applied with `tessera.hw.with_overrides`); keys starting with `calibration.`
replace model constants (`{"calibration.cross_engine_sync_s": 0.0}`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from tessera import hw
from tessera import nki as _nki
from tessera.hw import ChipSpec, MemoryKind, Precision
from tessera.nki.compiler import SchedulingHeuristic
from tessera.nki.launch import TraceResult
from tessera.nki.stream import Engine, Opcode, SourceLocation
from tessera.sim.allocation import AddressPlan
from tessera.sim.cost_rules import matmul_flops, precision_of
from tessera.sim.dependencies import dependencies, kernel_edges
from tessera.sim.errors import ScheduleError
from tessera.sim.facts import ENGINE_ORDER, instruction_facts
from tessera.sim.spill import Spill, allocate_kernel
from tessera.sim.timeline import Timeline, build_timeline
from tessera.sim.timing_calibration import Calibration, calibration_for

_TOP = 10
_CALIBRATION_PREFIX = "calibration."


# What can bound a kernel: one of the core's engines (the DMA engines as one), or the core's
# share of HBM bandwidth (`MemoryKind.HBM`).
Resource = Engine | MemoryKind


def as_resource(value: Resource | str) -> Resource:
    """A `Resource` from itself or its name ("tensor", "dma", "hbm", ...)."""
    if isinstance(value, Engine | MemoryKind):
        return value
    if value == MemoryKind.HBM.value:
        return MemoryKind.HBM
    try:
        return Engine(value)
    except ValueError:
        names = [e.value for e in Engine] + [MemoryKind.HBM.value]
        raise ValueError(f"{value!r} is not a resource; resources: {', '.join(names)}"
                         ) from None


@dataclass(frozen=True)
class EngineUsage:
    """Busy time of one engine kind summed over cores and units (a DMA's 16 engines);
    utilisation = busy / (wall time x units)."""

    resource: Resource
    busy_s: float
    utilisation: float
    instructions: int
    units: int = 1  # engines of this kind over all cores: busy_s / units is wall-comparable
    # streaming engines (Vector, Scalar, GpSimd): elements processed (partitions x N summed
    # over instructions) and the engines' peak element rate over all cores
    elements: int = 0
    peak_elements_per_s: float = 0.0

    @property
    def busy_per_unit_s(self) -> float:
        """Busy time of one unit: comparable with the kernel's wall time."""
        return self.busy_s / self.units if self.units else 0.0

@dataclass(frozen=True)
class HotSpot:
    """One kernel line's instructions of one opcode, with their summed engine time."""

    opcode: Opcode
    location: SourceLocation
    engine: Engine
    count: int
    total_s: float


@dataclass(frozen=True)
class CriticalPath:
    """The chain of instructions that ends last, each waiting on the one before it."""

    length_s: float
    instructions: int
    by_resource: tuple[tuple[Resource, float], ...]  # time on the chain per engine
    waiting_s: float  # sync/issue latencies between links of the chain
    dominant: Resource


@dataclass(frozen=True)
class Profile:
    """Predicted time and resource use of one kernel launch."""

    chip: str
    cores: int
    instructions: int
    total_s: float
    engines: tuple[EngineUsage, ...]
    flops: float
    hbm_read_bytes: int
    hbm_write_bytes: int
    achieved_flops_per_s: float
    peak_flops_per_s: float
    flops_utilisation: float
    achieved_hbm_bytes_per_s: float
    peak_hbm_bytes_per_s: float
    hbm_utilisation: float
    arithmetic_intensity: float  # FLOP per HBM byte
    ridge_point: float  # FLOP per byte where the roofline turns
    bound: Resource  # the resource with the highest busy fraction
    critical_path: CriticalPath
    top_instructions: tuple[HotSpot, ...]
    peak_sbuf_bytes: int  # per partition
    peak_psum_bytes: int  # per partition
    timeline: Timeline = field(repr=False, compare=False)
    allocation: AddressPlan = field(repr=False, compare=False)
    # the hardware the kernel was scheduled on, after `overrides`, and the overrides given
    # (hardware paths and calibration.<constant> keys), so views need not re-derive them
    chip_spec: ChipSpec | None = field(default=None, repr=False, compare=False)
    overrides: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    # what the profile models only in part: compile options it does not model, ...
    notes: tuple[str, ...] = ()
    # SBUF tiles the allocation stored to HBM and loaded back (`tessera.sim.spill`)
    spills: tuple[Spill, ...] = ()

    @property
    def spill_bytes(self) -> int:
        """Bytes the spills stored to HBM (as many were reloaded)."""
        return sum(s.tile_bytes for s in self.spills)

    @property
    def heuristic(self) -> SchedulingHeuristic:
        """How each queue chose among its ready instructions."""
        return self.timeline.heuristic

    def usage(self, resource: Resource | str) -> EngineUsage:
        """The usage entry of one resource."""
        r = as_resource(resource)
        for u in self.engines:
            if u.resource is r:
                return u
        return EngineUsage(r, 0.0, 0.0, 0)


def _split_overrides(overrides: Mapping[str, object] | None
                     ) -> tuple[dict[str, object], dict[str, object]]:
    hw_part: dict[str, object] = {}
    cal_part: dict[str, object] = {}
    for key, value in (overrides or {}).items():
        if key.startswith(_CALIBRATION_PREFIX):
            cal_part[key[len(_CALIBRATION_PREFIX):]] = value
        else:
            hw_part[key] = value
    return hw_part, cal_part


def schedule(trace: TraceResult, chip_spec: ChipSpec | str | None = None,
             overrides: Mapping[str, object] | None = None,
             calibration: Calibration | None = None,
             heuristic: SchedulingHeuristic | str | None = None) -> Profile:
    """Allocate, schedule and summarise a traced stream (`nki.trace(...)(...)`).

    `chip_spec` defaults to the hardware the trace was made for (`TraceResult.chip`, with
    any what-if overrides it was traced with); a name loads that preset. `heuristic`
    (`nki.compiler.SchedulingHeuristic` or its name) defaults to the kernel's compile
    config: ASAP, the compiler reordering independent instructions; TRIVIAL keeps the
    program order.
    """
    config = trace.compile_config
    order = _heuristic(heuristic) if heuristic is not None else config.heuristic
    notes = tuple(f"{option}: accepted, not modelled" for option in config.unmodelled())
    notes += tuple(getattr(trace, "notes", ()))
    if order is SchedulingHeuristic.DMA_PREFETCH:
        notes += ("DMA_PREFETCH orders like ASAP: DMAs have queues of their own in the model, "
                  "so no DMA competes with compute for a queue",)
    chip = chip_spec if chip_spec is not None else trace.chip
    if isinstance(chip, str):
        chip = hw.load_chip(chip)
    hw_over, cal_over = _split_overrides(overrides)
    if hw_over:
        chip = hw.with_overrides(chip, hw_over)
    cal = calibration or calibration_for(chip.core.name, chip.core.version)
    if cal_over:
        cal = cal.with_overrides(cal_over)
    with _no_gc():
        # the one lowering of the stream, with any spill DMAs the allocation inserts
        placed = allocate_kernel(trace.instructions, trace.tensors, trace.edges, chip,
                                 cal.sbuf_alignment_bytes, config)
        flat, allocation = placed.flat, placed.plan
        deps = dependencies(flat, allocation.reuse)
        deps, after = kernel_edges(deps, placed.edges, flat.n)
        timeline = build_timeline(instruction_facts(flat, chip, cal), deps, chip, cal, order,
                                  after)
        return summarise(timeline, allocation, chip, overrides, notes + placed.notes,
                         placed.spills)


def _heuristic(value: SchedulingHeuristic | str) -> SchedulingHeuristic:
    if isinstance(value, SchedulingHeuristic):
        return value
    name = str(value).strip().lower().replace("-", "_")
    try:
        return SchedulingHeuristic(name)
    except ValueError:
        choices = ", ".join(h.value.replace("_", "-") for h in SchedulingHeuristic)
        raise ScheduleError(f"unknown scheduling heuristic {value!r}; choose one of "
                            f"{choices}") from None


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: scheduling builds millions of small acyclic
    objects, and each collection would rescan the whole trace (2-3x the run time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def profile(kernel: object, *inputs: object, chip: str | ChipSpec | None = None,
            symbolic: bool = False, lnc: int | None = None,
            overrides: Mapping[str, object] | None = None,
            kernel_kwargs: Mapping[str, object] | None = None,
            heuristic: SchedulingHeuristic | str | None = None) -> Profile:
    """Trace `kernel` on `inputs` (TensorSpecs allowed when symbolic) and profile it on
    `chip` (a preset name or a `ChipSpec`; default `nki.default_chip()`), with the hardware
    `overrides` applied before tracing, ordered by `heuristic` (default: the kernel's
    compile config, ASAP unless set).

    `kernel_kwargs` are passed to the kernel by name (tile sizes, flags):
    `sim.profile(matmul, a, b, symbolic=True, kernel_kwargs={"tile_n": 512})`.
    """
    k = _nki.jit(kernel)
    if lnc is not None:
        k = k[lnc]  # type: ignore[index]
    spec = chip if isinstance(chip, ChipSpec) else hw.load_chip(chip or _nki.default_chip())
    hw_over, _ = _split_overrides(overrides)
    if hw_over:  # what-ifs reach the kernel language's checks too (a larger SBUF, ...)
        spec = hw.with_overrides(spec, hw_over)
    trace = _nki.trace(k, symbolic=symbolic, chip=spec)(*inputs, **dict(kernel_kwargs or {}))
    return schedule(trace, None, overrides, heuristic=heuristic)  # the trace carries its chip


def summarise(timeline: Timeline, allocation: AddressPlan, chip: ChipSpec,
              overrides: Mapping[str, object] | None = None,
              notes: tuple[str, ...] = (), spills: tuple[Spill, ...] = ()) -> Profile:
    """Turn a timeline into a `Profile` (rates, roofline point, bottleneck, hot spots).

    `chip` is the hardware the timeline was scheduled on (overrides applied); `overrides`
    are recorded on the profile as given.
    """
    total = timeline.total_s
    facts = timeline.facts
    flat = facts.flat
    cores = flat.cores
    per_shape = np.bincount(flat.arrays.shape, minlength=len(flat.shapes)).tolist()
    # matmuls repeat a few shapes: count them per shape, then price each shape once
    shapes: dict[tuple, list] = {}
    matmul = Opcode.NC_MATMUL
    for inst, count in zip(flat.shapes, per_shape, strict=True):
        if inst.opcode is matmul and count:
            key = (inst.partitions, inst.free_elements, inst.attrs, inst.reads[-1].dtype)
            seen = shapes.get(key)
            if seen is None:
                shapes[key] = [inst, count]
            else:
                seen[1] += count
    flops = 0.0
    by_precision: dict[Precision, float] = {}
    for inst, count in shapes.values():
        f = matmul_flops(inst) * count
        flops += f
        p = precision_of(inst.reads[-1].dtype) or Precision.BF16
        by_precision[p] = by_precision.get(p, 0.0) + f
    precision = max(by_precision, key=by_precision.__getitem__, default=Precision.BF16)
    peak_flops = chip.core.peak_flops(precision) * cores
    read = write = dmas = 0
    for plan, count in zip(facts.dma_table, per_shape, strict=True):
        if plan is not None and count:
            read += plan.hbm_read_bytes * count
            write += plan.hbm_write_bytes * count
            dmas += count
    peak_hbm = chip.hbm_bytes_per_s_per_core * cores
    busy: dict[Resource, float] = {}
    for (_, engine), b in timeline.busy_s.items():
        busy[engine] = busy.get(engine, 0.0) + b
    code_counts = np.bincount(facts.arrays.engine, minlength=len(ENGINE_ORDER)).tolist()
    elements = _elements_by_engine(flat.shapes, per_shape)
    usages = []
    for code, engine in enumerate(ENGINE_ORDER):
        if not code_counts[code]:
            continue
        r = engine
        lanes = chip.core.dma.engines_per_core if engine is Engine.DMA else 1
        capacity = total * cores * lanes
        used = busy.get(r, 0.0)
        peak_elements = 0.0
        if engine in _STREAMING:
            spec = chip.core.engine(engine)
            peak_elements = spec.elements_per_cycle_for(None) * spec.clock_hz * cores
        usages.append(EngineUsage(r, used, used / capacity if capacity else 0.0,
                                  code_counts[code], lanes * cores, elements.get(engine, 0),
                                  peak_elements))
    hbm_busy = sum(timeline.hbm_busy_s.values())
    if read or write:
        usages.append(EngineUsage(MemoryKind.HBM, hbm_busy, hbm_busy / (total * cores)
                                  if total else 0.0, dmas, cores))
    bound = max(usages, key=lambda u: u.utilisation).resource if usages else Engine.TENSOR
    hbm_bytes = read + write
    return Profile(
        chip=chip.name, cores=cores, instructions=flat.n, total_s=total,
        engines=tuple(usages), flops=flops, hbm_read_bytes=read, hbm_write_bytes=write,
        achieved_flops_per_s=flops / total if total else 0.0, peak_flops_per_s=peak_flops,
        flops_utilisation=flops / total / peak_flops if total else 0.0,
        achieved_hbm_bytes_per_s=hbm_bytes / total if total else 0.0,
        peak_hbm_bytes_per_s=peak_hbm,
        hbm_utilisation=hbm_bytes / total / peak_hbm if total else 0.0,
        arithmetic_intensity=flops / hbm_bytes if hbm_bytes else float("inf"),
        ridge_point=peak_flops / peak_hbm, bound=bound,
        critical_path=_critical(timeline), top_instructions=_hot_spots(timeline),
        peak_sbuf_bytes=allocation.peak_sbuf_bytes, peak_psum_bytes=allocation.peak_psum_bytes,
        timeline=timeline, allocation=allocation, chip_spec=chip,
        overrides=dict(overrides or {}), notes=notes, spills=spills)


_STREAMING = (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)


def _elements_by_engine(shapes: tuple, per_shape: list[int]) -> dict[Engine, int]:
    """Elements the streaming engines processed: partitions x N of each instruction."""
    out: dict[Engine, int] = {}
    for inst, count in zip(shapes, per_shape, strict=True):
        if count and inst.engine in _STREAMING:
            n = inst.partitions * inst.free_elements * count
            out[inst.engine] = out.get(inst.engine, 0) + n
    return out


def _critical(timeline: Timeline) -> CriticalPath:
    per_code = [0.0] * len(ENGINE_ORDER)  # by engine code: enum hashing is slow per link
    seen: list[int] = []  # codes in order of first appearance (the ranking's tie order)
    waiting = 0.0
    previous_end = 0.0
    path = list(timeline.critical_path)
    start_s = timeline.start_s[path].tolist()
    end_s = timeline.end_s[path].tolist()
    codes = timeline.engine_codes[path].tolist()
    for k in range(len(path)):
        s, e = start_s[k], end_s[k]
        if s > previous_end:
            waiting += s - previous_end
        code = codes[k]
        if code not in seen:
            seen.append(code)
        span = e - (s if s > previous_end else previous_end)
        if span > 0.0:
            per_code[code] += span
        if e > previous_end:
            previous_end = e
    per = {ENGINE_ORDER[c]: per_code[c] for c in seen}
    ranked = tuple(sorted(per.items(), key=lambda kv: -kv[1]))
    dominant = ranked[0][0] if ranked else Engine.TENSOR
    return CriticalPath(timeline.total_s, len(timeline.critical_path), ranked, waiting,
                        dominant)


def _hot_spots(timeline: Timeline) -> tuple[HotSpot, ...]:
    """The kernel lines (per opcode and engine) with the most engine time, largest first."""
    facts = timeline.facts
    flat = facts.flat
    if not flat.n:
        return ()
    shape, engine = flat.arrays.shape, facts.arrays.engine
    # group by kernel line (its location record), opcode and engine; then merge keys that
    # only differ by the record
    kinds: dict[tuple[int, int], int] = {}
    kind_of_shape = np.array([kinds.setdefault((id(inst.opcode), code), len(kinds))
                              for inst, code in zip(flat.shapes, facts.shape_engine.tolist(),
                                                    strict=True)], dtype=np.int64)
    site = kind_of_shape[shape] * len(flat.locations) + flat.arrays.location
    sites, first, group_of = np.unique(site, return_index=True, return_inverse=True)
    busy = np.bincount(group_of, weights=timeline.occupancy_s, minlength=len(sites))
    count = np.bincount(group_of, minlength=len(sites))
    groups: dict[tuple, list] = {}
    for g in np.argsort(first, kind="stable").tolist():
        pos = int(first[g])
        opcode, loc = flat.opcode_at(pos), flat.location_at(pos)
        key = (id(opcode), loc.file, loc.line, int(engine[pos]))
        entry = groups.get(key)
        if entry is None:
            groups[key] = [loc, int(count[g]), float(busy[g]), opcode]
        else:
            entry[1] += int(count[g])
            entry[2] += float(busy[g])
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][2])[:_TOP]
    return tuple(HotSpot(g[3], g[0], ENGINE_ORDER[key[3]], g[1], g[2])
                 for key, g in ranked)
