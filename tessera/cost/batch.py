"""`estimate_many`: many SIMULATED estimates at once, the untuned ones in parallel.

Tuning a large kernel shape takes tens of seconds (each configuration is traced and
scheduled), and a model needs a dozen new shapes the first time. The shapes are
independent, so the ones missing from the cost cache are tuned side by side by a
`BatchExecutor` (`tessera.cost.executor`): a pool of worker processes on this machine (the
default), or Ray tasks on a cluster. Each worker returns its estimate's cache entry and the
parent, the only writer, stores them in `cost.json` (so a cluster needs no shared disk).
Local workers are forked where the platform can and Ray has not run in this process (they
run only numpy and the timing model's compiled loops, never torch), since `spawn` would
re-run the caller's script in every worker unless it has an `if __name__ == "__main__":`
guard. Every answer is then read
through `estimate` as usual, so a batch gives exactly the estimates one-by-one calls give.

    >>> from tessera.cost.batch import EstimateRequest, estimate_many
    >>> from tessera.cost.executor import BatchExecutor
    >>> reqs = [EstimateRequest("matmul", {"M": 2048, "K": 4096, "N": 4096}, "bfloat16"),
    ...         EstimateRequest("rmsnorm", {"rows": 2048, "cols": 4096}, "bfloat16")]
    >>> estimate_many(reqs, "trn2", "simulated", workers=2)
    >>> estimate_many(reqs, "trn2", "simulated", executor=BatchExecutor.ray("auto"))
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from tessera.cost.cache import JsonCache, cache_key, kernel_fingerprint
from tessera.cost.estimate import estimate
from tessera.cost.executor import BatchExecutor, ExecutorKind, resolve_executor
from tessera.cost.fidelity import CostError, CostEstimate, Fidelity
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
                  executor: BatchExecutor | None = None,
                  progress: Callable[[BatchStep], None] | None = None
                  ) -> tuple[CostEstimate, ...]:
    """The estimates of `requests`, in order (see the module docstring).

    `workers`: processes for the untuned shapes (default: the machine's cores; 1 tunes in
    this process); or `executor` instead, e.g. `BatchExecutor.ray(address)`. ROOFLINE needs
    no tuning and answers directly.
    """
    chip_name = chip or default_chip()
    fid = Fidelity(fidelity)
    if fid is Fidelity.SIMULATED:
        tune_missing(requests, chip_name, workers=workers, executor=executor,
                     progress=progress)
    return tuple(estimate(r.op, r.shapes, r.dtype, chip_name, fid) for r in requests)


def tune_missing(requests: Sequence[EstimateRequest], chip: str | None = None, *,
                 workers: int | None = None, executor: BatchExecutor | None = None,
                 progress: Callable[[BatchStep], None] | None = None) -> int:
    """Tune the SIMULATED shapes of `requests` that the cost cache lacks, side by side;
    returns how many were tuned so.

    LOCAL (`workers=`, or `BatchExecutor.local`): with one worker, or one shape missing,
    nothing is done here: `estimate` tunes it in this process (with its per-configuration
    progress). RAY: every missing shape goes to the cluster (the user chose it because this
    machine is the slow one), and Ray is not started when none is missing.
    """
    plan = resolve_executor(executor, workers)
    chip_name = chip or default_chip()
    unique = {r.key(): r for r in requests}
    for request in unique.values():  # a bad op, shape, dtype or chip: CostError, as estimate
        estimate(request.op, request.shapes, request.dtype, chip_name, Fidelity.ROOFLINE)
    missing = [r for r in unique.values() if not _cached(r, chip_name)]
    if plan.kind is ExecutorKind.RAY:
        if not missing:
            return 0
        plan.check()  # ray installed, address reachable: a one-line error in seconds
    elif min(plan.workers or os.cpu_count() or 1, len(missing)) < 2:
        return 0
    _tune_elsewhere(missing, chip_name, plan, progress)
    return len(missing)


def _cached(request: EstimateRequest, chip: str) -> bool:
    from tessera import hw

    return is_cached(resolve(request.op), FrozenMap(request.shapes), to_dtype(request.dtype),
                     hw.load_chip(chip))


def _tune_elsewhere(missing: list[EstimateRequest], chip: str, plan: BatchExecutor,
                    progress: Callable[[BatchStep], None] | None) -> None:
    """Tune `missing` with `plan`'s workers; store each entry here as it comes back."""
    store = JsonCache(COST_FILE)
    with contextlib.closing(_outcomes(missing, chip, plan)) as outcomes:
        for done, (index, (fingerprint, payload)) in enumerate(outcomes, start=1):
            request = missing[index]
            defn = resolve(request.op)
            here = kernel_fingerprint(defn)
            if fingerprint != here:
                # a node with another Tessera would poison the cache with its numbers
                raise CostError(f"a worker tuned {defn.name} with another kernel or timing "
                                f"model (fingerprint {fingerprint}, here {here}): install "
                                "the same Tessera on every node")
            key = cache_key(defn.name, request.shapes, to_dtype(request.dtype).name, chip)
            store.put(key, here, payload)
            if progress is not None:
                progress(BatchStep(request, done, len(missing)))


def _outcomes(missing: list[EstimateRequest], chip: str, plan: BatchExecutor
              ) -> Iterator[tuple[int, tuple[str, dict]]]:
    """(index into `missing`, `_tune_one`'s answer), in the order the workers finish."""
    calls = [(r.op, dict(r.shapes), r.dtype, chip) for r in missing]
    if plan.kind is ExecutorKind.RAY:
        from tessera.cost.ray_tasks import run_tasks  # Ray is imported only when chosen

        assert plan.ray_address is not None
        yield from run_tasks(_tune_one, calls, plan.ray_address, plan.workers)
        return
    methods = multiprocessing.get_all_start_methods()
    # once Ray has run in this process its native library (threads, sockets) is copied into
    # a forked child, which then crashes at random (a segfault in _raylet): start clean
    # workers instead
    forkable = "fork" in methods and "ray" not in sys.modules
    context = multiprocessing.get_context("fork" if forkable else "spawn")
    count = min(plan.workers or os.cpu_count() or 1, len(missing))
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = {pool.submit(_tune_one, *call): index for index, call in enumerate(calls)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _tune_one(op: str, shapes: dict[str, int], dtype: str, chip: str) -> tuple[str, dict]:
    """In a worker: tune and profile one shape; (the kernel's fingerprint here, its
    cost-cache entry). The parent checks the one and stores the other."""
    est = estimate(op, shapes, dtype, chip, Fidelity.SIMULATED, cache=False)
    return kernel_fingerprint(resolve(op)), to_payload(est)
