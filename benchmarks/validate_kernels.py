"""Validate the kernel timing model against the vendor's published matmul tutorial latencies.

Profiles the four matmul variants of benchmarks/data/published_kernels.yaml (one NeuronCore-v2 of
trn1, bf16, M=4096, K=8192, N=8192) symbolically with the kernels of
examples/kernels/matmul_tutorial.py at their default block sizes, and prints predicted vs
published latency and utilisation with signed % error, then the median and worst absolute
error and whether the four keep their published order. Nothing is tuned here.

    python benchmarks/validate_kernels.py          # table; exit 1 if a target is missed
    python benchmarks/validate_kernels.py --json   # one JSON object per line
    python benchmarks/validate_kernels.py --beta1  # the Beta-1 twins (examples/kernels/beta1)

The published figures were measured on the tutorial's Beta-1 kernels (`neuronxcc.nki`,
Neuron <= 2.26): `--beta1` profiles Tessera's Beta-1 twins of the four variants, read by
the Beta-1 front end, against the same rows.

Targets: every variant within +-20 %, median |error| within 10 %, ordering preserved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

from tessera import sim
from tessera.nki import TensorSpec
from tessera.nki.kernel_files import load_kernel_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "published_kernels.yaml"
KERNEL_FILE = ROOT / "examples" / "kernels" / "matmul_tutorial.py"
BETA1_FILE = ROOT / "examples" / "kernels" / "beta1" / "matmul_tutorial.py"
SECTION = "matmul_tutorial"
CHIP = "trn1"
ROW_TOLERANCE = 0.20
MEDIAN_TOLERANCE = 0.10


def load_variants(path: Path) -> tuple[dict[str, int], str, list[dict]]:
    """(shape, dtype, variants) of the matmul tutorial section."""
    data = yaml.safe_load(path.read_text())[SECTION]
    return data["shape"], data["dtype"], data["variants"]


def predict(name: str, shape: dict[str, int], dtype: str,
            kernel_file: Path = KERNEL_FILE) -> sim.Profile:
    """Profile `matmul_<name>` on lhsT [K, M] and rhs [K, N] in symbolic mode."""
    kernel = load_kernel_file(kernel_file).kernel(f"matmul_{name}")
    m, k, n = shape["M"], shape["K"], shape["N"]
    return sim.profile(kernel, TensorSpec((k, m), dtype), TensorSpec((k, n), dtype),
                       chip=CHIP, symbolic=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--beta1", action="store_true",
                        help="profile the Beta-1 twins (examples/kernels/beta1)")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="profile only these variants (the targets need all four)")
    args = parser.parse_args(argv)
    shape, dtype, variants = load_variants(args.data)
    if args.only:
        unknown = set(args.only) - {v["name"] for v in variants}
        if unknown:
            parser.error(f"unknown variant(s) {sorted(unknown)}; variants: "
                         f"{', '.join(v['name'] for v in variants)}")
        variants = [v for v in variants if v["name"] in args.only]
    rows = []
    for v in variants:
        p = predict(v["name"], shape, dtype, BETA1_FILE if args.beta1 else KERNEL_FILE)
        published = float(v["latency_ms"]) * 1e-3
        error = p.total_s / published - 1
        rows.append((v["name"], p.total_s, published, error, p.flops_utilisation,
                     float(v["reported_utilization"])))
        if args.json:
            print(json.dumps({"name": v["name"], "predicted_s": p.total_s,
                              "published_s": published, "error_pct": 100 * error}), flush=True)
        else:
            print(f"{v['name']:<16} predicted {p.total_s * 1e3:7.2f} ms  published "
                  f"{published * 1e3:7.2f} ms  error {100 * error:+6.1f} %   utilisation "
                  f"{100 * p.flops_utilisation:5.1f} % vs {100 * rows[-1][5]:5.1f} %",
                  flush=True)
    abs_err = [abs(r[3]) for r in rows]
    median, worst = statistics.median(abs_err), max(abs_err)
    by_predicted = [r[0] for r in sorted(rows, key=lambda r: r[1])]
    by_published = [r[0] for r in sorted(rows, key=lambda r: r[2])]
    ordered = by_predicted == by_published
    ok = worst <= ROW_TOLERANCE and median <= MEDIAN_TOLERANCE and ordered
    if args.json:
        print(json.dumps({"median_abs_error_pct": 100 * median, "worst_abs_error_pct":
                          100 * worst, "ordering_preserved": ordered, "targets_met": ok}))
    else:
        print(f"median |error| {100 * median:.1f} % (target <= {100 * MEDIAN_TOLERANCE:.0f} %), "
              f"worst |error| {100 * worst:.1f} % (target <= {100 * ROW_TOLERANCE:.0f} %), "
              f"ordering {'preserved' if ordered else 'NOT preserved'} "
              f"(predicted fastest first: {', '.join(by_predicted)})")
        print("targets met" if ok else "targets missed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
