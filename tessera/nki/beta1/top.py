"""`neuronxcc.nki` (Beta 1): jit, baremetal, benchmark, profile, simulate_kernel.

From the Beta-1 pages ("nki.jit", "nki.baremetal", "nki.benchmark", "nki.profile",
"nki.simulate_kernel"): `@nki.jit(mode=...)` makes a kernel that runs in the mode named
(jax, torchxla, baremetal, benchmark, simulation, auto); here every mode runs on the CPU
and returns the kernel's outputs as arrays of the caller's kind (numpy in, numpy out;
torch in, torch out), since there is no device. `kernel[g0, g1, ...]` launches an SPMD
grid (`tessera.nki.beta1.kernel`). `nki.benchmark` and `nki.profile` report the timing
model's prediction (`tessera.sim`), not a measurement.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from tessera.nki import legacy as _legacy
from tessera.nki.beta1 import compiler, isa, language, typing
from tessera.nki.beta1.kernel import Beta1Kernel
from tessera.nki.errors import KernelUsageError
from tessera.nki.launch import Kernel, simulate
from tessera.nki.launch import trace as _trace
from tessera.nki.runtime import kernel_api
from tessera.nki.tensor import NkiTensor

# "trace" marks helper kernels called from inside other kernels (the nki-samples do so)
MODES = ("auto", "jax", "torchxla", "baremetal", "benchmark", "simulation", "trace")
tensor = NkiTensor


class FrameworkKernel:
    """`nki.FrameworkKernel`: the base the vendor's framework integrations derive from;
    kernels here run through `nki.jit` (no framework is involved on the CPU)."""


def _kernel(fn: object, mode: str = "auto", options: dict | None = None) -> Beta1Kernel:
    if isinstance(fn, Beta1Kernel):
        return fn
    if isinstance(fn, Kernel):
        return Beta1Kernel(fn.fn, mode=mode, compile_config=fn.compile_config)
    if not callable(fn):
        raise KernelUsageError(f"nki.jit needs a function, got {type(fn).__name__}")
    return Beta1Kernel(fn, mode=mode)


def jit(func: Callable[..., object] | None = None, mode: str = "auto",
        **kwargs: object) -> object:
    """`@nki.jit` / `@nki.jit(mode="simulation")`: a Beta-1 kernel; `kernel[grid](...)`
    launches an SPMD grid. Other keywords (`platform_target`, `kernel_return`, ...) are
    accepted; the chip comes from NEURON_PLATFORM_TARGET_OVERRIDE / the kernel file."""
    if mode not in MODES:
        raise KernelUsageError(f"nki.jit: mode {mode!r} is not one of {', '.join(MODES)}")
    if func is None:
        return lambda f: _kernel(f, mode, kwargs)
    return _kernel(func, mode, kwargs)


def baremetal(kernel: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.baremetal`: ran a kernel on a NeuronDevice with numpy arrays; here on the CPU
    (`save_neff_name`, `save_trace_name`, `artifacts_dir`, ... are accepted and unused)."""
    if kernel is None:
        return lambda f: _kernel(f, "baremetal")
    return _kernel(kernel, "baremetal")


def trace(func: Callable[..., object] | None = None, **kwargs: object) -> object:
    """`@nki.trace`: the older decorator of a Beta-1 kernel (as `nki.jit`); used with
    `nki.simulate_kernel(kernel, *arrays)`, output arrays passed as arguments included."""
    return jit(func, **kwargs)


def simulate_kernel(kernel: object, *args: object, **kwargs: object) -> object:
    """Run `kernel` (a function or `kernel[grid]`) on the CPU and return its outputs."""
    return simulate(_kernel(kernel))(*args, **kwargs)


@kernel_api
def benchmark(kernel: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.benchmark(warmup=10, iters=100, ...)`: calls run the kernel and keep the
    timing model's latency in `kernel.benchmark_result.nc_latency` (see
    `tessera.nki.legacy.benchmark`)."""
    wrap = _legacy.benchmark(**options)
    if kernel is None:
        return lambda f: wrap(_kernel(f, "benchmark"))  # type: ignore[operator]
    return wrap(_kernel(kernel, "benchmark"))  # type: ignore[operator]


_PROFILE_OPTIONS = ("working_directory", "save_neff_name", "save_trace_name",
                    "additional_compile_opt", "overwrite", "profile_nth")


class ProfiledKernel:
    """A kernel wrapped by `nki.profile`: a call runs it and writes the predicted timeline
    (Chrome/Perfetto JSON) to `working_directory/save_trace_name`; it returns None, as the
    page says (outputs of a profiled run are not meaningful)."""

    def __init__(self, kernel: Beta1Kernel, options: dict[str, object]) -> None:
        unknown = sorted(set(options) - set(_PROFILE_OPTIONS))
        if unknown:
            raise KernelUsageError(f"nki.profile: unknown option(s) {', '.join(unknown)}; the "
                                   f"options are {', '.join(_PROFILE_OPTIONS)}")
        directory = options.get("working_directory")
        if not isinstance(directory, str | Path) or not Path(directory).is_absolute():
            raise KernelUsageError("nki.profile: working_directory must be an absolute path "
                                   f"(got {directory!r})")
        self.kernel = kernel
        self.directory = Path(directory)
        self.trace_name = str(options.get("save_trace_name") or "profile.ntff")
        self.overwrite = bool(options.get("overwrite", False))

    def __getitem__(self, grid: object) -> ProfiledKernel:
        out = ProfiledKernel.__new__(ProfiledKernel)
        out.__dict__.update(self.__dict__, kernel=self.kernel[grid])
        return out

    def __call__(self, *args: object, **kwargs: object) -> None:
        path = self.directory / self.trace_name
        if path.exists() and not self.overwrite:
            raise KernelUsageError(f"nki.profile: {path} exists; pass overwrite=True")
        result = _trace(self.kernel)(*args, **kwargs)
        profile = importlib.import_module("tessera.sim").schedule(result)
        self.directory.mkdir(parents=True, exist_ok=True)
        importlib.import_module("tessera.report").write_chrome_trace(
            profile, path, kernel=self.kernel.fn.__name__)


def profile(func: Callable[..., object] | None = None, **options: object) -> object:
    """`@nki.profile(working_directory=..., save_trace_name="profile.ntff", ...)`."""
    if func is None:
        return lambda f: ProfiledKernel(_kernel(f), options)
    return ProfiledKernel(_kernel(func), options)


__all__ = ["FrameworkKernel", "baremetal", "benchmark", "compiler", "isa", "jit", "language",
           "profile", "simulate_kernel", "tensor", "trace", "typing"]
