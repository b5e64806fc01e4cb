"""Fit `hbm_strided_efficiency` (NC-v2) on its three rows of the published matmul tutorial.

The constant is the one fitted parameter of the kernel timing model that the published
kernels constrain: the fraction of the core's HBM share a row gather streams at. It is fitted
minimax (the smallest worst |error|) on the tiled, hoist_loads and block_free_dims rows of
benchmarks/data/published_kernels.yaml with the model as it is (the default ASAP schedule);
block_all_dims is held out and printed as a check. Each kernel is traced once and scheduled
for every candidate value (`calibration.hbm_strided_efficiency` what-if).

    python benchmarks/fit_strided_efficiency.py            # fit over 0.15-0.40
    python benchmarks/fit_strided_efficiency.py --step 0.005

Prints each candidate's errors, then the best value; copy it to
tessera/sim/calibration/trn.yaml (nc-v2) with the date and what it was fitted on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from validate_kernels import CHIP, DATA, KERNEL_FILE, load_variants

from tessera import nki, sim
from tessera.nki import TensorSpec
from tessera.nki.kernel_files import load_kernel_file

FIT_ROWS = ("tiled", "hoist_loads", "block_free_dims")
KEY = "calibration.hbm_strided_efficiency"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--low", type=float, default=0.15)
    parser.add_argument("--high", type=float, default=0.40)
    parser.add_argument("--step", type=float, default=0.01)
    args = parser.parse_args(argv)
    if not 0 < args.low < args.high <= 1 or args.step <= 0:
        parser.error("need 0 < --low < --high <= 1 and --step > 0")
    shape, dtype, variants = load_variants(args.data)
    m, k, n = shape["M"], shape["K"], shape["N"]
    kernels = load_kernel_file(KERNEL_FILE)
    traces, published = {}, {}
    for v in variants:
        print(f"tracing matmul_{v['name']} ...", flush=True)
        traces[v["name"]] = nki.trace(kernels.kernel(f"matmul_{v['name']}"), symbolic=True,
                                      chip=CHIP)(TensorSpec((k, m), dtype),
                                                 TensorSpec((k, n), dtype))
        published[v["name"]] = float(v["latency_ms"]) * 1e-3
    best: tuple[float, float] | None = None
    steps = int(round((args.high - args.low) / args.step)) + 1
    for i in range(steps):
        value = args.low + i * args.step
        errors = {name: sim.schedule(t, overrides={KEY: value}).total_s / published[name] - 1
                  for name, t in traces.items()}
        worst = max(abs(errors[name]) for name in FIT_ROWS)
        shown = "  ".join(f"{name} {100 * e:+6.1f} %" for name, e in errors.items())
        print(f"{value:.4f}: worst fitted |error| {100 * worst:5.1f} %   {shown}", flush=True)
        if best is None or worst < best[1]:
            best = (value, worst)
    assert best is not None
    print(f"best: hbm_strided_efficiency = {best[0]:.4f} (worst |error| on "
          f"{', '.join(FIT_ROWS)}: {100 * best[1]:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
