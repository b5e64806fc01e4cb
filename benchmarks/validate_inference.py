"""Validate the inference model against the vendor's published trn2 TTFT and TPOT.

Rows: benchmarks/data/published_inference.yaml, a copy of shared/validation/inference.yaml
(NxD Inference tutorials' performance tables on one trn2.48xlarge at LNC=2: 64 logical
cores, TP 64, batch 1, 10,000 prompt tokens in the 12,288-token context-encoding bucket,
1,500 generated tokens, sequence length 12,800). Each row is evaluated as published with the
NxD Inference serving model; nothing is fitted to these rows. Op times are SIMULATED (the
library kernels tuned and profiled on the simulated core; the first run tunes the shapes,
about a minute per model, then `TESSERA_CACHE_DIR` keeps them); `--fidelity roofline` shows
the lower bound. Prints predicted, published and the signed error of TTFT and TPOT; exit 1
when one is off by more than 20 %.

    python benchmarks/validate_inference.py
    python benchmarks/validate_inference.py --fidelity roofline --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from tessera import cost
from tessera.hw import load_instance
from tessera.models import PRESETS
from tessera.plan.devices import Device
from tessera.plan.infer import InferWorkload, evaluate
from tessera.plan.infer_refine import refine
from tessera.plan.serving import ServingConfig, ServingStack

ROWS = Path(__file__).with_name("data") / "published_inference.yaml"
MODELS = {"llama-3.3-70b": "llama3.3-70b", "llama-3.1-405b": "llama3.1-405b"}
CONTEXT_BUCKET, SEQ_LEN = 12288, 12800
INSTANCE = "trn2.48xlarge"


def predict(row: dict, fidelity: cost.Fidelity):  # -> InferEstimate
    """The estimate of one published run."""
    name = MODELS[row["model"]]
    w = InferWorkload(PRESETS[name], name, row["input_tokens"], row["output_tokens"],
                      row["batch"])
    serving = ServingConfig(ServingStack.NXDI, tp=row["tp"], lnc=2,
                            max_num_seqs=row["batch"], max_model_len=SEQ_LEN,
                            prefill_buckets=(CONTEXT_BUCKET,), async_scheduling=False)
    e = evaluate(w, Device.create(INSTANCE, lnc=2), serving)
    if fidelity is cost.Fidelity.SIMULATED:
        e = refine(load_instance(INSTANCE), [e], lambda _: w, evaluate, progress=_tuned)[0]
    return e


def _tuned(step) -> None:  # noqa: ANN001 - cost.batch.BatchStep
    print(f"  tuned {step.request.op} {dict(step.request.shapes)} ({step.done}/{step.total})",
          file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object per row")
    ap.add_argument("--fidelity", choices=[f.value for f in cost.Fidelity],
                    default="simulated", help="how op times are priced (default simulated)")
    args = ap.parse_args()
    fidelity = cost.Fidelity(args.fidelity)
    worst = 0.0
    if not args.json:
        print(f"{'model':15} {'TTFT pred':>10} {'published':>10} {'error':>7}   "
              f"{'TPOT pred':>10} {'published':>10} {'error':>7}")
    for row in yaml.safe_load(ROWS.read_text())["runs"]:
        e = predict(row, fidelity)
        ttft, tpot = e.ttft_s * 1e3, e.tpot_s * 1e3
        et = (ttft / row["ttft_ms"] - 1) * 100
        ep = (tpot / row["tpot_ms"] - 1) * 100
        worst = max(worst, abs(et), abs(ep))
        if args.json:
            print(json.dumps({"model": row["model"], "ttft_ms": ttft, "tpot_ms": tpot,
                              "published_ttft_ms": row["ttft_ms"],
                              "published_tpot_ms": row["tpot_ms"], "ttft_error_pct": et,
                              "tpot_error_pct": ep, "prefill": e.prefill.as_dict(),
                              "decode": e.decode.as_dict()}))
        else:
            print(f"{row['model']:15} {ttft:9.1f}ms {row['ttft_ms']:9.1f}ms {et:+6.1f}%   "
                  f"{tpot:9.2f}ms {row['tpot_ms']:9.2f}ms {ep:+6.1f}%")
    if not args.json:
        print(f"worst |error| {worst:.1f} %   (target: each within +-20 %; op times at "
              f"{fidelity.value.upper()})")
    return 0 if worst <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
