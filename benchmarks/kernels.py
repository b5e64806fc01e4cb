"""Kernel-library targets on the simulator: one core, symbolic, after tuning, per chip.

For each target shape of the issue the library kernel is tuned and profiled through the
cost interface (`tessera.cost.estimate`, SIMULATED and ROOFLINE) and the table shows the
achieved % of peak (Tensor engine peak for matmul/attention FLOPs; for the memory-bound ops
the core's DMA/HBM bandwidth = min(its HBM share, its DMA engines at the DMA guide's
effective rate), counting only compulsory bytes), the bounding resource, simulated vs
roofline time, the target and PASS/MISS. A MISS names the resource that stops the kernel,
how far it is from the target, and what the roofline itself allows. Ops whose kernel is not
registered yet, or whose shape keys the table does not know, are listed as SKIP.

    python benchmarks/kernels.py                  # trn1 and trn2 tables (minutes, cached)
    python benchmarks/kernels.py --chip trn2 --json   # one JSON object per line
    python benchmarks/kernels.py --quick          # default block sizes, no search

Progress goes to stderr. Exit status 1 when a registered kernel misses its target.
Tuning and estimates are cached under $TESSERA_CACHE_DIR (default ~/.cache/tessera).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from tessera import cost, hw
from tessera.cost import CostEstimate, Fidelity
from tessera.hw import Engine
from tessera.kernels import KernelDef, Op, get
from tessera.kernels.tune import TuneStep

CHIPS = ("trn1", "trn2")
DTYPE = "bfloat16"


class Metric(Enum):
    """Which peak a target is measured against."""

    TENSOR = "tensor"  # useful FLOP/s / Tensor engine peak
    HBM = "hbm"  # compulsory HBM bytes/s / the core's DMA/HBM bandwidth (see memory_peak)


def memory_peak(chip: str, hbm_share_bytes_per_s: float) -> float:
    """The core's DMA/HBM bandwidth: min(HBM share, DMA engines x effective rate)."""
    dma = hw.load_chip(chip).core.dma
    return min(hbm_share_bytes_per_s, dma.core_effective_bytes_per_s)


@dataclass(frozen=True)
class Target:
    """One row of the issue's target list; `dims` names each size under every key a kernel
    may use for it (the kernel's `shape_keys` pick the ones it needs)."""

    op: Op
    label: str
    dims: Mapping[str, int]
    metric: Metric
    goal: float  # fraction of the peak


_ROWS_COLS = {"rows": 8192, "cols": 4096, "tokens": 8192, "hidden": 4096, "dim": 4096}


def _matmul(m: int, k: int, n: int) -> dict[str, int]:
    return {"M": m, "K": k, "N": n, "m": m, "k": k, "n": n, "batch": 1, "B": 1}


_ATTENTION = {"batch": 1, "b": 1, "heads": 1, "q_heads": 1, "n_heads": 1, "kv_heads": 1,
              "n_kv_heads": 1, "seq": 4096, "seq_q": 4096, "seq_kv": 4096, "seq_len": 4096,
              "head_dim": 128, "d": 128}
_DECODE = {"batch": 1, "b": 1, "heads": 8, "q_heads": 8, "n_heads": 8, "kv_heads": 8,
           "n_kv_heads": 8, "kv_len": 4096, "context": 4096, "seq": 4096, "seq_kv": 4096,
           "seq_len": 4096, "tokens": 4096, "head_dim": 128, "d": 128}

TARGETS = (
    Target(Op.MATMUL, "matmul 4096^3", _matmul(4096, 4096, 4096), Metric.TENSOR, 0.85),
    Target(Op.MATMUL, "matmul 4096x8192x8192", _matmul(4096, 8192, 8192), Metric.TENSOR,
           0.85),
    Target(Op.MATMUL, "matmul 16x4096x4096", _matmul(16, 4096, 4096), Metric.HBM, 0.70),
    Target(Op.RMSNORM, "rmsnorm 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.LAYERNORM, "layernorm 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.SOFTMAX, "softmax 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.SILU, "silu 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.GELU, "gelu 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.GELU_TANH, "gelu_tanh 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.RESIDUAL_ADD, "residual add 8192x4096", _ROWS_COLS, Metric.HBM, 0.70),
    Target(Op.FLASH_ATTENTION, "flash attn seq4096 d128", _ATTENTION, Metric.TENSOR, 0.50),
    Target(Op.DECODE_ATTENTION, "decode attn kv4096 d128 h8", _DECODE, Metric.HBM, 0.60),
)


