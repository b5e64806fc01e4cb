"""Check the planner on Trainium: the vendor's published trn1 training throughput.

Rows: benchmarks/data/published_training_trn1.yaml (NeuronX Distributed on trn1.32xlarge,
SDK 2.17-2.24; sources in the file). Each row is evaluated as published (instances,
degrees, sequence, global batch, ZeRO-1, the recompute mode NxD's example configs use) and
printed with the signed error. ROOFLINE prices every kernel at its engine's peak (an upper
bound on speed, seconds for all rows); SIMULATED runs the library kernels on the simulated
core (new kernel shapes are tuned first, side by side: minutes the first time, cached).
Nothing is fitted to these rows; no pass/fail threshold (the issue's Trainium tables are
held out).

    python benchmarks/check_training_trn1.py                       # ROOFLINE
    python benchmarks/check_training_trn1.py --fidelity simulated  # the library kernels
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml

from tessera.plan.search import Pins, train
from tessera.plan.space import DataParallel, Recompute

ROWS = Path(__file__).with_name("data") / "published_training_trn1.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fidelity", choices=("roofline", "simulated"), default="roofline")
    ap.add_argument("--only", help="one row by name")
    args = ap.parse_args()
    rows = yaml.safe_load(ROWS.read_text())["rows"]
    print(f"{'row':14} {'layout':22} {'predicted':>10} {'published':>10} {'error':>8} "
          f"{'MFU':>6}  ({args.fidelity.upper()})")
    errors = []
    for row in rows:
        if args.only and row["name"] != args.only:
            continue
        pins = Pins(tp=row["tp"], pp=row["pp"], dp=row["dp"], micro_batch=1,
                    sequence_parallel=True, recompute=Recompute(row["recompute"]),
                    dp_mode=DataParallel.ZERO1 if row["zero1"] else DataParallel.REPLICATE)
        plan = train(row["model"], row["seq"], row["global_batch"], "trn1.32xlarge",
                     [row["instances"]], pins=pins, fidelity=args.fidelity)
        e = plan.best.estimate
        err = (e.seq_per_s / row["seq_per_s"] - 1) * 100
        errors.append(abs(err))
        layout = f"{row['instances']}x tp{row['tp']} pp{row['pp']} dp{row['dp']}"
        print(f"{row['name']:14} {layout:22} {e.seq_per_s:9.2f}  {row['seq_per_s']:9.2f}  "
              f"{err:+7.1f}% {e.mfu:6.1%}  seq/s")
    if errors:
        print(f"mean |error| {statistics.fmean(errors):.1f} %   worst {max(errors):.1f} %")


if __name__ == "__main__":
    main()
