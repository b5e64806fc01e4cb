"""A kernel's timeline as a PNG: a Gantt chart of every lane and engine utilisation bars.

Rows are the lanes of `tessera.report.lanes` (engine queues, DMA engines). Streams of a
million pieces are drawn quickly by merging, per row, pieces separated by gaps too small to
see (under 1/`_MERGE_RESOLUTION` of the kernel's time), and coarsening further while more
than `MAX_BARS` bars would remain; the bar chart always uses the exact busy times.
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
from tessera.report.lanes import Lane, lanes  # noqa: E402
from tessera.sim import Profile  # noqa: E402

MAX_BARS = 20_000
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


def _bars(rows: tuple[Lane, ...], total_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    raw = []
    for lane in rows:
        s = np.fromiter((p.start_s for p in lane.pieces), float, len(lane.pieces))
        d = np.fromiter((p.duration_s for p in lane.pieces), float, len(lane.pieces))
        raw.append((s, s + d))
    gap = total_s / _MERGE_RESOLUTION
    while True:
        merged = [merge_intervals(s, e, gap) for s, e in raw]
        if sum(s.size for s, _ in merged) <= MAX_BARS or gap >= total_s:
            return merged
        gap *= _COARSEN


def _time_unit(total_s: float) -> tuple[float, str]:
    for scale, name in _TIME_UNITS:
        if total_s >= scale:
            return scale, name
    return _TIME_UNITS[-1]


def write_timeline_png(profile: Profile, path: Path | str, *,
                       kernel: str | None = None,
                       overrides: Mapping[str, object] | None = None,
                       dpi: int = 100) -> Path:
    """Draw the Gantt chart and utilisation bars of `profile` into a PNG at `path`.

    The title records the kernel, chip, tessera version and any hardware overrides.
    """
    rows = lanes(profile)
    total = profile.total_s or 1e-9
    scale, unit = _time_unit(total)
    bars = _bars(rows, total)
    height = 2.5 + 0.28 * len(rows)
    fig, (gantt, util) = plt.subplots(
        2, 1, figsize=(15, height + 2.5),
        gridspec_kw={"height_ratios": [max(len(rows), 1) * 0.28 + 0.5, 2.0]})
    labels = []
    for i, (lane, (s, e)) in enumerate(zip(rows, bars, strict=True)):
        spans = np.column_stack(((s / scale), (e - s) / scale))
        gantt.broken_barh(spans, (i - 0.4, 0.8), facecolors=_COLOURS[lane.resource],
                          linewidth=0)
        labels.append(f"core {lane.core} {lane.label}" if profile.cores > 1 else lane.label)
    gantt.set_yticks(range(len(rows)), labels, fontsize=8)
    gantt.set_ylim(len(rows) - 0.5, -0.5)
    gantt.set_xlim(0.0, total / scale)
    gantt.set_xlabel(f"time ({unit})")
    what = f"{kernel} on {profile.chip}" if kernel else profile.chip
    extra = ", ".join(f"{k}={v}" for k, v in (overrides or {}).items())
    gantt.set_title(f"{what}: {total / scale:.4g} {unit}, {profile.instructions} instructions"
                    f" (tessera {tessera.__version__}{'; ' + extra if extra else ''})")
    names = [u.resource.value for u in profile.engines]
    values = [100.0 * u.utilisation for u in profile.engines]
    colours = [_COLOURS[u.resource] for u in profile.engines]
    util.barh(names, values, color=colours)
    for y, v in enumerate(values):
        util.text(v + 0.5, y, f"{v:.1f}%", va="center", fontsize=8)
    util.set_xlim(0.0, max(100.0, max(values, default=0.0) * 1.1))
    util.invert_yaxis()
    util.set_xlabel(f"utilisation (%), bound: {profile.bound.value}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
