"""Validate the collective cost model against published nccom-test measurements.

Compares tessera's predicted 2-rank all-reduce time with the curve in
../shared/validation/collectives.yaml (nccom-test user guide, 1 KiB - 1 GiB) and prints
predicted, published and signed % error per size, then the median and worst absolute error.
The measurement is read, as the data file says, as two NeuronCores on neighbouring Trainium
chips of one trn1.32xlarge exchanging over NeuronLink (one rank per chip).

    python benchmarks/validate_collectives.py          # table; exit 1 if any row is off > 15%
    python benchmarks/validate_collectives.py --json   # one JSON object per line
    python benchmarks/validate_collectives.py --fit    # refit the two constants (minimax)

`--fit` adjusts only the per-step ("per-hop") latency and the NeuronLink efficiency and prints
the values to paste into tessera/dist/calibration/collectives.yaml.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

from tessera.dist import (
    CollectiveCalibration,
    CollectiveModel,
    Placement,
    from_instance,
    load_calibration,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "validation" / "collectives.yaml"
CURVE = "allreduce_2_ranks_fp32"
INSTANCE = "trn1.32xlarge"
TOLERANCE = 0.15


def load_points(path: Path) -> list[tuple[int, float]]:
    """(bytes, seconds) of the 2-rank all-reduce curve."""
    data = yaml.safe_load(path.read_text())
    curve = data[CURVE]
    if curve["ranks"] != 2:
        raise SystemExit(f"{path}: {CURVE} is not a 2-rank curve")
    return [(int(p["bytes"]), float(p["time_us"]) * 1e-6) for p in curve["points"]]


def predict(points: list[tuple[int, float]], cal: CollectiveCalibration) -> list[float]:
    """Predicted all-reduce times (AUTO algorithm) under calibration `cal`."""
    topo = from_instance(INSTANCE, 1, calibration=cal)
    model = CollectiveModel(topo, Placement(2, ranks_per_chip=1))
    return [model.cost("all_reduce", n).time_s for n, _ in points]


def worst_error(points: list[tuple[int, float]], cal: CollectiveCalibration) -> float:
    pred = predict(points, cal)
    return max(abs(p / t - 1) for p, (_, t) in zip(pred, points, strict=True))


def fit(points: list[tuple[int, float]], base: CollectiveCalibration) -> CollectiveCalibration:
    """Minimax fit of (neuron_step_latency_s, neuronlink_efficiency) by grid refinement."""
    lat_lo, lat_hi, eff_lo, eff_hi = 1e-6, 60e-6, 0.2, 1.0
    best = (float("inf"), base)
    for _ in range(4):
        for i in range(13):
            for j in range(13):
                lat = lat_lo + (lat_hi - lat_lo) * i / 12
                eff = eff_lo + (eff_hi - eff_lo) * j / 12
                cal = base.with_overrides(neuron_step_latency_s=lat, neuronlink_efficiency=eff)
                err = worst_error(points, cal)
                if err < best[0]:
                    best = (err, cal)
        c = best[1]
        dl, de = (lat_hi - lat_lo) / 6, (eff_hi - eff_lo) / 6
        lat_lo, lat_hi = max(c.neuron_step_latency_s - dl, 0.0), c.neuron_step_latency_s + dl
        eff_lo, eff_hi = max(c.neuronlink_efficiency - de, 0.05), min(
            c.neuronlink_efficiency + de, 1.0)
    return best[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--fit", action="store_true", help="refit the two constants first")
    args = parser.parse_args(argv)
    points = load_points(args.data)
    cal = load_calibration()
    if args.fit:
        cal = fit(points, cal)
        print(f"# fitted neuron_step_latency_s = {cal.neuron_step_latency_s:.4g}, "
              f"neuronlink_efficiency = {cal.neuronlink_efficiency:.4g}", file=sys.stderr)
    pred = predict(points, cal)
    errors = [p / t - 1 for p, (_, t) in zip(pred, points, strict=True)]
    abs_err = [abs(e) for e in errors]
    for (n, t), p, e in zip(points, pred, errors, strict=True):
        if args.json:
            print(json.dumps({"bytes": n, "predicted_s": p, "published_s": t,
                              "error_pct": 100 * e}))
        else:
            print(f"{n:>12d} B  predicted {p * 1e6:9.1f} us  published {t * 1e6:9.1f} us  "
                  f"error {100 * e:+6.1f} %")
    summary = {"median_abs_error_pct": 100 * statistics.median(abs_err),
               "worst_abs_error_pct": 100 * max(abs_err), "tolerance_pct": 100 * TOLERANCE,
               "step_latency_s": cal.neuron_step_latency_s,
               "neuronlink_efficiency": cal.neuronlink_efficiency}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"median |error| {summary['median_abs_error_pct']:.1f} %, worst |error| "
              f"{summary['worst_abs_error_pct']:.1f} % (tolerance {100 * TOLERANCE:.0f} %)")
    return 0 if max(abs_err) <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
