"""Serving simulation speed: 10,000 requests on a Llama-3-8B-sized replica with continuous
batching, timed per scheduler.

Target (issue section 2): <= 5 s on a 2-core machine for the continuous-batching run.
By default the step cost is the inference model itself (`plan.serve_cost.InferStepCost`:
Llama-3-8B, TP 8 on a trn2.48xlarge, vLLM Neuron buckets; the time includes pricing each
new bucket once); `--linear` swaps in `LinearStepCost` (a decode step ~10 ms + 0.05 ms per
sequence, a prefill ~0.08 ms per token) to time the simulator alone.

    python benchmarks/serve_speed.py
    python benchmarks/serve_speed.py --requests 2000 --kind vllm
"""

from __future__ import annotations

import argparse
import time

from tessera.plan.serve_linear import LinearStepCost
from tessera.plan.serve_load import random_load
from tessera.plan.serve_sim import simulate
from tessera.plan.serve_types import SchedulerConfig, SchedulerKind

TARGET_S = 5.0


def _llama_cost(max_num_seqs: int):  # -> InferStepCost
    from tessera.models import PRESETS
    from tessera.plan.devices import Device
    from tessera.plan.infer_step import InferCost
    from tessera.plan.serve_cost import InferStepCost
    from tessera.plan.serving import ServingConfig, ServingStack

    serving = ServingConfig(ServingStack.VLLM, tp=8, lnc=2, max_num_seqs=max_num_seqs,
                            max_model_len=4096, max_num_batched_tokens=4096)
    return InferStepCost(InferCost(PRESETS["llama3-8b"], Device.create("trn2.48xlarge"),
                                   serving))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--input-len", type=int, default=1024)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--range-ratio", type=float, default=0.5)
    ap.add_argument("--rate", type=float, default=4.0, help="requests/s (Poisson)")
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--kind", choices=[k.value for k in SchedulerKind], action="append",
                    help="scheduler(s) to time (default: neuron and vllm)")
    ap.add_argument("--linear", action="store_true", help="the linear stand-in cost model")
    args = ap.parse_args()
    kinds = [SchedulerKind(k) for k in (args.kind or ["neuron", "vllm"])]
    cost = LinearStepCost(kv_blocks=8192, block_size=32) if args.linear else _llama_cost(
        args.max_num_seqs)
    load = random_load(args.requests, args.input_len, args.output_len,
                       range_ratio=args.range_ratio, rate_per_s=args.rate, seed=0)
    worst = 0.0
    for kind in kinds:
        cfg = SchedulerConfig(kind=kind, max_num_seqs=args.max_num_seqs,
                              max_num_batched_tokens=4096, max_model_len=4096)
        start = time.perf_counter()
        res = simulate(cost, load, cfg)
        sim_s = time.perf_counter() - start
        start = time.perf_counter()
        m = res.metrics()
        metrics_s = time.perf_counter() - start
        worst = max(worst, sim_s + metrics_s)
        c = res.counters
        print(f"{kind.value:7s} {args.requests} requests: simulate {sim_s:.2f} s + metrics "
              f"{metrics_s:.2f} s | {c.steps} steps, {c.priced_steps} priced "
              f"| {m['request_throughput']:.2f} req/s, {m['output_throughput']:.0f} tok/s, "
              f"mean TTFT {m['mean_ttft_ms']:.0f} ms, mean TPOT {m['mean_tpot_ms']:.1f} ms")
    verdict = "meets" if worst <= TARGET_S else "MISSES"
    print(f"slowest run {worst:.2f} s: {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
