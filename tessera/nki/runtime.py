"""Execution state of a running kernel: mode, hardware limits, the instruction stream.

One `KernelRun` per launch (shared by the LNC cores of that launch); one `CoreContext` per
core, held in a thread-local so that `nisa.*` calls find it without arguments. The run
records every instruction and every tensor created; `sim` consumes those records.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from tessera.hw import DEFAULT_CHIP, ChipSpec, load_chip, preset_names
from tessera.nki.attrs import OpAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, NkiError
from tessera.nki.scheduling import NkiInstruction
from tessera.nki.stream import (
    AccessPattern,
    Engine,
    Instruction,
    Opcode,
    SourceLocation,
    TensorInfo,
)


class ExecMode(Enum):
    """FUNCTIONAL computes values with numpy; SYMBOLIC tracks shapes and dtypes only."""

    FUNCTIONAL = "functional"
    SYMBOLIC = "symbolic"


@dataclass(frozen=True)
class CoreLimits:
    """The per-core hardware limits the kernel language enforces, read from `tessera.hw`."""

    chip: str
    version: int
    pmax: int
    sbuf_bytes_per_partition: int
    psum_bytes_per_partition: int
    psum_bank_bytes: int
    stationary_fmax: int
    moving_fmax: int
    psum_fmax: int
    bn_stats_fmax: int
    # (max partitions, allowed start partitions) of compute-engine accesses, ascending
    partition_start_rules: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def allowed_partition_starts(self, partitions: int) -> tuple[int, ...]:
        """Start partitions a compute engine may use for an access of `partitions`."""
        for limit, starts in self.partition_start_rules:
            if partitions <= limit:
                return starts
        return ()


TARGET_ENV = "NEURON_PLATFORM_TARGET_OVERRIDE"  # the Neuron SDK's target variable
# the NKI CPU simulator's target (gen2 / gen3 / gen4), which the vendor's kernel-library test
# harness sets per test before nki.simulate; it wins over TARGET_ENV when both are set
SIMULATOR_TARGET_ENV = "NKI_NC_VERSION"
_CHIP_BY_TARGET = {"trn1": "trn1", "gen2": "trn1", "inf2": "inf2", "trn2": "trn2",
                   "gen3": "trn2", "trn3": "trn3", "gen4": "trn3"}


def default_chip() -> str:
    """The chip used when none is named: NKI_NC_VERSION (the NKI simulator's variable,
    `gen2`/`gen3`/`gen4`), else NEURON_PLATFORM_TARGET_OVERRIDE (the Neuron SDK's, e.g.
    `trn1` or `gen3`), else `tessera.hw.DEFAULT_CHIP`."""
    variable = next((v for v in (SIMULATOR_TARGET_ENV, TARGET_ENV) if os.environ.get(v)), None)
    if variable is None:
        return DEFAULT_CHIP
    raw = os.environ[variable]
    target = raw.strip().lower()
    chip = _CHIP_BY_TARGET.get(target, target)
    if chip not in preset_names("chip"):
        raise KernelUsageError(f"{variable}={raw!r} is not a chip; use one of "
                               f"{', '.join(sorted(_CHIP_BY_TARGET))} (or unset it for "
                               f"{DEFAULT_CHIP})")
    return chip


def chip_spec(chip: object) -> ChipSpec:
    """The `ChipSpec` of `chip`: a preset name, or a spec itself (e.g. a what-if from
    `tessera.hw.with_overrides`, kept with its overrides)."""
    if isinstance(chip, str):
        return load_chip(chip)
    if isinstance(chip, ChipSpec):
        return chip
    raise KernelUsageError(f"chip must be a preset name or a ChipSpec, got {chip!r}")


def core_limits(chip: object) -> CoreLimits:
    """Limits of one NeuronCore of `chip`: a preset name, or a `tessera.hw.ChipSpec`."""
    if isinstance(chip, str):
        return _limits_by_name(chip)
    spec = chip_spec(chip)
    return _limits_of(spec.name, spec.core)


@functools.cache
def _limits_by_name(chip: str) -> CoreLimits:
    return _limits_of(chip, load_chip(chip).core)


def _limits_of(chip: str, core: object) -> CoreLimits:
    return CoreLimits(
        chip=chip,
        version=int(core.version),
        pmax=int(core.tile.pmax),
        sbuf_bytes_per_partition=int(core.sbuf.bytes_per_partition),
        psum_bytes_per_partition=int(core.psum.bytes_per_partition),
        psum_bank_bytes=int(core.psum.bank_bytes_per_partition),
        stationary_fmax=int(core.tile.stationary_fmax),
        moving_fmax=int(core.tile.moving_fmax),
        psum_fmax=int(core.tile.psum_fmax),
        bn_stats_fmax=int(core.tile.bn_stats_fmax),
        partition_start_rules=tuple(sorted(
            (int(r.max_partitions), tuple(int(s) for s in r.starts))
            for r in core.access.partition_start_rules)),
    )


class KernelRun:
    """State shared by all cores of one kernel launch."""

    def __init__(self, mode: ExecMode, limits: CoreLimits, num_cores: int) -> None:
        self.mode = mode
        self.limits = limits
        self.num_cores = num_cores
        self.tensors: list[TensorInfo] = []
        self.lock = threading.Lock()
        # the turn-taking, barriers, sendrecv and race checks of a multi-core launch
        # (`tessera.nki.multicore.CoreScheduler`, set by the launcher); None with one core
        self.cores: object | None = None
        # shared_hbm tensors are one allocation seen by every core: the k-th shared_hbm
        # ndarray of each core is the same tensor.
        self.shared: dict[int, object] = {}
        # the Beta-1 front end (neuronxcc.nki): tiles as values, N-D SPMD grids whose
        # instances share the launch's shared_hbm tensors
        self.beta1 = False
        self.grid_instances = 1
        # what the kernel asked for that the model accepts but does not model (Beta-1
        # allocator hooks, compiler directives): each listed once in the profile's notes
        self.notes: list[str] = []

    @property
    def symbolic(self) -> bool:
        return self.mode is ExecMode.SYMBOLIC


class CoreContext:
    """Per-core state: the core id, name counters and PSUM accumulation bookkeeping."""

    def __init__(self, run: KernelRun, core_id: int) -> None:
        self.run = run
        self.core_id = core_id
        self.name_counts: dict[str, int] = {}
        self.shared_count = 0
        self.stream: list[Instruction] = []
        # scheduling constraints: (consumer index, producer index, kind "runtime"/"schedule")
        self.edges: list[tuple[int, int, str]] = []
        self.no_reorder_depth = 0  # inside `nl.no_reorder()` blocks
        self.no_reorder_last: int | None = None  # the block's previous instruction
        self.api_name: str | None = None  # the `name=` of the nisa call being recorded
        self.named_calls: list[tuple[str, int, int]] = []  # (name, first, end) per named call
        self.rng_states: dict[Engine, object] = {}  # PRNG state per engine (isa.random)
        self.grid_index: tuple[int, ...] = ()  # the Beta-1 SPMD instance being traced

    def fresh_name(self, prefix: str) -> str:
        """A deterministic unique tensor name (same in functional and symbolic mode)."""
        n = self.name_counts.get(prefix, 0)
        self.name_counts[prefix] = n + 1
        core = f"c{self.core_id}." if self.run.num_cores > 1 else ""
        return f"{core}{prefix}{n}"

    def record(
        self,
        engine: Engine,
        opcode: Opcode,
        reads: tuple[AccessPattern, ...],
        writes: tuple[AccessPattern, ...],
        partitions: int,
        free_elements: int,
        attrs: OpAttrs,
    ) -> Instruction:
        """Append one instruction to the stream."""
        inst = Instruction(
            index=len(self.stream),
            core=self.core_id,
            engine=engine,
            opcode=opcode,
            reads=reads,
            writes=writes,
            partitions=partitions,
            free_elements=free_elements,
            attrs=attrs,
            location=kernel_location(),
            name=self.api_name,
        )
        if self.no_reorder_depth:  # program order inside the block: an edge per neighbour
            if self.no_reorder_last is not None:
                self.edges.append((inst.index, self.no_reorder_last, "schedule"))
            self.no_reorder_last = inst.index
        self.stream.append(inst)
        return inst

    def register_tensor(self, name: str, buffer: Buffer, shape: tuple[int, ...], dtype: str,
                        itemsize: int, location: SourceLocation | None = None) -> None:
        """Record a tensor's creation (where: `location`, else the calling kernel line)."""
        where = location if location is not None else kernel_location()
        info = TensorInfo(name, buffer, shape, dtype, itemsize, self.core_id, where)
        with self.run.lock:
            self.run.tensors.append(info)


