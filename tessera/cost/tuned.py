"""`tune` with a memory: the kernel library's block-size search, cached on disk.

    >>> from tessera import cost
    >>> r = cost.tune("matmul", {"M": 4096, "K": 4096, "N": 4096}, "bfloat16", "trn1")
    >>> r.params, r.time_s, r.default_time_s, r.from_cache

The search is `tessera.kernels.tune`; the best configuration per (kernel, shapes, dtype,
chip) is kept in `tune.json` under `cache_dir()` with the fingerprint of the kernel and the
model that timed it (`tessera.cost.cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tessera import hw
from tessera.cost.cache import JsonCache, cache_key, kernel_fingerprint
from tessera.hw import FrozenMap
from tessera.kernels.registry import KernelDef, Op
from tessera.kernels.tune import TuneResult, TuneStep, check_shapes, resolve
from tessera.kernels.tune import tune as search
from tessera.nki.dtypes import to_dtype
from tessera.nki.runtime import default_chip

TUNE_FILE = "tune.json"


def tune(kernel_or_op: KernelDef | Op | str, shapes: Mapping[str, int],
         dtype: object = "bfloat16", chip: str | None = None, *, cache: bool = True,
         progress: Callable[[TuneStep], None] | None = None) -> TuneResult:
    """`tessera.kernels.tune`, answered from the disk cache when the same kernel source,
    model, shapes, dtype and chip were tuned before (`from_cache` is then True); a new
    result is stored. `cache=False` neither reads nor writes."""
    defn = resolve(kernel_or_op)
    frozen_shapes = check_shapes(defn, shapes)
    dt = to_dtype(dtype)
    chip_name = hw.load_chip(chip or default_chip()).name
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
    result = search(defn, frozen_shapes, dt, chip_name, progress=progress)
    if store is not None:
        store.put(key, fingerprint, _to_payload(result))
    return result


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
