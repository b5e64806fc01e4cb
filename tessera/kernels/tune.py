"""Block-size search for library kernels by symbolic profiling.

    >>> from tessera.kernels import tune
    >>> r = tune("matmul", {"M": 4096, "K": 4096, "N": 4096}, "bfloat16", "trn1")
    >>> r.params, r.time_s, r.default_time_s

Each configuration of a `KernelDef`'s `tunables` is traced symbolically
(`nki.trace(kernel, symbolic=True)(*specs, **params)`) and scheduled by `sim.schedule`,
which is what `sim.profile` does minus the keyword arguments it cannot forward. Small
spaces (at most `EXHAUSTIVE_LIMIT` configurations) are searched exhaustively; larger ones by
coordinate descent from the defaults. The default configuration is always evaluated and is
kept unless another one is strictly faster, so the result is never slower than the default.

The search itself keeps nothing: `tessera.cost.tune` is the same search with its results
cached on disk (the cost layer owns the cache).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from tessera import hw, nki, sim
from tessera.hw import FrozenMap
from tessera.kernels.registry import KernelDef, Op, get
from tessera.nki.dtypes import DType, to_dtype
from tessera.nki.errors import NkiError

EXHAUSTIVE_LIMIT = 32  # configurations; above this, coordinate descent
MAX_DESCENT_PASSES = 3
_MAX_REASONS = 3
# what a configuration may legitimately raise: a hardware rule (tile too big, PSUM bank
# overflow), the allocator running out of SBUF/PSUM, or the kernel's own shape checks
_SKIPPABLE = (NkiError, sim.SimError, ValueError)


class TuneError(Exception):
    """No configuration of a kernel could run at the requested shapes."""


@dataclass(frozen=True)
class TuneStep:
    """Progress report after one configuration was evaluated (for a CLI progress bar)."""

    kernel: str
    evaluated: int
    planned: int  # exhaustive: the whole space; descent: configurations of the first pass
    params: FrozenMap[str, int | None]
    time_s: float | None  # None: the configuration was skipped
    error: str | None


@dataclass(frozen=True)
class TuneResult:
    """The fastest configuration found for one (kernel, shapes, dtype, chip)."""

    kernel: str
    shapes: FrozenMap[str, int]
    dtype: str
    chip: str
    params: FrozenMap[str, int | None]  # None: the kernel chooses (its own default)
    time_s: float
    default_time_s: float | None  # None when the default configuration cannot run
    evaluated: int  # configurations profiled by the search that produced this result
    skipped: int  # configurations that raised and were left out
    skip_reasons: tuple[str, ...] = ()
    from_cache: bool = False
    profile: sim.Profile | None = field(default=None, compare=False, repr=False)

    @property
    def speedup(self) -> float:
        """Default time / tuned time (1.0 when the default could not run)."""
        return self.default_time_s / self.time_s if self.default_time_s else 1.0


# --------------------------------------------------------------------- profiling
def resolve(kernel_or_op: KernelDef | Op | str) -> KernelDef:
    """The `KernelDef` for a definition, an `Op`, or an op name."""
    return kernel_or_op if isinstance(kernel_or_op, KernelDef) else get(kernel_or_op)


def check_shapes(defn: KernelDef, shapes: Mapping[str, int]) -> FrozenMap[str, int]:
    """`shapes` as a frozen map after checking it names exactly the kernel's shape keys."""
    given, wanted = set(shapes), set(defn.shape_keys)
    if given != wanted:
        raise KeyError(f"{defn.name} takes shapes {', '.join(defn.shape_keys)}; got "
                       f"{', '.join(sorted(given)) or 'none'} (missing: "
                       f"{', '.join(sorted(wanted - given)) or '-'}, unknown: "
                       f"{', '.join(sorted(given - wanted)) or '-'})")
    bad = {k: v for k, v in shapes.items() if int(v) != v or v < 1}
    if bad:
        raise ValueError(f"{defn.name}: shapes must be positive integers, got {bad}")
    return FrozenMap({k: int(shapes[k]) for k in defn.shape_keys})


def input_specs(defn: KernelDef, shapes: Mapping[str, int], dtype: DType
                ) -> tuple[object, ...]:
    """The kernel's inputs as `TensorSpec`s (from `input_specs`, else from `make_inputs`)."""
    if defn.input_specs is not None:
        return tuple(defn.input_specs(shapes, dtype))
    arrays = defn.make_inputs(shapes, dtype, np.random.default_rng(0))
    return tuple(nki.TensorSpec(a.shape, a.dtype) for a in arrays)


def profile_config(defn: KernelDef, specs: tuple[object, ...], chip: str,
                   params: Mapping[str, int | None]) -> sim.Profile:
    """Symbolic profile of the kernel with keyword parameters `params`.

    `sim.profile` forwards no keyword arguments to the kernel, so this does its two steps
    itself: `nki.trace(kernel, symbolic=True, chip=chip)(*specs, **params)`, then
    `sim.schedule(trace, chip)`."""
    trace = nki.trace(defn.kernel, symbolic=True, chip=chip)(*specs, **dict(params))
    return sim.schedule(trace, chip)


