"""A kernel's timeline as a PNG: a Gantt chart, the HBM bandwidth over time, utilisation.

Rows are the engine queues and, for DMAs, the core's DMA queues (loads, stores, copies:
`tessera.report.lanes.queue_lanes`; the Chrome trace keeps one track per DMA engine). Each
instruction is a bar with a thin white edge, so back-to-back instructions stay apart; the
critical path is outlined in black and the hottest kernel lines are labelled with their
file:line. Below the chart, the HBM bytes per second the DMAs move, against the core's
share. Streams too large to draw bar by bar are merged, per row, where pieces are separated
by gaps too small to see (under 1/`_MERGE_RESOLUTION` of the kernel's time), coarsening
further while more than `MAX_BARS` bars would remain; the bar chart always uses the exact
busy times.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tessera  # noqa: E402
from tessera.hw import Engine, MemoryKind  # noqa: E402
from tessera.report.lanes import Lane, queue_lanes  # noqa: E402
from tessera.sim import Profile  # noqa: E402

MAX_BARS = 20_000
_LABELLED = 3  # hottest kernel lines labelled on the chart
_HBM_BINS = 300
# A gap narrower than 1/8000 of the run is below one pixel of the ~1500-pixel-wide axis.
_MERGE_RESOLUTION = 8000
_COARSEN = 4
_COLOURS = {
    Engine.TENSOR: "#d62728", Engine.VECTOR: "#1f77b4", Engine.SCALAR: "#2ca02c",
    Engine.GPSIMD: "#9467bd", Engine.SYNC: "#7f7f7f", Engine.UNKNOWN: "#bcbd22",
    Engine.DMA: "#ff7f0e", MemoryKind.HBM: "#8c564b",
}
_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))


def merge_intervals(starts: np.ndarray, ends: np.ndarray, gap: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Join intervals (sorted by start) whose gap to the running end is at most `gap`."""
    if starts.size == 0:
        return starts, ends
    run_end = np.maximum.accumulate(ends)
    new = np.empty(starts.size, dtype=bool)
    new[0] = True
    new[1:] = starts[1:] > run_end[:-1] + gap
    heads = np.flatnonzero(new)
    return starts[heads], np.maximum.reduceat(ends, heads)


def _bars(rows: tuple[Lane, ...], total_s: float
          ) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
    """Per row, the (start, end) arrays to draw and whether they are whole instructions."""
    raw = []
    for lane in rows:
        s = np.fromiter((p.start_s for p in lane.pieces), float, len(lane.pieces))
        d = np.fromiter((p.duration_s for p in lane.pieces), float, len(lane.pieces))
        raw.append((s, s + d))
    if sum(s.size for s, _ in raw) <= MAX_BARS:
        return raw, True
    gap = total_s / _MERGE_RESOLUTION
    while True:
        merged = [merge_intervals(s, e, gap) for s, e in raw]
        if sum(s.size for s, _ in merged) <= MAX_BARS or gap >= total_s:
            return merged, False
        gap *= _COARSEN


