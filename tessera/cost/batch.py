"""`estimate_many`: many SIMULATED estimates at once, the untuned ones in parallel.

Tuning a large kernel shape takes tens of seconds (each configuration is traced and
scheduled), and a model needs a dozen new shapes the first time. The shapes are
independent, so the ones missing from the cost cache are tuned in a pool of worker
processes; each worker returns its estimate's cache entry and the parent, the only writer,
stores them in `cost.json`. Workers are forked where the platform can (they run only numpy
and the timing model's compiled loops, never torch), since `spawn` would re-run the
caller's script in every worker unless it has an `if __name__ == "__main__":` guard.
Every answer is then read through `estimate` as usual, so a batch gives exactly the
estimates one-by-one calls give.

    >>> from tessera.cost.batch import EstimateRequest, estimate_many
    >>> reqs = [EstimateRequest("matmul", {"M": 2048, "K": 4096, "N": 4096}, "bfloat16"),
    ...         EstimateRequest("rmsnorm", {"rows": 2048, "cols": 4096}, "bfloat16")]
    >>> estimate_many(reqs, "trn2", "simulated", workers=2)
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from tessera.cost.cache import JsonCache, cache_key, kernel_fingerprint
from tessera.cost.estimate import estimate
from tessera.cost.fidelity import CostEstimate, Fidelity
from tessera.cost.simulated import COST_FILE, is_cached, to_payload
from tessera.hw import FrozenMap
from tessera.kernels.tune import resolve
from tessera.nki.dtypes import to_dtype
from tessera.nki.runtime import default_chip


@dataclass(frozen=True)
class EstimateRequest:
    """One `estimate` question: a library op, its shapes and dtype."""

    op: str
    shapes: Mapping[str, int] = field(hash=False)
    dtype: str = "bfloat16"

    def key(self) -> tuple[str, tuple[tuple[str, int], ...], str]:
        return self.op, tuple(sorted(self.shapes.items())), self.dtype


@dataclass(frozen=True)
class BatchStep:
    """Progress of `estimate_many`: `done` of `total` untuned shapes are tuned, the last
    being `request`."""

    request: EstimateRequest
    done: int
    total: int


def estimate_many(requests: Sequence[EstimateRequest], chip: str | None = None,
                  fidelity: Fidelity | str = Fidelity.SIMULATED, *, workers: int | None = None,
                  progress: Callable[[BatchStep], None] | None = None
                  ) -> tuple[CostEstimate, ...]:
    """The estimates of `requests`, in order (see the module docstring).

    `workers`: processes for the untuned shapes (default: the machine's cores; 1 tunes in
    this process). ROOFLINE needs no tuning and answers directly.
    """
    chip_name = chip or default_chip()
    fid = Fidelity(fidelity)
    if fid is Fidelity.SIMULATED:
        tune_missing(requests, chip_name, workers=workers, progress=progress)
    return tuple(estimate(r.op, r.shapes, r.dtype, chip_name, fid) for r in requests)


def tune_missing(requests: Sequence[EstimateRequest], chip: str | None = None, *,
                 workers: int | None = None,
                 progress: Callable[[BatchStep], None] | None = None) -> int:
    """Tune, in a pool of `workers` processes, the SIMULATED shapes of `requests` that the
    cost cache lacks; returns how many. With one worker, or one shape missing, nothing is
    done here: `estimate` tunes it in this process (with its per-configuration progress)."""
    chip_name = chip or default_chip()
    unique = {r.key(): r for r in requests}
    for request in unique.values():  # a bad op, shape, dtype or chip: CostError, as estimate
        estimate(request.op, request.shapes, request.dtype, chip_name, Fidelity.ROOFLINE)
    missing = [r for r in unique.values() if not _cached(r, chip_name)]
    count = (os.cpu_count() or 1) if workers is None else max(1, workers)
    if count < 2 or len(missing) < 2:
        return 0
    _tune_in_pool(missing, chip_name, min(count, len(missing)), progress)
    return len(missing)


def _cached(request: EstimateRequest, chip: str) -> bool:
    from tessera import hw

    return is_cached(resolve(request.op), FrozenMap(request.shapes), to_dtype(request.dtype),
                     hw.load_chip(chip))


def _tune_in_pool(missing: list[EstimateRequest], chip: str, workers: int,
                  progress: Callable[[BatchStep], None] | None) -> None:
    store = JsonCache(COST_FILE)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_tune_one, r.op, dict(r.shapes), r.dtype, chip): r
                   for r in missing}
        for done, future in enumerate(as_completed(futures), start=1):
            request = futures[future]
            payload = future.result()
            defn = resolve(request.op)
            key = cache_key(defn.name, request.shapes, to_dtype(request.dtype).name, chip)
            store.put(key, kernel_fingerprint(defn), payload)
            if progress is not None:
                progress(BatchStep(request, done, len(missing)))


def _tune_one(op: str, shapes: dict[str, int], dtype: str, chip: str) -> dict:
    """In a worker: tune and profile one shape; its cost-cache entry (the parent stores it)."""
    return to_payload(estimate(op, shapes, dtype, chip, Fidelity.SIMULATED, cache=False))
