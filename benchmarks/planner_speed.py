"""Planner speed: time per evaluated configuration and a full sweep, side by side with a
naive planner that re-evaluates everything for every configuration.

Targets (issue 15): <= 1 ms per evaluated configuration; the full sweep of Llama-3-70B
(sequence 8192, global batch 1024) over 1..64 trn1.32xlarge instances <= 10 s on a 2-core
machine. The naive baseline builds every configuration from scratch (no block, stage,
rank-group, op-time or collective caches), timed on a sample of the same sweep's
configurations and extrapolated to its size.

    python benchmarks/planner_speed.py            # both, ~1 minute
    python benchmarks/planner_speed.py --sample 100
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace

from tessera import net
from tessera.plan import block_time, comm, devices, step
from tessera.plan.devices import Device
from tessera.plan.search import _valid, configs, train
from tessera.plan.space import Recompute
from tessera.plan.step import Evaluator
from tessera.plan.workload import TrainWorkload

MODEL, SEQ, BATCH, INSTANCE, COUNTS = "llama3-70b", 8192, 1024, "trn1.32xlarge", range(1, 65)


def _clear_all() -> None:
    """Forget every memoised result, so the next evaluation starts from nothing."""
    for cached in (block_time.block_time, block_time.ops_time, block_time.ends_time,
                   block_time.representatives, devices._op_time, comm._cost, comm.network,
                   step._model_flops):
        cached.cache_clear()
    net.clear_caches()


def naive_per_config_s(sample: int) -> float:
    """Mean seconds per configuration when nothing is shared between configurations."""
    w = TrainWorkload.create(MODEL, SEQ, BATCH)
    dev = Device.create(INSTANCE)
    chosen = []
    for n in (8, 16, 32, 64):
        valid = (c for c in configs(w, dev, n) if _valid(w, dev, c))
        chosen += [(n, c) for c in itertools.islice(valid, sample // 4)]
    start = time.perf_counter()
    for n, cfg in chosen:
        _clear_all()
        Evaluator(w, dev, n)(replace(cfg, recompute=Recompute.SELECTIVE))
    return (time.perf_counter() - start) / len(chosen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=200,
                    help="configurations timed for the naive baseline")
    args = ap.parse_args()
    _clear_all()
    start = time.perf_counter()
    plan = train(MODEL, SEQ, BATCH, INSTANCE, COUNTS)
    sweep_s = time.perf_counter() - start
    per_config = sweep_s / plan.evaluated
    naive = naive_per_config_s(args.sample)
    print(f"{MODEL}, seq {SEQ}, global batch {BATCH}, {INSTANCE} x 1..64: "
          f"{plan.evaluated} configurations evaluated ({plan.pruned} dominated recompute "
          f"modes skipped), {plan.feasible} fit")
    print(f"  tessera: full sweep {sweep_s:.2f} s, {per_config * 1e3:.3f} ms per configuration")
    print(f"  naive:   {naive * 1e3:.3f} ms per configuration, full sweep "
          f"~{naive * plan.evaluated:.0f} s (extrapolated from {args.sample})")
    print(f"  speed-up {naive / per_config:.0f}x   targets: <= 1 ms per configuration, "
          f"sweep <= 10 s")
    print(f"  best: {plan.best.config.label()} on {plan.best.estimate.instances} instances, "
          f"{plan.best.estimate.tokens_per_s:,.0f} tokens/s")


if __name__ == "__main__":
    main()
