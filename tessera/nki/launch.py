"""Launching kernels: `nki.jit`, `kernel[lnc]`, `nki.simulate` and `nki.trace`.

A launch converts host arrays (numpy or torch) into HBM tensors, runs the kernel body once
per logical core (for LNC=2, two cores sharing HBM that take turns at their barriers and
sendrecvs, with races on shared HBM reported: `tessera.nki.multicore`), and converts the
returned HBM tensors back to the caller's array type. In symbolic mode nothing is computed:
inputs are shape/dtype placeholders and the result is the instruction stream alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tessera.hw import ChipSpec
from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.compiler import CompileConfig
from tessera.nki.errors import DTypeError, KernelUsageError
from tessera.nki.multicore import CoreScheduler
from tessera.nki.runtime import (
    CoreContext,
    ExecMode,
    KernelRun,
    chip_spec,
    core_limits,
    default_chip,
    set_current,
)
from tessera.nki.scheduling import ScheduleEdge, dependency, named_edges, schedule_pairs
from tessera.nki.stream import Instruction, SourceLocation, TensorInfo
from tessera.nki.tensor import NkiTensor, Storage


@dataclass(frozen=True)
class TensorSpec:
    """A shape/dtype placeholder for an input in symbolic mode."""

    shape: tuple[int, ...]
    dtype: object = dt.float32

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", dt.to_dtype(self.dtype))


@dataclass(frozen=True)
class TraceResult:
    """What a traced launch produced: outputs, the instruction stream and the tensors, with
    the hardware it was traced for (what-if overrides included), which `sim.schedule` uses
    unless told otherwise."""

    outputs: object
    instructions: tuple[Instruction, ...]
    tensors: tuple[TensorInfo, ...]
    chip: ChipSpec
    lnc: int
    symbolic: bool
    compile_config: CompileConfig = field(default_factory=CompileConfig)
    # the scheduling edges the kernel added (`depends_on`, `nl.no_reorder`, `with_schedule`),
    # in stream positions
    edges: tuple[ScheduleEdge, ...] = ()
    # what the kernel asked for that is accepted and not modelled (profile notes)
    notes: tuple[str, ...] = ()

    def count_by_engine(self) -> dict[str, int]:
        """Instruction counts per engine (engine value -> count), in engine order."""
        counts: dict[str, int] = {}
        for inst in self.instructions:
            counts[inst.engine.value] = counts.get(inst.engine.value, 0) + 1
        return counts


class Kernel:
    """A kernel function wrapped by `@nki.jit`; `kernel[2]` launches it on two cores."""

    def __init__(self, fn: Callable[..., object], lnc: int = 1,
                 compile_config: CompileConfig | None = None,
                 schedule: tuple[tuple[tuple[str, tuple[str, ...]], ...], dependency] = (
                     (), dependency.schedule)) -> None:
        if not callable(fn):
            raise KernelUsageError(f"nki.jit needs a function, got {type(fn).__name__}")
        if compile_config is not None and not isinstance(compile_config, CompileConfig):
            raise KernelUsageError(f"nki.jit: compile_config must be a nki.compiler."
                                   f"CompileConfig, got {type(compile_config).__name__}")
        self.fn = fn
        self.lnc = lnc
        self.compile_config = compile_config or CompileConfig()
        self.schedule = schedule  # `with_schedule` pairs and their dependency kind
        functools.update_wrapper(self, fn)

    def __getitem__(self, grid: object) -> Kernel:
        lnc = grid[0] if isinstance(grid, tuple) and len(grid) == 1 else grid
        if lnc not in (1, 2):
            raise KernelUsageError(f"kernel[{grid!r}]: the launch grid is the logical core "
                                   "count, 1 or 2")
        return Kernel(self.fn, int(lnc), self.compile_config,  # type: ignore[arg-type]
                      self.schedule)

    def with_schedule(self, pairs: object, kind: dependency | None = None) -> Kernel:
        """This kernel with scheduling edges between named instructions:
        `kernel.with_schedule([("consumer", "producer"), ("c", ["p1", "p2"])])`, names being
        the `name=` of nisa calls. `kind` defaults to `nisa.dependency.schedule` (issue order
        only); `nisa.dependency.runtime` makes each consumer wait until its producers end."""
        kind = dependency.schedule if kind is None else kind
        if not isinstance(kind, dependency):
            raise KernelUsageError(f"with_schedule: kind must be nisa.dependency.runtime or "
                                   f".schedule, got {kind!r}")
        return Kernel(self.fn, self.lnc, self.compile_config,
                      (self.schedule[0] + schedule_pairs(pairs), kind))

    def __call__(self, *args: object, **kwargs: object) -> object:
        return simulate(self)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"nki.jit({self.fn.__qualname__})[{self.lnc}]"

    # Beta-1 kernels may write their results into output arrays passed as arguments
    # (`simulate_kernel(kernel, a, out)`): those host arrays get the values back
    write_back = False

    def prepare(self, run: KernelRun) -> None:
        """Set up a launch's shared state (the Beta-1 front end marks its launches)."""

    def run_core(self, ctx: CoreContext, args: tuple, kwargs: dict) -> object:
        """Run the kernel body on one core (Beta 1: every SPMD instance of that core)."""
        return self.fn(*args, **kwargs)