@dataclass(frozen=True)
class Row:
    """One measured target (or a skipped one, with `note`)."""

    target: Target
    chip: str
    kernel: str
    shapes: Mapping[str, int] | None
    simulated: CostEstimate | None
    roofline: CostEstimate | None
    note: str = ""

    def pct(self, est: CostEstimate | None) -> float:
        """Achieved % of the target's peak by an estimate: Tensor-engine peak, or for
        memory-bound ops the core's DMA/HBM bandwidth, i.e. the smaller of its HBM share
        and what its DMA engines carry at the DMA guide's effective per-engine rate (on trn1
        the 16 engines carry 272 GB/s of the 410 GB/s HBM share, so that is the ceiling)."""
        if est is None:
            return 0.0
        if self.target.metric is Metric.TENSOR:
            return 100.0 * est.compute_utilisation
        achieved = est.hbm_utilisation * est.peak_hbm_bytes_per_s
        return 100.0 * achieved / memory_peak(self.chip, est.peak_hbm_bytes_per_s)

    @property
    def status(self) -> str:
        if self.simulated is None:
            return "SKIP"
        return "PASS" if self.pct(self.simulated) >= 100 * self.target.goal else "MISS"

    def explain(self) -> str:
        """Why a target is missed: the limiting resource, the gap, what the roofline allows."""
        if self.status != "MISS":
            return self.note
        s, r = self.simulated, self.roofline
        assert s is not None and r is not None and s.simulated is not None
        pct, goal, roof = self.pct(s), 100 * self.target.goal, self.pct(r)
        core = hw.load_chip(self.chip).core
        lanes = core.dma.engines_per_core if s.bound is Engine.DMA else 1
        busy = s.simulated.busy_s.get(s.bound)
        occupancy = f" ({100 * busy / (lanes * s.time_s):.0f}% busy)" if busy else ""
        text = (f"bound by {s.bound.value}{occupancy}: {pct:.1f}% vs {goal:.0f}% "
                f"({goal - pct:.1f} pts short)")
        moved = s.simulated.hbm_read_bytes + s.simulated.hbm_write_bytes
        if self.target.metric is Metric.HBM and moved > 1.05 * s.hbm_bytes:
            text += f"; moves {moved / s.hbm_bytes:.2f}x the compulsory HBM bytes"
        if s.bound is Engine.DMA:
            dma = core.dma
            text += (f"; {dma.engines_per_core} DMA engines at the guide's effective "
                     f"{dma.engine_effective_bytes_per_s / 1e9:.1f} GB/s = "
                     f"{100 * dma.core_effective_bytes_per_s / s.peak_hbm_bytes_per_s:.0f}% "
                     "of the HBM share")
        text += f"; roofline allows {roof:.1f}% ({r.bound.value})"
        return text


def _shapes(defn: KernelDef, dims: Mapping[str, int]) -> dict[str, int] | None:
    if not all(k in dims for k in defn.shape_keys):
        return None
    return {k: dims[k] for k in defn.shape_keys}


def _progress(label: str, chip: str) -> object:
    def report(step: TuneStep) -> None:
        t = "skipped" if step.time_s is None else f"{step.time_s * 1e6:.1f} us"
        params = ", ".join(f"{k}={v}" for k, v in step.params.items())
        print(f"  [{chip}] {label}: config {step.evaluated}/~{step.planned} ({params}): {t}",
              file=sys.stderr, flush=True)
    return report


def measure(target: Target, chip: str, quick: bool, use_cache: bool) -> Row:
    """Tune (unless `quick`) and estimate one target on one chip."""
    try:
        defn = get(target.op)
    except KeyError:
        return Row(target, chip, target.op.value, None, None, None, "kernel not registered")
    shapes = _shapes(defn, target.dims)
    if shapes is None:
        return Row(target, chip, defn.name, None, None, None,
                   f"shape keys {defn.shape_keys} unknown to this table")
    if quick:  # no search: the kernel's default block sizes
        defn = dataclasses.replace(defn, tunables={})
    print(f"[{chip}] {target.label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    roof = cost.estimate(defn, shapes, DTYPE, chip, Fidelity.ROOFLINE)
    simu = cost.estimate(defn, shapes, DTYPE, chip, Fidelity.SIMULATED, cache=use_cache,
                         progress=_progress(target.label, chip))
    print(f"[{chip}] {target.label}: {simu.time_s * 1e6:.1f} us "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
    return Row(target, chip, defn.name, shapes, simu, roof)


def _record(row: Row) -> dict:
    s, r = row.simulated, row.roofline
    return {"kernel": row.kernel, "shape": row.shapes, "dtype": DTYPE, "chip": row.chip,
            "simulated_s": s.time_s if s else None, "roofline_s": r.time_s if r else None,
            "pct_of_peak": round(row.pct(s), 2) if s else None,
            "bound_by": s.bound.value if s else None, "metric": row.target.metric.value,
            "target_pct": 100 * row.target.goal, "status": row.status,
            "roofline_pct_of_peak": round(row.pct(r), 2) if r else None,
            "params": dict(s.simulated.params) if s and s.simulated else None,
            "label": row.target.label, "note": row.explain()}


def _table(rows: list[Row], chip: str) -> str:
    head = (f"{'target':28} {'kernel':16} {'simulated':>11} {'roofline':>11} {'sim/roof':>8} "
            f"{'% peak':>7} {'of':4} {'bound':7} {'target':>6} status")
    lines = [f"\n== {chip} (one core, {DTYPE}, symbolic) ==", head, "-" * len(head)]
    for row in rows:
        s, r = row.simulated, row.roofline
        if s is None or r is None:
            lines.append(f"{row.target.label:28} {row.kernel:16} {'-':>11} {'-':>11} "
                         f"{'-':>8} {'-':>7} {'-':4} {'-':7} "
                         f"{100 * row.target.goal:5.0f}% SKIP  {row.note}")
            continue
        lines.append(
            f"{row.target.label:28} {row.kernel:16} {s.time_s * 1e6:9.1f}us "
            f"{r.time_s * 1e6:9.1f}us {s.time_s / r.time_s:7.2f}x {row.pct(s):6.1f}% "
            f"{row.target.metric.value:4} {s.bound.value:7} {100 * row.target.goal:5.0f}% "
            f"{row.status}  {row.explain() if row.status == 'MISS' else ''}".rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", choices=(*CHIPS, "all"), default="all")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--quick", action="store_true",
                        help="default block sizes (no tuning search)")
    parser.add_argument("--no-cache", action="store_true",
                        help="ignore and do not write the tuning/estimate caches")
    args = parser.parse_args(argv)
    chips = CHIPS if args.chip == "all" else (args.chip,)
    missed = False
    for chip in chips:
        rows = [measure(t, chip, args.quick, not args.no_cache) for t in TARGETS]
        missed |= any(r.status == "MISS" for r in rows)
        if args.json:
            for row in rows:
                print(json.dumps(_record(row)), flush=True)
        else:
            print(_table(rows, chip), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