# how many Beta-1 kernel bodies are running (tessera.nki.beta1.kernel): tensor indexing
# looks for the Beta-1 index forms only then, keeping the Beta-2 path as fast as it was
beta1_active = 0
_beta1_lock = threading.Lock()


@contextlib.contextmanager
def lock_beta1() -> Iterator[None]:
    """Count a running Beta-1 kernel body while the block runs."""
    global beta1_active
    with _beta1_lock:
        beta1_active += 1
    try:
        yield
    finally:
        with _beta1_lock:
            beta1_active -= 1


def add_note(text: str) -> None:
    """List `text` once in the running kernel's profile notes (what is accepted and not
    modelled); nothing on the host."""
    ctx = maybe_current()
    if ctx is not None and text not in ctx.run.notes:
        with ctx.run.lock:
            ctx.run.notes.append(text)


_local = threading.local()


def current() -> CoreContext:
    """The context of the kernel running on this thread; errors outside a kernel."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        raise KernelUsageError(
            "this NKI call must run inside a kernel: call it from a function launched with "
            "nki.simulate(kernel)(...), nki.trace(kernel)(...) or a @nki.jit kernel call")
    return ctx


def maybe_current() -> CoreContext | None:
    """The running kernel's context, or None on the host."""
    return getattr(_local, "ctx", None)