def jit(fn: Callable[..., object] | None = None, *,
        compile_config: CompileConfig | None = None, **options: object) -> object:
    """Decorator making a kernel: `@nki.jit`, or `@nki.jit(compile_config=CompileConfig(...))`
    (the allocation and scheduling the timing model follows; other launch options are
    accepted)."""
    def wrap(f: Callable[..., object]) -> Kernel:
        if isinstance(f, Kernel):
            return Kernel(f.fn, 1, compile_config or f.compile_config, f.schedule)
        return Kernel(f, 1, compile_config)

    if fn is None:
        return wrap
    if isinstance(fn, Kernel) and compile_config is None:
        return fn
    return wrap(fn)


def _as_kernel(kernel: object) -> Kernel:
    if isinstance(kernel, Kernel):
        return kernel
    if callable(kernel):
        return Kernel(kernel)  # type: ignore[arg-type]
    raise KernelUsageError(f"expected a kernel function, got {type(kernel).__name__}")


@dataclass(frozen=True)
class Simulated:
    """What `nki.simulate(kernel)` returns: call it with the inputs to run the kernel, or
    index it with the logical-core count first (`nki.simulate(kernel)[2](*arrays)`, the form
    the vendor's kernel-library test harness uses, same as `nki.simulate(kernel[2])`)."""

    kernel: Kernel
    chip: object = None

    def __call__(self, *args: object, **kwargs: object) -> object:
        return _launch(self.kernel, args, kwargs, ExecMode.FUNCTIONAL,
                       self.chip or default_chip()).outputs

    def __getitem__(self, lnc: object) -> Simulated:
        return Simulated(self.kernel[lnc], self.chip)  # type: ignore[index]


def simulate(kernel: object, chip: object = None) -> Simulated:
    """`nki.simulate(kernel)(*arrays)`: run on the CPU, return outputs like the inputs.

    `chip` is a preset name (`trn1`, `trn2`, ...) or a `tessera.hw.ChipSpec`;
    `nki.simulate(kernel)[lnc](*arrays)` launches on `lnc` logical cores."""
    return Simulated(_as_kernel(kernel), chip)


def trace(kernel: object, symbolic: bool = False, chip: object = None
          ) -> Callable[..., TraceResult]:
    """`nki.trace(kernel)(*inputs)`: outputs plus the instruction stream (a `TraceResult`).

    With `symbolic=True` inputs may be `TensorSpec`s (or arrays, of which only shape and
    dtype are used) and no values are computed; the stream is identical to a functional run.
    `TensorSpec` inputs imply `symbolic=True` (there are no values to compute with).
    """
    k = _as_kernel(kernel)

    def run(*args: object, **kwargs: object) -> TraceResult:
        specs = any(isinstance(v, TensorSpec) for v in (*args, *kwargs.values()))
        mode = ExecMode.SYMBOLIC if symbolic or specs else ExecMode.FUNCTIONAL
        return _launch(k, args, kwargs, mode, chip or default_chip())

    return run


