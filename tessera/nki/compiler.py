"""`nki.compiler`: how the compiler allocates and schedules a kernel (`CompileConfig`).

Names and meanings follow the NKI documentation ("NKI CompileConfig options reference",
"Deep dive: NKI compile configuration", "nki.compiler.SchedulingHeuristic",
"nki.compiler.Allocation", "nki.compiler.AllocationMode"):

- `allocation=Allocation.COLORING` (default): neuronx-cc allocates by graph colouring and
  schedules after tracing; `Allocation.LINEAR`: NKI allocates by linear scan (an address at
  a tile's first write, released after its last read) before the rest of compilation.
- `scheduling=True` (needs LINEAR): NKI also orders the instructions, choosing among the
  ready ones by `experimental_scheduling_heuristic` (default ASAP).
- Options that act only when NKI allocates cannot be combined with COLORING; options that
  act only when NKI schedules need `scheduling=True`: both are errors, as in the docs.

`tessera.sim` reads the config the kernel was traced with (`TraceResult.compile_config`):
the heuristic orders the timeline, the allocation mode picks the allocator, and every option
the timing model does not model is listed in the profile's notes, never silently ignored.
The legacy decorators below (`skip_middle_end_transformations`, ...) and
`SpecializationConfig` change nothing on the CPU; `AddressRotation` and the Beta-1
`sbuf`/`psum` allocators are refused (`compiler_pending`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable as _Callable
from enum import Enum as _Enum

from tessera.nki.compiler_pending import AddressRotation, psum, sbuf
from tessera.nki.errors import KernelUsageError as _KernelUsageError


class SchedulingHeuristic(_Enum):
    """How the scheduler picks the next instruction among the ready ones."""

    ASAP = "asap"  # the instruction that can start first (the default)
    CRITICAL_PATH = "critical_path"  # the one on the longest path to the kernel's outputs
    DMA_PREFETCH = "dma_prefetch"  # a DMA before an instruction that is not a DMA
    TRIVIAL = "trivial"  # the kernel's program order


class Allocation(_Enum):
    """Who assigns addresses: neuronx-cc by graph colouring, or NKI by linear scan."""

    COLORING = "coloring"
    LINEAR = "linear"


class AllocationMode(_Enum):
    """How linear-scan allocation reuses freed memory."""

    RING = "ring"  # fresh addresses; freed memory only after the allocation wraps around
    FAST = "fast"  # nested lifetimes stacked, the rest best-fit into freed memory
    MAX_REUSE = "max_reuse"  # always best fit: least memory, least load/compute overlap


class OptLevel(_Enum):
    """Optimisation level (O1 lets the compiler pick tensor_copy's engine)."""

    O0 = "O0"
    O1 = "O1"
    O2 = "O2"


# options that act only when NKI allocates (LINEAR) / only when NKI schedules
_LINEAR_ONLY = ("experimental_allocation_mode", "prefetch_auto", "split_reused_buffers")
_SCHEDULING_ONLY = ("experimental_scheduling_heuristic",)
# options of code generation and backend passes that the timing model does not model
_NOT_MODELLED = ("address_rotation", "barrier_check", "dead_code_elim",
                 "non_ssa_legalization", "prefetch_auto", "split_reused_buffers",
                 "tensor_copy_elim", "dma_copy_elim", "element_widening", "engine_balancing",
                 "register_load_reuse", "remove_unused_instructions",
                 "remove_overwritten_writes", "sbuf_allocation_fallback")


@dataclasses.dataclass(frozen=True)
class CompileConfig:
    """The compile configuration of a kernel: `@nki.jit(compile_config=CompileConfig(...))`."""

    allocation: Allocation = Allocation.COLORING
    scheduling: bool = False
    opt_level: OptLevel = OptLevel.O1
    experimental_allocation_mode: AllocationMode | None = None
    experimental_scheduling_heuristic: SchedulingHeuristic | None = None
    nki_alloc_fallback: bool = True  # a failed LINEAR allocation falls back to COLORING
    sbuf_allocation_fallback: bool | None = None
    address_rotation: object = None
    barrier_check: bool | None = None
    dead_code_elim: bool | None = None
    non_ssa_legalization: bool | None = None
    prefetch_auto: bool | None = None
    split_reused_buffers: bool | None = None
    tensor_copy_elim: bool | None = None
    dma_copy_elim: bool | None = None
    element_widening: bool | None = None
    engine_balancing: bool | None = None
    register_load_reuse: bool | None = None
    remove_unused_instructions: bool | None = None
    remove_overwritten_writes: bool | None = None

    def __post_init__(self) -> None:
        for name, kind in (("allocation", Allocation), ("opt_level", OptLevel)):
            if not isinstance(getattr(self, name), kind):
                raise _KernelUsageError(f"CompileConfig.{name} must be a nki.compiler."
                                       f"{kind.__name__} member, got {getattr(self, name)!r}")
        if self.scheduling and self.allocation is not Allocation.LINEAR:
            raise _KernelUsageError("CompileConfig: scheduling=True needs "
                                   "allocation=Allocation.LINEAR")
        for name in _LINEAR_ONLY:
            if getattr(self, name) not in (None, False) and \
                    self.allocation is not Allocation.LINEAR:
                raise _KernelUsageError(f"CompileConfig: {name} acts only when NKI allocates; "
                                       "it cannot be set with allocation=Allocation.COLORING")
        for name in _SCHEDULING_ONLY:
            if getattr(self, name) is not None and not self.scheduling:
                raise _KernelUsageError(f"CompileConfig: {name} acts only when NKI schedules; "
                                       "set scheduling=True")

    @property
    def heuristic(self) -> SchedulingHeuristic:
        """The heuristic the instructions are ordered by (ASAP unless NKI schedules with
        another; neuronx-cc's own scheduler reorders independent instructions too)."""
        return self.experimental_scheduling_heuristic or SchedulingHeuristic.ASAP

    @property
    def allocation_mode(self) -> AllocationMode:
        """The allocator's reuse policy (RING, which reuses freed memory last, unless set)."""
        return self.experimental_allocation_mode or AllocationMode.RING

    def unmodelled(self) -> tuple[str, ...]:
        """`name=value` of every option set that the timing model does not model."""
        out = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _NOT_MODELLED and value not in (None, field.default):
                out.append(f"{field.name}={value}")
        if self.opt_level is not OptLevel.O1:
            out.append(f"opt_level={self.opt_level.value} (engine choice and O2 passes)")
        return tuple(out)


@dataclasses.dataclass(frozen=True)
class SpecializationConfig:
    """`@nki.jit(specialization_config=...)`: options of the specialization phase.

    `allow_nested_config_override` lets a nested `@nki.jit` kernel whose config disagrees
    inline under the top-level one; kernels are not specialized here, so it is accepted and
    has no effect.
    """

    allow_nested_config_override: bool = False


def _identity_decorator(fn: _Callable | None = None, **_: object) -> object:
    if fn is None:
        return lambda f: f
    return fn


skip_middle_end_transformations = _identity_decorator
enable_stack_allocator = _identity_decorator
force_auto_alloc = _identity_decorator
multi_buffer = _identity_decorator

__all__ = [
    "AddressRotation", "Allocation", "AllocationMode", "CompileConfig", "OptLevel",
    "SchedulingHeuristic", "SpecializationConfig", "enable_stack_allocator",
    "force_auto_alloc", "multi_buffer", "psum", "sbuf", "skip_middle_end_transformations",
]
