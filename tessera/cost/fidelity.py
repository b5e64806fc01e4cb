"""The types of the cost interface: fidelities, what bounds an op, and `CostEstimate`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from tessera.hw import Engine, FrozenMap, MemoryKind
from tessera.kernels.registry import Op
from tessera.sim.profile import as_resource


class CostError(Exception):
    """An op, shape, dtype or chip the cost interface cannot estimate."""


class Fidelity(Enum):
    """How an estimate is made.

    ROOFLINE: a closed formula, max(compute, memory) + fixed latency, from `tessera.hw`.
    SIMULATED: the tuned library kernel traced symbolically and scheduled by `tessera.sim`.
    """

    ROOFLINE = "roofline"
    SIMULATED = "simulated"


class Latency(StrEnum):
    """Fixed latencies (DMA issue, semaphores, pipeline fill) bound the op, not any resource's
    rate."""

    FIXED = "latency"


# What limits an op. ROOFLINE answers Engine.TENSOR, Engine.VECTOR (the Vector, Scalar and
# GpSimd engines together), MemoryKind.HBM, Engine.DMA or Latency.FIXED; SIMULATED answers
# the busiest resource of the profile (`sim.Resource`) or Latency.FIXED.
Bound = Engine | MemoryKind | Latency


def as_bound(value: Bound | str) -> Bound:
    """A `Bound` from itself or its name ("tensor", "hbm", "latency", ...)."""
    if isinstance(value, Engine | MemoryKind | Latency):
        return value
    if value == Latency.FIXED.value:
        return Latency.FIXED
    return as_resource(value)


@dataclass(frozen=True)
class SimSummary:
    """The `sim.Profile` numbers behind a SIMULATED estimate, and the tuning that chose the
    kernel's parameters."""

    params: FrozenMap[str, int | None]  # the tuned keyword parameters (None: kernel default)
    default_time_s: float | None  # the kernel with its default parameters (None: cannot run)
    configurations: int  # configurations the tuner profiled
    instructions: int
    flops: float  # counted by the profile (2KMN per matmul instruction)
    hbm_read_bytes: int
    hbm_write_bytes: int
    flops_utilisation: float
    hbm_utilisation: float
    critical: Bound  # the resource with the most time on the critical path
    busy_s: FrozenMap[Bound, float]  # per resource, summed over cores
    peak_sbuf_bytes: int  # per partition
    peak_psum_bytes: int


@dataclass(frozen=True)
class CostEstimate:
    """Predicted time of one library op: time_s = max(compute_s, memory_s) + overhead_s.

    `flops` and `hbm_bytes` are the op's compulsory work (`KernelDef.flops`/`hbm_bytes`);
    `peak_compute_per_s` is the peak of the engine that does those FLOPs and
    `peak_hbm_bytes_per_s` the core's HBM share, so the utilisations below compare the
    useful work against the hardware, whatever the kernel really moved.
    """

    op: Op
    kernel: str
    shapes: FrozenMap[str, int]
    dtype: str
    chip: str
    fidelity: Fidelity
    time_s: float
    compute_s: float
    memory_s: float
    overhead_s: float
    bound: Bound
    flops: float
    hbm_bytes: float
    peak_compute_per_s: float
    peak_hbm_bytes_per_s: float
    simulated: SimSummary | None = None

    @property
    def compute_utilisation(self) -> float:
        """Useful FLOP/s as a fraction of the peak of the engine that does them."""
        return self.flops / self.time_s / self.peak_compute_per_s if self.time_s else 0.0

    @property
    def hbm_utilisation(self) -> float:
        """Compulsory HBM bytes/s as a fraction of the core's HBM share."""
        return self.hbm_bytes / self.time_s / self.peak_hbm_bytes_per_s if self.time_s else 0.0