def default_params(defn: KernelDef) -> dict[str, int | None]:
    """`defaults`, then the kernel signature's defaults, then the first candidate."""
    fn = getattr(defn.kernel, "fn", defn.kernel)
    signature = inspect.signature(fn).parameters
    chosen = dict(defn.defaults)
    for name, values in defn.tunables.items():
        if name in chosen:
            continue
        p = signature.get(name)
        has_default = p is not None and p.default is not inspect.Parameter.empty
        chosen[name] = p.default if has_default else values[0]  # type: ignore[union-attr]
    return chosen


def _axes(defn: KernelDef, start: Mapping[str, int | None]
          ) -> dict[str, tuple[int | None, ...]]:
    # the default first (it may be None: "let the kernel choose"), then the candidates
    return {name: (start[name], *sorted(v for v in set(values) if v != start[name]))
            for name, values in defn.tunables.items()}


def _product(axes: Mapping[str, tuple[int | None, ...]], start: Mapping[str, int | None]
             ) -> Iterator[dict[str, int | None]]:
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        yield {**start, **dict(zip(names, combo, strict=True))}


def tune(kernel_or_op: KernelDef | Op | str, shapes: Mapping[str, int],
         dtype: object = "bfloat16", chip: str | None = None, *,
         progress: Callable[[TuneStep], None] | None = None) -> TuneResult:
    """Search the kernel's tunable block sizes for `shapes`/`dtype` on `chip`.

    Returns the fastest configuration (never slower than the defaults); configurations
    that raise a hardware-rule, capacity or shape error are skipped and counted. `progress`
    is called after each evaluated configuration. Raises `TuneError` when no configuration
    runs. `tessera.cost.tune` caches the result on disk."""
    defn = resolve(kernel_or_op)
    frozen_shapes = check_shapes(defn, shapes)
    dt = to_dtype(dtype)
    chip_name = hw.load_chip(chip or nki.default_chip()).name
    specs = input_specs(defn, frozen_shapes, dt)
    return _search(defn, specs, chip_name, frozen_shapes, dt.name, progress)


def _search(defn: KernelDef, specs: tuple[object, ...], chip: str,
            shapes: FrozenMap[str, int], dtype: str,
            progress: Callable[[TuneStep], None] | None) -> TuneResult:
    start = default_params(defn)
    axes = _axes(defn, start)
    space = 1
    for values in axes.values():
        space *= len(values)
    exhaustive = space <= EXHAUSTIVE_LIMIT
    planned = space if exhaustive else 1 + sum(len(v) - 1 for v in axes.values())
    seen: dict[tuple, float | None] = {}
    reasons: list[str] = []
    best: dict[str, int | None] = dict(start)
    best_time: float | None = None
    best_profile: sim.Profile | None = None

    def consider(params: dict[str, int | None]) -> bool:
        """Profile `params` (once); True when it becomes the best so far."""
        nonlocal best, best_time, best_profile
        ident = tuple(sorted(params.items()))
        if ident in seen:
            return False
        error = None
        try:
            prof = profile_config(defn, specs, chip, params)
        except _SKIPPABLE as err:
            prof = None
            error = f"{_describe(params)}: {type(err).__name__}: {err}"
            if len(reasons) < _MAX_REASONS:
                reasons.append(error[:300])
        time_s = None if prof is None else prof.total_s
        seen[ident] = time_s
        if progress is not None:
            progress(TuneStep(defn.name, len(seen), planned, FrozenMap(params), time_s, error))
        # strictly faster only: ties keep the earlier (default-first) configuration, and
        # only the best profile is kept (a large kernel's timeline is tens of MB)
        if time_s is not None and (best_time is None or time_s < best_time):
            best, best_time, best_profile = dict(params), time_s, prof
            return True
        return False

    consider(dict(start))
    default_time = seen[tuple(sorted(start.items()))]
    if exhaustive:
        for params in _product(axes, start):
            consider(params)
    else:
        for _ in range(MAX_DESCENT_PASSES):
            improved = False
            for name, values in axes.items():
                anchor = dict(best)
                for value in values:
                    improved |= consider({**anchor, name: value})
            if not improved:
                break
    skipped = sum(1 for t in seen.values() if t is None)
    if best_time is None:
        raise TuneError(f"{defn.name} at {dict(shapes)} {dtype} on {chip}: none of "
                        f"{len(seen)} configurations ran; first failures: {reasons}")
    return TuneResult(defn.name, shapes, dtype, chip, FrozenMap(best), best_time,
                      default_time, len(seen), skipped, tuple(reasons), False, best_profile)


def _describe(params: Mapping[str, int | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "(no parameters)"