def set_current(ctx: CoreContext | None) -> None:
    _local.ctx = ctx


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL = (_PACKAGE_DIR + os.sep + "nki" + os.sep,)


# keyed by (id(code), line): hashing a code object hashes its bytecode, which is slow
_LOCATIONS: dict[tuple[int, int], SourceLocation] = {}


def kernel_location() -> SourceLocation:
    """The first stack frame outside `tessera.nki`: the kernel line that made this call."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not code.co_filename.startswith(_INTERNAL):
            key = (id(code), frame.f_lineno)
            loc = _LOCATIONS.get(key)
            if loc is None or loc.file != code.co_filename or loc.function != code.co_name:
                # one record per kernel line, shared by every instruction (the name check
                # guards against a recycled id of a collected function)
                loc = SourceLocation(code.co_filename, frame.f_lineno, code.co_name)
                _LOCATIONS[key] = loc
            return loc
        frame = frame.f_back
    return SourceLocation("<unknown>", 0, "<unknown>")


F = TypeVar("F", bound=Callable[..., object])


def kernel_api(fn: F) -> F:
    """Decorate a public NKI call so that its errors name the kernel's file:line, the
    instructions it records carry its `name=`, and a call that records instructions and
    returns nothing returns their `NkiInstruction` handle (for `.depends_on`)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        ctx = maybe_current()
        if ctx is None:
            try:
                return fn(*args, **kwargs)
            except NkiError as err:
                raise err.with_location(str(kernel_location())) from None
        outer_name, first = ctx.api_name, len(ctx.stream)
        if outer_name is None and isinstance(kwargs.get("name"), str):
            ctx.api_name = kwargs["name"]  # type: ignore[assignment]
        try:
            result = fn(*args, **kwargs)
        except NkiError as err:
            raise err.with_location(str(kernel_location())) from None
        finally:
            ctx.api_name = outer_name
        end = len(ctx.stream)
        if outer_name is None and end > first and isinstance(kwargs.get("name"), str):
            ctx.named_calls.append((kwargs["name"], first, end))  # type: ignore[arg-type]
        if result is None and end > first:
            return NkiInstruction(ctx, first, end)
        return result

    return wrapper  # type: ignore[return-value]
