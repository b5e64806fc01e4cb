"""Wall time of the 4-process TP 2 x PP 2 run of the small Llama (target <= 60 s here).

Runs `torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --pp 2
--steps 3` (process start, import, mesh, 3 steps, teardown) and one process for comparison,
`--repeats` times each, and prints the median wall times.

    python benchmarks/parallel_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

EXAMPLE = ["-m", "tessera.parallel.examples.train_llama", "--steps", "3"]


def _wall_s(cmd: list[str], tmp: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": tmp}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = {
        "torchrun 4 ranks, TP 2 x PP 2": [sys.executable, "-m", "torch.distributed.run",
                                          "--nproc-per-node", "4", *EXAMPLE, "--tp", "2",
                                          "--pp", "2"],
        "one process": [sys.executable, *EXAMPLE],
    }
    with tempfile.TemporaryDirectory() as tmp:
        times = {name: [] for name in runs}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            for name, cmd in runs.items():
                times[name].append(_wall_s(cmd, tmp))
    for name, ts in times.items():
        print(f"{name:32} median {statistics.median(ts):6.1f} s  (runs: "
              f"{', '.join(f'{t:.1f}' for t in ts)})")
    worst = statistics.median(times["torchrun 4 ranks, TP 2 x PP 2"])
    print(f"target: the 4-process run <= 60 s: {'met' if worst <= 60 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
