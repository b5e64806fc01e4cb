"""The machine model: allocator (addresses), timeline (cycles) and the kernel `Profile`.

    >>> from tessera import sim
    >>> p = sim.profile(kernel, *inputs, chip="trn1", symbolic=True)
    >>> p.total_s, p.bound, p.flops_utilisation

`sim` reads the instruction stream that `tessera.nki` records and the hardware in
`tessera.hw`; it never calls back into `nki` while scheduling. `schedule(trace)` runs the
stages in order, each available on its own:

    flat = sim.flatten(trace.instructions, trace.tensors)   # the stream as arrays, once
    allocation = sim.allocate(flat, chip)                    # addresses and reuse edges
    deps = sim.dependencies(flat, allocation.reuse)          # CSR of what each waits for
    facts = sim.instruction_facts(flat, chip, calibration)   # costs, queues, ports
    timeline = sim.build_timeline(facts, deps, chip, calibration)
    profile = sim.summarise(timeline, allocation, chip)

(`schedule` places tensors with `sim.allocate_kernel`, which follows the kernel's compile
config and inserts spill DMAs when SBUF runs out, and adds the kernel's own scheduling
edges with `sim.dependencies.kernel_edges`.)

Model constants (formula coefficients, unpublished latencies, DMA overheads, HBM
efficiency) live in `calibration/trn.yaml`, each with its source.
"""

from tessera.sim.allocation import AddressPlan, Reuse, TensorPlacement, allocate
from tessera.sim.arrays import Dependencies, FactArrays, ReuseArrays, StreamArrays
from tessera.sim.cost_rules import engine_cost, engine_cycles, matmul_flops
from tessera.sim.dependencies import dependencies
from tessera.sim.dma import DmaPlan, dma_plan
from tessera.sim.errors import (
    CapacityError,
    PsumCapacityError,
    SbufCapacityError,
    ScheduleError,
    SimError,
)
from tessera.sim.facts import StreamFacts, instruction_facts
from tessera.sim.flat import FlatStream, flatten
from tessera.sim.profile import (
    CriticalPath,
    EngineUsage,
    HotSpot,
    Profile,
    Resource,
    profile,
    schedule,
    summarise,
)
from tessera.sim.spill import KernelAllocation, Spill, allocate_kernel
from tessera.sim.timeline import ScheduledInstruction, Timeline, build_timeline
from tessera.sim.timing_calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibration_for,
    load_calibration,
)
from tessera.sim.warmup import warm_up

__all__ = [
    "CALIBRATION_FILE",
    "AddressPlan",
    "Calibration",
    "CapacityError",
    "CriticalPath",
    "Dependencies",
    "DmaPlan",
    "EngineUsage",
    "FactArrays",
    "KernelAllocation",
    "FlatStream",
    "HotSpot",
    "TensorPlacement",
    "Profile",
    "PsumCapacityError",
    "Resource",
    "Reuse",
    "ReuseArrays",
    "SbufCapacityError",
    "ScheduleError",
    "ScheduledInstruction",
    "SimError",
    "Spill",
    "StreamArrays",
    "StreamFacts",
    "Timeline",
    "allocate",
    "allocate_kernel",
    "build_timeline",
    "calibration_for",
    "dependencies",
    "dma_plan",
    "engine_cost",
    "engine_cycles",
    "flatten",
    "instruction_facts",
    "load_calibration",
    "matmul_flops",
    "profile",
    "schedule",
    "summarise",
    "warm_up",
]
