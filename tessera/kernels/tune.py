"""Block-size search for library kernels by symbolic profiling, cached on disk.

    >>> from tessera.kernels import tune
    >>> r = tune("matmul", {"M": 4096, "K": 4096, "N": 4096}, "bfloat16", "trn1")
    >>> r.params, r.time_s, r.default_time_s

Each configuration of a `KernelDef`'s `tunables` is traced symbolically
(`nki.trace(kernel, symbolic=True)(*specs, **params)`) and scheduled by `sim.schedule`,
which is what `sim.profile` does minus the keyword arguments it cannot forward. Small
spaces (at most `EXHAUSTIVE_LIMIT` configurations) are searched exhaustively; larger ones by
coordinate descent from the defaults. The default configuration is always evaluated and is
kept unless another one is strictly faster, so the result is never slower than the default.

The best configuration per (kernel, shapes, dtype, chip) is stored in `tune.json` under
`cache_dir()`, together with a fingerprint of the kernel's source and of the model that
timed it (nki, sim, calibration and hardware presets): an entry whose fingerprint differs is
ignored and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera import hw, nki, sim
from tessera.hw import FrozenMap
from tessera.kernels.registry import KernelDef, Op, get
from tessera.nki.dtypes import DType, to_dtype
from tessera.nki.errors import NkiError

ENV_CACHE_DIR = "TESSERA_CACHE_DIR"
EXHAUSTIVE_LIMIT = 32  # configurations; above this, coordinate descent
MAX_DESCENT_PASSES = 3
TUNE_FILE = "tune.json"
CACHE_SCHEMA = 1
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


# --------------------------------------------------------------------- the disk cache
def cache_dir() -> Path:
    """Tessera's cache folder: $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera, else
    ~/.cache/tessera (created on first write)."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tessera"


class JsonCache:
    """A JSON file of entries keyed by text, each tagged with the fingerprint it is valid for.

    Writes re-read the file and replace it atomically, so concurrent writers lose at most
    each other's newest entries, never the file. An unreadable file counts as empty.
    """

    def __init__(self, name: str) -> None:
        self.path = cache_dir() / name

    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str, fingerprint: str) -> dict | None:
        """The payload stored under `key`, if it was stored for this `fingerprint`."""
        entry = self._load().get(key)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
            return None
        payload = entry.get("value")
        return payload if isinstance(payload, dict) else None

    def put(self, key: str, fingerprint: str, payload: dict) -> None:
        """Store `payload` under `key` (replacing any entry, stale or not)."""
        entries = self._load()
        entries[key] = {"fingerprint": fingerprint, "value": payload}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"schema": CACHE_SCHEMA, "entries": entries}, f, indent=1,
                          sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cache_key(name: str, shapes: Mapping[str, int], dtype: str, chip: str) -> str:
    """`name|K=..,M=..|dtype|chip`, with the shapes sorted by name."""
    return "|".join([name, ",".join(f"{k}={shapes[k]}" for k in sorted(shapes)), dtype, chip])


# --------------------------------------------------------------------- fingerprints
_PACKAGE = Path(__file__).resolve().parents[1]
_MODEL_PARTS = (("nki", "*.py"), ("sim", "*.py"), ("sim/calibration", "*.yaml"),
                ("hw", "*.py"), ("hw/presets", "*.yaml"))


@functools.cache
def model_fingerprint() -> str:
    """Hash of everything that turns a kernel into a time: the kernel language (what it
    records), the timing model and its calibration, and the hardware presets."""
    digest = hashlib.sha256()
    for folder, pattern in _MODEL_PARTS:
        for path in sorted((_PACKAGE / folder).rglob(pattern)):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kernel_fingerprint(defn: KernelDef) -> str:
    """Hash of the kernel's module source, its tunables/defaults and `model_fingerprint()`."""
    fn = getattr(defn.kernel, "fn", defn.kernel)
    digest = hashlib.sha256(model_fingerprint().encode())
    digest.update(f"{defn.name}|{getattr(fn, '__qualname__', '')}".encode())
    digest.update(repr(sorted((k, tuple(v)) for k, v in defn.tunables.items())).encode())
    digest.update(repr(sorted(defn.defaults.items())).encode())
    try:
        source = inspect.getsourcefile(fn)
        digest.update(Path(source).read_bytes() if source else b"")
    except (TypeError, OSError):
        digest.update(b"<no source>")
    return digest.hexdigest()[:16]


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
         dtype: object = "bfloat16", chip: str = "trn1", *, cache: bool = True,
         progress: Callable[[TuneStep], None] | None = None) -> TuneResult:
    """Search the kernel's tunable block sizes for `shapes`/`dtype` on `chip`.

    Returns the fastest configuration (never slower than the defaults); configurations
    that raise a hardware-rule, capacity or shape error are skipped and counted. With
    `cache`, a previous result for the same kernel source, model, shapes, dtype and chip is
    returned without profiling, and a new result is stored. `progress` is called after
    each evaluated configuration. Raises `TuneError` when no configuration runs."""
    defn = resolve(kernel_or_op)
    frozen_shapes = check_shapes(defn, shapes)
    dt = to_dtype(dtype)
    chip_name = hw.load_chip(chip).name
    key = cache_key(defn.name, frozen_shapes, dt.name, chip_name)
    fingerprint = kernel_fingerprint(defn)
    store = JsonCache(TUNE_FILE) if cache else None
    if store is not None:
        hit = store.get(key, fingerprint)
        if hit is not None:
            try:
                return _from_payload(hit, defn.name, frozen_shapes, dt.name, chip_name)
            except (KeyError, TypeError, ValueError, AttributeError):
                pass  # a malformed entry is a miss; the search below replaces it
    specs = input_specs(defn, frozen_shapes, dt)
    result = _search(defn, specs, chip_name, frozen_shapes, dt.name, progress)
    if store is not None:
        store.put(key, fingerprint, _to_payload(result))
    return result


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


def _to_payload(result: TuneResult) -> dict:
    return {"params": dict(result.params), "time_s": result.time_s,
            "default_time_s": result.default_time_s, "evaluated": result.evaluated,
            "skipped": result.skipped, "skip_reasons": list(result.skip_reasons)}


def _from_payload(payload: dict, name: str, shapes: FrozenMap[str, int], dtype: str,
                  chip: str) -> TuneResult:
    default = payload.get("default_time_s")
    return TuneResult(name, shapes, dtype, chip,
                      FrozenMap({k: None if v is None else int(v)
                                 for k, v in payload["params"].items()}),
                      float(payload["time_s"]), None if default is None else float(default),
                      int(payload.get("evaluated", 0)), int(payload.get("skipped", 0)),
                      tuple(payload.get("skip_reasons", ())), True, None)