def _hbm_rate(profile: Profile, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges in s, HBM bytes per second per bin): each DMA's HBM bytes spread evenly
    over its span."""
    tl = profile.timeline
    total = profile.total_s or 1e-9
    width = total / bins
    diff = np.zeros(bins + 1)  # rates of the bins a DMA covers whole (a running sum)
    edge = np.zeros(bins)  # bytes of the bins it covers in part
    for pos, plan in tl.dma_plans.items():
        moved = plan.hbm_read_bytes + plan.hbm_write_bytes
        start, end = float(tl.start_s[pos]), float(tl.end_s[pos])
        if not moved or end <= start:
            continue
        rate = moved / (end - start)
        b0, b1 = min(bins - 1, int(start / width)), min(bins - 1, int(end / width))
        if b0 == b1:
            edge[b0] += moved
            continue
        edge[b0] += rate * ((b0 + 1) * width - start)
        edge[b1] += rate * (end - b1 * width)
        diff[b0 + 1] += rate
        diff[b1] -= rate
    return np.linspace(0.0, total, bins + 1), np.cumsum(diff[:-1]) + edge / width


def _hot_labels(profile: Profile, rows: tuple[Lane, ...]) -> list[tuple[int, float, str]]:
    """(row, time, "file:line") at the longest instance of each of the hottest lines."""
    insts = profile.timeline.stream.instructions
    out = []
    for hot in profile.top_instructions[:_LABELLED]:
        best = None
        for r, lane in enumerate(rows):
            for piece in lane.pieces:
                inst = insts[piece.position]
                if inst.opcode is hot.opcode and inst.location == hot.location and (
                        best is None or piece.duration_s > best[1].duration_s):
                    best = (r, piece)
        if best is not None:
            r, piece = best
            where = f"{Path(hot.location.file).name}:{hot.location.line}"
            out.append((r, piece.start_s + piece.duration_s / 2, where))
    return out


def _time_unit(total_s: float) -> tuple[float, str]:
    for scale, name in _TIME_UNITS:
        if total_s >= scale:
            return scale, name
    return _TIME_UNITS[-1]


def write_timeline_png(profile: Profile, path: Path | str, *,
                       kernel: str | None = None,
                       overrides: Mapping[str, object] | None = None,
                       dpi: int = 100) -> Path:
    """Draw the Gantt chart, HBM bandwidth and utilisation bars of `profile` into a PNG.

    The title records the kernel, chip, tessera version and any hardware overrides.
    """
    rows = queue_lanes(profile)
    total = profile.total_s or 1e-9
    scale, unit = _time_unit(total)
    bars, whole = _bars(rows, total)
    height = 2.5 + 0.28 * len(rows)
    fig, (gantt, hbm, util) = plt.subplots(
        3, 1, figsize=(15, height + 4.5),
        gridspec_kw={"height_ratios": [max(len(rows), 1) * 0.28 + 0.5, 1.6, 2.0]})
    critical = frozenset(profile.timeline.critical_path)
    labels = []
    for i, (lane, (s, e)) in enumerate(zip(rows, bars, strict=True)):
        spans = np.column_stack(((s / scale), (e - s) / scale))
        gantt.broken_barh(spans, (i - 0.4, 0.8), facecolors=_COLOURS[lane.resource],
                          edgecolors="white", linewidth=0.4 if whole else 0.0, alpha=0.9)
        on_path = [(p.start_s / scale, p.duration_s / scale) for p in lane.pieces
                   if p.position in critical]
        if on_path:
            gantt.broken_barh(on_path, (i - 0.45, 0.9), facecolors="none",
                              edgecolors="black", linewidth=1.0)
        labels.append(f"core {lane.core} {lane.label}" if profile.cores > 1 else lane.label)
    for k, (r, t, where) in enumerate(_hot_labels(profile, rows)):
        gantt.annotate(where, (t / scale, r - 0.4), xytext=(0, 2 + 8 * k),
                       textcoords="offset points", ha="center", fontsize=7, color="black",
                       arrowprops={"arrowstyle": "-", "linewidth": 0.5})
    gantt.set_yticks(range(len(rows)), labels, fontsize=8)
    gantt.set_ylim(len(rows) - 0.5, -0.7)
    gantt.set_xlim(0.0, total / scale)
    what = f"{kernel} on {profile.chip}" if kernel else profile.chip
    extra = ", ".join(f"{k}={v}" for k, v in (overrides or {}).items())
    gantt.set_title(f"{what}: {total / scale:.4g} {unit}, {profile.instructions} instructions"
                    f" (tessera {tessera.__version__}{'; ' + extra if extra else ''}); "
                    "black outline: critical path")
    edges, rate = _hbm_rate(profile, _HBM_BINS)
    hbm.stairs(rate / 1e9, edges / scale, fill=True, color=_COLOURS[MemoryKind.HBM])
    hbm.axhline(profile.peak_hbm_bytes_per_s / 1e9, color="black", linestyle="--",
                linewidth=0.8, label="HBM share of the core" + ("s" if profile.cores > 1 else ""))
    hbm.set_xlim(0.0, total / scale)
    hbm.set_ylabel("HBM GB/s", fontsize=8)
    hbm.set_xlabel(f"time ({unit})")
    hbm.legend(loc="upper right", fontsize=7)
    names = [u.resource.value for u in profile.engines]
    values = [100.0 * u.utilisation for u in profile.engines]
    colours = [_COLOURS[u.resource] for u in profile.engines]
    util.barh(names, values, color=colours)
    for y, v in enumerate(values):
        util.text(v + 0.5, y, f"{v:.1f}%", va="center", fontsize=8)
    util.set_xlim(0.0, max(100.0, max(values, default=0.0) * 1.1))
    util.invert_yaxis()
    util.set_xlabel(f"busy (% of wall time), bound: {profile.bound.value}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