# --------------------------------------------------------------------- host conversion
def _is_torch(x: object) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _host_array(x: object, name: str) -> np.ndarray:
    if _is_torch(x):
        t = x.detach().cpu()  # type: ignore[attr-defined]
        tname = str(t.dtype).removeprefix("torch.")
        if tname == "bfloat16":
            return t.float().numpy().astype(dt.bfloat16.storage)
        if tname.startswith("float8"):
            return t.float().numpy().astype(dt.to_dtype(tname).storage)
        return t.numpy()
    return np.asarray(x)


def _input_storage(ctx: CoreContext, value: object, name: str, symbolic: bool) -> Storage:
    if isinstance(value, TensorSpec):
        if not symbolic:
            raise KernelUsageError(f"input {name} is a TensorSpec, which has no values to "
                                   "simulate: pass arrays, or trace shapes only with "
                                   "nki.trace(kernel)(*specs) / sim.profile(kernel, *specs)")
        return Storage(name, Buffer.HBM, value.shape, value.dtype, None)  # type: ignore[arg-type]
    arr = _host_array(value, name)
    try:
        dtype = dt.to_dtype(arr.dtype)
    except DTypeError:
        raise DTypeError(f"input {name} has dtype {arr.dtype}, which NKI does not support; "
                         "convert it (e.g. float64 -> float32, int64 -> int32)") from None
    if arr.ndim == 0:
        raise KernelUsageError(f"input {name} is a 0-d array; pass at least a 1-D array")
    shape = tuple(int(s) for s in arr.shape)
    data = None if symbolic else np.ascontiguousarray(arr).reshape(-1).copy()
    if data is not None and data.dtype != dtype.storage:  # an MX record array: its containers
        data = data.view(dtype.storage)
    return Storage(name, Buffer.HBM, shape, dtype, data)


def _flat_arguments(arguments: dict[str, object], params: object) -> list[object]:
    """Every argument value, with *args and **kwargs unpacked."""
    values: list[object] = []
    for name, value in arguments.items():
        kind = params[name].kind  # type: ignore[index]
        if kind is inspect.Parameter.VAR_POSITIONAL:
            values.extend(value)  # type: ignore[arg-type]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            values.extend(value.values())  # type: ignore[union-attr]
        else:
            values.append(value)
    return values


def _numeric_list(value: list) -> bool:
    """A (nested) list of numbers: an array the caller forgot to convert."""
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


def _is_array_like(value: object) -> bool:
    return isinstance(value, np.ndarray | TensorSpec) or _is_torch(value)


def _to_host(value: object, as_torch: bool, symbolic: bool) -> object:
    if isinstance(value, NkiTensor):
        if value.buffer.on_chip:
            raise KernelUsageError(f"kernel returned {value.name}, which is in "
                                   f"{value.buffer.value}; return tensors allocated in "
                                   "nl.shared_hbm (dma_copy the result there)")
        if symbolic:
            return TensorSpec(value.shape, value.dtype)
        out = value.numpy().copy()
        if as_torch:
            import torch

            if value.dtype in (dt.bfloat16, dt.tfloat32) or value.dtype.kind is dt.DTypeKind.FLOAT8:
                target = getattr(torch, value.dtype.name if value.dtype is not dt.tfloat32
                                 else "float32", torch.float32)
                return torch.from_numpy(out.astype(np.float32)).to(target)
            return torch.from_numpy(out)
        return out
    if isinstance(value, tuple | list):
        return type(value)(_to_host(v, as_torch, symbolic) for v in value)
    return value


