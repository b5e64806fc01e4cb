"""The machine model: allocator (addresses), timeline (cycles) and the kernel `Profile`.

    >>> from tessera import sim
    >>> p = sim.profile(kernel, *inputs, chip="trn1", symbolic=True)
    >>> p.total_s, p.bound, p.flops_utilisation

`sim` reads the instruction stream that `tessera.nki` records and the hardware in
`tessera.hw`; it never calls back into `nki` while scheduling. Model constants (formula
coefficients, unpublished latencies, DMA overheads, HBM efficiency) live in
`calibration/trn.yaml`, each with its source.
"""

from tessera.sim.alloc import Allocation, Placement, Reuse, allocate, allocate_stream, liveness
from tessera.sim.calib import CALIBRATION_FILE, Calibration, load_calibration
from tessera.sim.costs import engine_cost, engine_cycles, matmul_flops
from tessera.sim.deps import dependencies, dependency_arrays
from tessera.sim.dma import DmaPlan, dma_plan
from tessera.sim.errors import (
    CalibrationError,
    CapacityError,
    PsumCapacityError,
    SbufCapacityError,
    ScheduleError,
    SimError,
)
from tessera.sim.lower import StreamArrays, lower
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
from tessera.sim.timeline import ScheduledInstruction, Timeline, schedule_plan, schedule_stream
from tessera.sim.warmup import warm_up

__all__ = [
    "CALIBRATION_FILE",
    "Allocation",
    "Calibration",
    "CalibrationError",
    "CapacityError",
    "CriticalPath",
    "DmaPlan",
    "EngineUsage",
    "HotSpot",
    "Placement",
    "Profile",
    "PsumCapacityError",
    "Resource",
    "Reuse",
    "SbufCapacityError",
    "ScheduleError",
    "ScheduledInstruction",
    "SimError",
    "StreamArrays",
    "Timeline",
    "allocate",
    "allocate_stream",
    "dependencies",
    "dependency_arrays",
    "dma_plan",
    "engine_cost",
    "engine_cycles",
    "liveness",
    "load_calibration",
    "lower",
    "matmul_flops",
    "profile",
    "schedule",
    "schedule_plan",
    "schedule_stream",
    "summarise",
    "warm_up",
]
