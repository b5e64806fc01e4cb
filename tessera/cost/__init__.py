"""Op cost at a chosen fidelity: the only interface the planner and compiler ask.

    >>> from tessera import cost
    >>> e = cost.estimate("matmul", {"M": 4096, "K": 4096, "N": 4096}, "bfloat16", "trn1")
    >>> e.time_s, e.compute_s, e.memory_s, e.overhead_s, e.bound
    >>> cost.estimate(..., fidelity=cost.Fidelity.SIMULATED).simulated.params

ROOFLINE is a formula over `tessera.hw` (`roofline.py`); SIMULATED tunes the library
kernel and profiles it symbolically with `tessera.sim` (`simulated.py`), memoised in memory
and on disk. `cost.tune` is the library's block-size search with the disk cache
(`cache.py`: `cache_dir()`, JSON files keyed by fingerprints). `batch.estimate_many`
answers many at once, tuning the missing shapes side by side on a `BatchExecutor`
(`executor.py`: local processes, or Ray tasks with `tessera[ray]`). See docs/cost.md.
"""

from tessera.cost.cache import cache_dir
from tessera.cost.estimate import estimate
from tessera.cost.fidelity import (
    Bound,
    CostError,
    CostEstimate,
    Fidelity,
    Latency,
    SimSummary,
    as_bound,
)
from tessera.cost.roofline import (
    TENSOR_OPS,
    fixed_overhead_s,
    roofline,
    streaming_peak_per_s,
    tensor_peak_flops,
)
from tessera.cost.simulated import COST_FILE, clear_memory_cache, simulated
from tessera.cost.tuned import TUNE_FILE, tune

__all__ = [
    "COST_FILE",
    "TENSOR_OPS",
    "TUNE_FILE",
    "Bound",
    "CostError",
    "CostEstimate",
    "Fidelity",
    "Latency",
    "SimSummary",
    "as_bound",
    "cache_dir",
    "clear_memory_cache",
    "estimate",
    "fixed_overhead_s",
    "roofline",
    "simulated",
    "streaming_peak_per_s",
    "tensor_peak_flops",
    "tune",
]