# --------------------------------------------------------------------- the launch
def _launch(kernel: Kernel, args: tuple, kwargs: dict, mode: ExecMode, chip: object
            ) -> TraceResult:
    spec = chip_spec(chip)
    if kernel.lnc not in spec.lnc_allowed:
        raise KernelUsageError(f"{kernel.fn.__name__}[{kernel.lnc}]: {spec.name} runs logical "
                               f"cores of {' or '.join(map(str, spec.lnc_allowed))} physical "
                               f"core(s) only; use LNC={spec.lnc_allowed[-1]} or another chip")
    limits = core_limits(chip if isinstance(chip, str) else spec)
    run = KernelRun(mode, limits, kernel.lnc)
    kernel.prepare(run)
    scheduler = CoreScheduler(kernel.lnc) if kernel.lnc > 1 else None
    run.cores = scheduler
    symbolic = mode is ExecMode.SYMBOLIC
    try:
        bound = inspect.signature(kernel.fn).bind(*args, **kwargs)
    except TypeError as err:
        raise KernelUsageError(f"{kernel.fn.__name__}: {err}") from None
    host_ctx = CoreContext(run, 0)
    # inputs are "created" by the kernel's signature, not by whichever line launched it, so
    # traces of one kernel compare equal wherever they were launched from
    code = getattr(kernel.fn, "__code__", None)
    kernel_def = (SourceLocation(code.co_filename, code.co_firstlineno, code.co_name)
                  if code is not None else None)
    params = inspect.signature(kernel.fn).parameters
    as_torch = any(_is_torch(v) for v in _flat_arguments(bound.arguments, params))
    inputs: list[NkiTensor] = []
    host_pairs: list[tuple[object, NkiTensor]] = []

    def convert(name: str, value: object) -> object:
        if isinstance(value, list) and value and _numeric_list(value):
            raise KernelUsageError(f"{kernel.fn.__name__}: input {name} is a Python list; "
                                   "kernel inputs are numpy arrays (np.asarray(x, "
                                   "np.float32)), torch tensors or TensorSpecs")
        if not _is_array_like(value):
            return value
        t = NkiTensor.whole(_input_storage(host_ctx, value, name, symbolic))
        inputs.append(t)
        host_pairs.append((value, t))
        return t

    for pname, value in bound.arguments.items():
        kind = params[pname].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[pname] = tuple(convert(f"{pname}{i}", v) for i, v in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            bound.arguments[pname] = {k: convert(k, v) for k, v in value.items()}
        else:
            bound.arguments[pname] = convert(pname, value)
    for t in inputs:
        host_ctx.register_tensor(t.name, t.buffer, t.shape, t.dtype.name, t.itemsize,
                                 kernel_def)
    results: list[object] = [None] * kernel.lnc
    per_core: list[list[Instruction]] = [[] for _ in range(kernel.lnc)]
    contexts = [CoreContext(run, core) for core in range(kernel.lnc)]
    pairs, kind = kernel.schedule

    def body(core: int) -> None:
        ctx = contexts[core]
        ctx.stream = per_core[core]
        set_current(ctx)
        try:
            # inf/NaN arithmetic is what the engines produce: no numpy warnings per op
            with np.errstate(all="ignore"):
                results[core] = kernel.run_core(ctx, bound.args, bound.kwargs)
            if pairs:
                ctx.edges += named_edges(pairs, ctx.named_calls, kind)
        finally:
            set_current(None)

    if scheduler is None:
        body(0)
    else:  # the cores take turns at their barriers (see tessera.nki.multicore)
        scheduler.run(body)
    stream = tuple(inst for core in per_core for inst in core)
    if kernel.write_back and not symbolic:
        _write_back(host_pairs, stream)
    outputs = _to_host(results[0], as_torch, symbolic)
    return TraceResult(outputs, stream, tuple(run.tensors), spec, kernel.lnc, symbolic,
                       kernel.compile_config, _stream_edges(contexts), tuple(run.notes))


def _write_back(pairs: list[tuple[object, NkiTensor]], stream: tuple[Instruction, ...]
                ) -> None:
    """Copy the final values of the input tensors the kernel wrote into the caller's numpy
    arrays (Beta 1's pass-by-reference outputs)."""
    written = {ap.tensor for inst in stream for ap in inst.writes}
    for host, t in pairs:
        if (isinstance(host, np.ndarray) and host.flags.writeable and t.name in written
                and host.dtype == t.dtype.storage):
            np.copyto(host, t.numpy().reshape(host.shape))


def _stream_edges(contexts: list[CoreContext]) -> tuple[ScheduleEdge, ...]:
    """Every core's edges in merged-stream positions (core 0's instructions come first),
    each once."""
    edges: dict[ScheduleEdge, None] = {}
    offset = 0
    for ctx in contexts:
        for consumer, producer, kind in ctx.edges:
            edges[ScheduleEdge(offset + consumer, offset + producer, dependency(kind))] = None
        offset += len(ctx.stream)
    return tuple(edges)
