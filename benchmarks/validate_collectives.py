"""Validate the collective cost model against published nccom-test measurements.

Fitted curve: tessera's predicted 2-rank all-reduce time against the curve in
benchmarks/data/published_collectives.yaml (nccom-test user guide, 1 KiB - 1 GiB): predicted,
published and signed % error per size, then the median and worst absolute error. The
measurement is read, as the data file says, as two NeuronCores on neighbouring Trainium
chips of one trn1.32xlarge exchanging over NeuronLink (one rank per chip). The two fitted
constants (per-collective overhead, NeuronLink efficiency) come from this curve only.

Held-out sanity: the same guide's other examples, predicted with the fitted constants and
never used to fit them. They differ in rank count, operation and instance count, so they
test the latency split (overhead once, DMA issue per message, hop latencies) and the
multi-rank algorithms; the exit status ignores them.

    python benchmarks/validate_collectives.py          # tables; exit 1 if a fitted row is off > 15%
    python benchmarks/validate_collectives.py --json   # one JSON object per line
    python benchmarks/validate_collectives.py --fit    # refit the two constants (minimax)

`--fit` adjusts only `neuron_collective_overhead_s` and `neuronlink_efficiency` and prints the
values to paste into tessera/net/calibration/collectives.yaml. Hop latencies (presets, 1-2 us
[CCI]) and the DMA issue cost (chip preset, ~1.3 us) stay at their published values: on a
2-rank curve they only add a constant that the overhead absorbs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tessera.net import (
    CollectiveCalibration,
    CollectiveModel,
    Placement,
    applicable_algorithms,
    from_instance,
    load_calibration,
)

DATA = Path(__file__).resolve().parent / "data" / "published_collectives.yaml"
CURVE = "allreduce_2_ranks_fp32"
INSTANCE = "trn1.32xlarge"
TOLERANCE = 0.15
NCCOM_URL = ("https://awsdocs-neuron.readthedocs-hosted.com/en/latest/tools/neuron-sys-tools/"
             "nccom-test.html (aws-neuron-sdk tools/neuron-sys-tools/nccom-test.rst)")


@dataclass(frozen=True)
class HeldOut:
    """One published nccom-test example row, and the model set-up it is read as."""

    example: str  # the guide's example, as published
    conditions: str  # how tessera places it
    op: str
    ranks: int
    instances: int
    ranks_per_chip: int | None  # None: every core of a chip (NXD contiguous placement)
    n_bytes: int
    published_s: float


def _rows(example: str, conditions: str, op: str, ranks: int, instances: int,
          ranks_per_chip: int | None, points: list[tuple[int, float]]) -> list[HeldOut]:
    return [HeldOut(example, conditions, op, ranks, instances, ranks_per_chip, n, us * 1e-6)
            for n, us in points]


# The guide's examples other than the fitted curve; the guide warns its example numbers are
# not up to date, and gives no instance type (trn1/inf2-era page: read as trn1.32xlarge).
HELD_OUT: list[HeldOut] = [
    *_rows("nccom-test -r 2 allr (quick validation, uint8)",
           "2 ranks on neighbouring trn1 chips, as the fitted curve", "all_reduce", 2, 1, 1,
           [(33554432, 768)]),
    *_rows("nccom-test -r 32 -b 1kb -e 1mb -f 8 -d fp32 --check allg",
           "32 ranks = 16 trn1 chips x 2 cores, one trn1.32xlarge", "all_gather", 32, 1, None,
           [(1024, 151), (8192, 149), (65536, 150), (524288, 179)]),
    *_rows("nccom-test -r 64 -N 2 -b 8 -e 1GB -f 2 -n 50 -w 5 -d fp32 allr",
           "64 ranks = 2 x trn1.32xlarge (32 per instance), EFA between them", "all_reduce",
           64, 2, None,
           [(8, 520), (1024, 840), (65536, 1315), (1048576, 1328), (16777216, 2138),
            (67108864, 3963), (268435456, 11954), (1073741824, 41806)]),
]


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


def predict_held_out(row: HeldOut, cal: CollectiveCalibration
                     ) -> tuple[float, str, dict[str, float]]:
    """(AUTO's predicted seconds, the algorithm it chose, every applicable algorithm's time).

    nccom-test does not say which algorithm the runtime ran, so each one is shown: AUTO is the
    model's fastest, not a prediction of the runtime's choice.
    """
    topo = from_instance(INSTANCE, row.instances, calibration=cal)
    model = CollectiveModel(topo, Placement(row.ranks, ranks_per_chip=row.ranks_per_chip))
    cost = model.cost(row.op, row.n_bytes)
    each = {a.value: model.cost(row.op, row.n_bytes, algorithm=a).time_s
            for a in applicable_algorithms(row.op, model.rank_map)}
    return cost.time_s, cost.algorithm.value, each


def worst_error(points: list[tuple[int, float]], cal: CollectiveCalibration) -> float:
    pred = predict(points, cal)
    return max(abs(p / t - 1) for p, (_, t) in zip(pred, points, strict=True))


def fit(points: list[tuple[int, float]], base: CollectiveCalibration) -> CollectiveCalibration:
    """Minimax fit of (neuron_collective_overhead_s, neuronlink_efficiency), grid refinement."""
    lat_lo, lat_hi, eff_lo, eff_hi = 0.0, 80e-6, 0.2, 1.0
    best = (float("inf"), base)
    for _ in range(5):
        for i in range(13):
            for j in range(13):
                lat = lat_lo + (lat_hi - lat_lo) * i / 12
                eff = eff_lo + (eff_hi - eff_lo) * j / 12
                cal = base.with_overrides(neuron_collective_overhead_s=lat,
                                          neuronlink_efficiency=eff)
                err = worst_error(points, cal)
                if err < best[0]:
                    best = (err, cal)
        c = best[1]
        dl, de = (lat_hi - lat_lo) / 6, (eff_hi - eff_lo) / 6
        lat_lo = max(c.neuron_collective_overhead_s - dl, 0.0)
        lat_hi = c.neuron_collective_overhead_s + dl
        eff_lo = max(c.neuronlink_efficiency - de, 0.05)
        eff_hi = min(c.neuronlink_efficiency + de, 1.0)
    return best[1]


def _print_held_out(cal: CollectiveCalibration, as_json: bool) -> None:
    if not as_json:
        print(f"\n--- held-out sanity (NOT fitted; source: [NCCOM] {NCCOM_URL}) ---")
    example = None
    for row in HELD_OUT:
        pred, alg, each = predict_held_out(row, cal)
        err = pred / row.published_s - 1
        each_err = {a: 100 * (t / row.published_s - 1) for a, t in each.items()}
        if as_json:
            print(json.dumps({"section": "held_out", "example": row.example,
                              "conditions": row.conditions, "op": row.op, "ranks": row.ranks,
                              "instances": row.instances, "bytes": row.n_bytes,
                              "predicted_s": pred, "published_s": row.published_s,
                              "algorithm": alg, "error_pct": 100 * err,
                              "error_pct_by_algorithm": each_err}))
            continue
        if row.example != example:
            example = row.example
            print(f"{row.example}\n  read as: {row.conditions}")
        print(f"  {row.op:10s} {row.ranks:3d} ranks {row.n_bytes:>12d} B  predicted "
              f"{pred * 1e6:9.1f} us ({alg:12s}) published {row.published_s * 1e6:9.1f} us  "
              f"error {100 * err:+6.1f} %")
        print("      each algorithm: " + ", ".join(f"{a} {e:+.0f} %" for a, e in each_err.items()))


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
        print(f"# fitted neuron_collective_overhead_s = {cal.neuron_collective_overhead_s:.4g}, "
              f"neuronlink_efficiency = {cal.neuronlink_efficiency:.4g}", file=sys.stderr)
    pred = predict(points, cal)
    errors = [p / t - 1 for p, (_, t) in zip(pred, points, strict=True)]
    abs_err = [abs(e) for e in errors]
    if not args.json:
        print(f"--- fitted: [NCCOM] 2-rank fp32 all-reduce ({CURVE}), 2 ranks on neighbouring "
              f"{INSTANCE} chips ---")
    for (n, t), p, e in zip(points, pred, errors, strict=True):
        if args.json:
            print(json.dumps({"section": "fitted", "bytes": n, "predicted_s": p,
                              "published_s": t, "error_pct": 100 * e}))
        else:
            print(f"{n:>12d} B  predicted {p * 1e6:9.1f} us  published {t * 1e6:9.1f} us  "
                  f"error {100 * e:+6.1f} %")
    summary = {"median_abs_error_pct": 100 * statistics.median(abs_err),
               "worst_abs_error_pct": 100 * max(abs_err), "tolerance_pct": 100 * TOLERANCE,
               "collective_overhead_s": cal.neuron_collective_overhead_s,
               "neuronlink_efficiency": cal.neuronlink_efficiency}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"median |error| {summary['median_abs_error_pct']:.1f} %, worst |error| "
              f"{summary['worst_abs_error_pct']:.1f} % (tolerance {100 * TOLERANCE:.0f} %)")
    _print_held_out(cal, args.json)
    return 0 if max(abs_err) <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
