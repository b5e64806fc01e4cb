"""SIMULATED: the tuned library kernel, traced symbolically and scheduled by `tessera.sim`.

The kernel's block sizes come from `tessera.cost.tune` (the library's search, cached on
disk); the resulting estimate is memoised in memory for the process and on disk in
`cost.json` under `tessera.cost.cache.cache_dir()`, keyed like the tuning cache and ignored
when the kernel source or the timing model changes (`kernel_fingerprint`).

Breakdown: compute_s is the busy time of the busiest compute engine, memory_s the larger
of the HBM share's busy time and the DMA engines' busy time per engine, and overhead_s
whatever the timeline spends beyond both (latencies, dependencies, pipeline fill).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from tessera import hw
from tessera.cost.cache import JsonCache, cache_key, kernel_fingerprint
from tessera.cost.fidelity import CostEstimate, Fidelity, Latency, SimSummary, as_bound
from tessera.cost.roofline import roofline
from tessera.cost.tuned import tune
from tessera.hw import FrozenMap, MemoryKind
from tessera.hw.enums import COMPUTE_ENGINES, Engine
from tessera.kernels.registry import KernelDef, Op
from tessera.kernels.tune import TuneStep, input_specs, profile_config
from tessera.nki.dtypes import DType
from tessera.sim import Profile

COST_FILE = "cost.json"
_MEMO: dict[tuple[str, str], CostEstimate] = {}
_LOCK = threading.Lock()


def clear_memory_cache() -> None:
    """Forget the estimates memoised in this process (the disk cache stays)."""
    with _LOCK:
        _MEMO.clear()


def simulated(defn: KernelDef, shapes: FrozenMap[str, int], dtype: DType, chip: hw.ChipSpec,
              *, cache: bool = True, progress: Callable[[TuneStep], None] | None = None
              ) -> CostEstimate:
    """The SIMULATED estimate of `defn` at `shapes` on one core of `chip` (tuned first).

    With `cache=False` nothing is read from or written to disk or the memo: the kernel is
    tuned and profiled afresh."""
    key = cache_key(defn.name, shapes, dtype.name, chip.name)
    fingerprint = kernel_fingerprint(defn)
    memo_key = (fingerprint, key)
    store = JsonCache(COST_FILE)
    if cache:
        with _LOCK:
            hit = _MEMO.get(memo_key)
        if hit is not None:
            return hit
        payload = store.get(key, fingerprint)
        if payload is not None:
            try:
                est = _from_payload(payload, defn, shapes, dtype, chip)
            except (KeyError, TypeError, ValueError):
                est = None  # a malformed entry is a miss
            if est is not None:
                with _LOCK:
                    _MEMO[memo_key] = est
                return est
    tuned = tune(defn, shapes, dtype, chip.name, cache=cache, progress=progress)
    prof = tuned.profile
    if prof is None:  # the tuning came from its cache: profile the chosen configuration
        prof = profile_config(defn, input_specs(defn, shapes, dtype), chip.name, tuned.params)
    summary = _summary(prof, tuned.params, tuned.default_time_s, tuned.evaluated, chip)
    est = _estimate(defn, shapes, dtype, chip, prof.total_s, summary)
    if cache:
        store.put(key, fingerprint, to_payload(est))
        with _LOCK:
            _MEMO[memo_key] = est
    return est


def _summary(prof: Profile, params: Mapping[str, int | None], default_time_s: float | None,
             configurations: int, chip: hw.ChipSpec) -> SimSummary:
    busy = {u.resource: u.busy_s for u in prof.engines}
    return SimSummary(
        params=FrozenMap(params), default_time_s=default_time_s,
        configurations=configurations, instructions=prof.instructions, flops=prof.flops,
        hbm_read_bytes=prof.hbm_read_bytes, hbm_write_bytes=prof.hbm_write_bytes,
        flops_utilisation=prof.flops_utilisation, hbm_utilisation=prof.hbm_utilisation,
        critical=prof.critical_path.dominant, busy_s=FrozenMap(busy),
        peak_sbuf_bytes=prof.peak_sbuf_bytes, peak_psum_bytes=prof.peak_psum_bytes)


def _estimate(defn: KernelDef, shapes: FrozenMap[str, int], dtype: DType, chip: hw.ChipSpec,
              total_s: float, summary: SimSummary) -> CostEstimate:
    cores = 1  # library kernels are profiled on one core
    busy = summary.busy_s
    compute_s = max((busy.get(r, 0.0) for r in COMPUTE_ENGINES), default=0.0) / cores
    dma_s = busy.get(Engine.DMA, 0.0) / chip.core.dma.engines_per_core
    memory_s = max(busy.get(MemoryKind.HBM, 0.0), dma_s) / cores
    overhead_s = max(0.0, total_s - max(compute_s, memory_s))
    ranked = {b: s for b, s in busy.items() if b is not Engine.DMA}
    ranked[Engine.DMA] = dma_s
    bound = max(ranked, key=ranked.__getitem__) if ranked else Engine.UNKNOWN
    if overhead_s > max(compute_s, memory_s):
        bound = Latency.FIXED
    # the compulsory work and the peaks are the roofline's, so utilisations compare
    roof = roofline(defn, shapes, dtype, chip)
    return CostEstimate(
        op=defn.op, kernel=defn.name, shapes=shapes, dtype=dtype.name, chip=chip.name,
        fidelity=Fidelity.SIMULATED, time_s=total_s, compute_s=compute_s, memory_s=memory_s,
        overhead_s=overhead_s, bound=bound, flops=roof.flops, hbm_bytes=roof.hbm_bytes,
        peak_compute_per_s=roof.peak_compute_per_s,
        peak_hbm_bytes_per_s=roof.peak_hbm_bytes_per_s, simulated=summary)


def is_cached(defn: KernelDef, shapes: FrozenMap[str, int], dtype: DType,
              chip: hw.ChipSpec) -> bool:
    """Whether `simulated` would answer from memory or the disk cache (no tuning)."""
    key = cache_key(defn.name, shapes, dtype.name, chip.name)
    fingerprint = kernel_fingerprint(defn)
    with _LOCK:
        if (fingerprint, key) in _MEMO:
            return True
    return JsonCache(COST_FILE).get(key, fingerprint) is not None


def to_payload(est: CostEstimate) -> dict:
    """The cost-cache entry of a SIMULATED estimate (what `cost.json` stores)."""
    s = est.simulated
    assert s is not None
    return {"op": est.op.value, "time_s": est.time_s,
            "summary": {"params": dict(s.params), "default_time_s": s.default_time_s,
                        "configurations": s.configurations, "instructions": s.instructions,
                        "flops": s.flops, "hbm_read_bytes": s.hbm_read_bytes,
                        "hbm_write_bytes": s.hbm_write_bytes,
                        "flops_utilisation": s.flops_utilisation,
                        "hbm_utilisation": s.hbm_utilisation, "critical": s.critical.value,
                        "busy_s": {b.value: v for b, v in s.busy_s.items()},
                        "peak_sbuf_bytes": s.peak_sbuf_bytes,
                        "peak_psum_bytes": s.peak_psum_bytes}}


def _from_payload(payload: dict, defn: KernelDef, shapes: FrozenMap[str, int], dtype: DType,
                  chip: hw.ChipSpec) -> CostEstimate:
    if Op(payload["op"]) is not defn.op:
        raise ValueError("cached entry is for another op")
    s = payload["summary"]
    default = s["default_time_s"]
    summary = SimSummary(
        params=FrozenMap({k: None if v is None else int(v) for k, v in s["params"].items()}),
        default_time_s=None if default is None else float(default),
        configurations=int(s["configurations"]), instructions=int(s["instructions"]),
        flops=float(s["flops"]), hbm_read_bytes=int(s["hbm_read_bytes"]),
        hbm_write_bytes=int(s["hbm_write_bytes"]),
        flops_utilisation=float(s["flops_utilisation"]),
        hbm_utilisation=float(s["hbm_utilisation"]), critical=as_bound(s["critical"]),
        busy_s=FrozenMap({as_bound(k): float(v) for k, v in s["busy_s"].items()}),
        peak_sbuf_bytes=int(s["peak_sbuf_bytes"]), peak_psum_bytes=int(s["peak_psum_bytes"]))
    return _estimate(defn, shapes, dtype, chip, float(payload["time_s"]), summary)
