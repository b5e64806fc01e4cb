"""Beta-1 entry points of the top-level `nki` package (`neuronxcc.nki`, NKI 0.1).

Legacy tests run kernels as `nki.simulate_kernel(nki.baremetal(kernel)[grid], *arrays)`:
- `baremetal(kernel)` compiled a kernel to run on a NeuronDevice with numpy arrays; here it
  makes the same `Kernel` as `nki.jit`, which runs on the CPU with numpy arrays;
- `simulate_kernel(kernel, *args)` ran a kernel in the simulator and returned its outputs,
  as `nki.simulate(kernel)(*args)` does;
- `benchmark(...)` ran a kernel in a loop on a NeuronDevice (neuron-bench) and kept its
  latency percentiles; here the latency is the timing model's prediction (`tessera.sim`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tessera.nki.errors import KernelUsageError
from tessera.nki.launch import Kernel, jit, simulate, trace
from tessera.nki.runtime import kernel_api, kernel_location

# the percentiles `get_latency_percentile` serves, from the nki.benchmark page (Beta 1)
PERCENTILES = (0, 1, 10, 25, 50, 90, 99, 100)
# the NEFF name save_trace_name works with (the page: save_neff_name unspecified or this)
_TRACE_NEFF_NAME = "file.neff"
_OPTIONS = ("warmup", "iters", "save_neff_name", "save_trace_name", "additional_compile_opt")


def baremetal(kernel: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.baremetal` / `@nki.baremetal(...)`: the kernel as `nki.jit` makes it (launch
    options such as `save_neff_name` are accepted and unused)."""
    return jit(kernel, **options)


def simulate_kernel(kernel: object, *args: object, **kwargs: object) -> object:
    """Run `kernel` on `args` in the CPU simulator and return its outputs."""
    return simulate(kernel)(*args, **kwargs)


@dataclass(frozen=True)
class LatencyStats:
    """`benchmark_result.nc_latency`: the kernel's latency over the benchmark iterations.

    Every percentile is the timing model's one prediction: the model is deterministic and
    models no run-to-run noise, so p0 == p50 == p100."""

    latency_us: float
    iters: int

    @kernel_api
    def get_latency_percentile(self, percentile: int) -> float:
        """The `percentile`-th latency in microseconds (0, 1, 10, 25, 50, 90, 99 or 100)."""
        if isinstance(percentile, bool) or percentile not in PERCENTILES:
            raise KernelUsageError(f"get_latency_percentile: percentile {percentile!r} is not "
                                   f"available; choose one of {list(PERCENTILES)}")
        return self.latency_us


@dataclass(frozen=True)
class BenchmarkResult:
    """What one benchmarked call measured: `nc_latency`, and the `tessera.sim.Profile`
    the latency came from (engines, critical path, hot spots)."""

    nc_latency: LatencyStats
    profile: object


@dataclass(frozen=True)
class BenchmarkOptions:
    """The documented options of `nki.benchmark` (defaults from its page)."""

    warmup: int = 10
    iters: int = 100
    save_neff_name: str | None = None
    save_trace_name: str | None = None
    additional_compile_opt: str | None = None


def _options(options: dict[str, object]) -> BenchmarkOptions:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise KernelUsageError(f"nki.benchmark: unknown option(s) {', '.join(unknown)}; "
                               f"the options are {', '.join(_OPTIONS)}")
    opts = BenchmarkOptions(**options)  # type: ignore[arg-type]
    for name, least in (("warmup", 0), ("iters", 1)):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise KernelUsageError(f"nki.benchmark: {name} must be an int >= {least}, got "
                                   f"{value!r}")
    if opts.save_trace_name is not None and opts.save_neff_name not in (None, _TRACE_NEFF_NAME):
        raise KernelUsageError(f"nki.benchmark: save_trace_name needs save_neff_name unset or "
                               f"{_TRACE_NEFF_NAME!r}, got {opts.save_neff_name!r}")
    return opts


class BenchmarkedKernel:
    """A kernel wrapped by `nki.benchmark`: calling it runs the kernel on the CPU (its
    outputs are returned) and predicts its latency, kept in `benchmark_result`."""

    def __init__(self, kernel: Kernel, options: BenchmarkOptions) -> None:
        self.kernel = kernel
        self.options = options
        self._result: BenchmarkResult | None = None

    def __getitem__(self, grid: object) -> BenchmarkedKernel:
        return BenchmarkedKernel(self.kernel[grid], self.options)

    @property
    def benchmark_result(self) -> BenchmarkResult:
        """The latest call's result (a usage error before the first call)."""
        if self._result is None:
            raise KernelUsageError(f"nki.benchmark: {self.kernel.fn.__name__} has not run yet; "
                                   "call it before reading benchmark_result",
                                   location=str(kernel_location()))
        return self._result

    def __call__(self, *args: object, **kwargs: object) -> object:
        result = trace(self.kernel)(*args, **kwargs)
        # the timing model and the reports are layers above the kernel language: reached
        # at call time only, so `import tessera.nki` never loads them
        sim = importlib.import_module("tessera.sim")
        profile = sim.schedule(result)
        if self.options.save_trace_name is not None:
            report = importlib.import_module("tessera.report")
            report.write_chrome_trace(profile, Path(self.options.save_trace_name),
                                      kernel=self.kernel.fn.__name__)
        latency = LatencyStats(profile.total_s * 1e6, self.options.iters)
        self._result = BenchmarkResult(latency, profile)
        return result.outputs

    def __repr__(self) -> str:
        return f"nki.benchmark({self.kernel!r})"


@kernel_api
def benchmark(kernel: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.benchmark(warmup=10, iters=100, save_neff_name=None, save_trace_name=None,
    additional_compile_opt=None)` (or bare `@nki.benchmark`), as on the Beta-1
    `nki.benchmark` page.

    A call of the wrapped kernel runs it on the CPU, returns its outputs (the device run
    leaves them undefined; here they are the computed values) and stores
    `kernel.benchmark_result.nc_latency`, whose `get_latency_percentile(p)` gives the
    latency in microseconds for p in 0, 1, 10, 25, 50, 90, 99, 100. The latency is the
    timing model's prediction (`tessera.sim.schedule` of the traced kernel on the default
    chip, `NEURON_PLATFORM_TARGET_OVERRIDE` else trn2): one deterministic figure, so every
    percentile is equal (no run-to-run noise is modelled) and `warmup`/`iters` change
    nothing. neuron-bench's host-device transfer time is not included.
    `save_trace_name` writes the predicted timeline as a Chrome/Perfetto JSON trace (open
    it in ui.perfetto.dev; not an NTFF, whatever the file's suffix); there is no NEFF, so
    `save_neff_name` writes nothing, and `additional_compile_opt` (neuronx-cc flags) is
    unused. `kernel[2]` (LNC=2) works as with `nki.jit`.
    """
    opts = _options(options)

    def wrap(fn: Callable[..., object]) -> BenchmarkedKernel:
        if isinstance(fn, BenchmarkedKernel):
            return BenchmarkedKernel(fn.kernel, opts)
        k = fn if isinstance(fn, Kernel) else jit(fn)
        return BenchmarkedKernel(k, opts)  # type: ignore[arg-type]

    return wrap if kernel is None else wrap(kernel)
