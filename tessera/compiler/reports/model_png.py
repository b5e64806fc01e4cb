"""A compiled model's time per layer as a PNG: one horizontal stacked bar per layer.

Rows are the layers, `ModelProfile.layer_of` (`embed_tokens`, `layers.0`, ..., `lm_head`), in the
order the model reaches them, top to bottom; each bar is split by what its time is spent
on (`model_ops.op_group`: matmul, attention, norm, elementwise, embedding, copy, host;
views take no time). The bar's total and its share of the model's time are written at its
end, and the title gives the model, chip, fidelity, total and tessera version.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402

import tessera  # noqa: E402
from tessera.compiler.profile import ModelProfile  # noqa: E402
from tessera.compiler.reports.model_ops import GROUPS, op_group  # noqa: E402

COLOURS = {
    "matmul": "#d62728", "attention": "#9467bd", "norm": "#2ca02c", "elementwise": "#1f77b4",
    "embedding": "#17becf", "copy": "#ff7f0e", "host": "#7f7f7f", "view": "#bcbd22",
}
_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))
_ROW_INCHES = 0.32


def _time_unit(total_s: float) -> tuple[float, str]:
    for scale, name in _TIME_UNITS:
        if total_s >= scale:
            return scale, name
    return _TIME_UNITS[-1]


def layer_groups(profile: ModelProfile) -> dict[str, dict[str, float]]:
    """Per layer (`ModelProfile.layer_of`, in first-reached order), seconds per op group."""
    rows: dict[str, dict[str, float]] = {}
    for op in profile.ops:
        row = rows.setdefault(profile.layer_of(op), dict.fromkeys(GROUPS, 0.0))
        row[op_group(op)] += op.time_s
    return rows


def write_model_png(profile: ModelProfile, path: Path | str, *, title: str | None = None,
                    dpi: int = 100) -> Path:
    """Draw the per-layer stacked bars of `profile` into a PNG and return the path.

    `title` names the model (default: "model"); the chip, fidelity, total and tessera
    version are always added.
    """
    rows = layer_groups(profile)
    total = profile.total_s
    scale, unit = _time_unit(total or 1e-9)
    used = [g for g in GROUPS if any(r[g] > 0 for r in rows.values())]
    names = list(rows)
    fig, ax = plt.subplots(figsize=(12, 1.6 + _ROW_INCHES * max(len(names), 1)))
    left = [0.0] * len(names)
    for group in used:
        widths = [rows[n][group] / scale for n in names]
        ax.barh(names, widths, left=left, color=COLOURS[group], label=group, height=0.7,
                edgecolor="white", linewidth=0.4)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    widest = max(left, default=0.0) or 1.0
    for y, (name, width) in enumerate(zip(names, left, strict=True)):
        share = sum(rows[name].values()) / total if total else 0.0
        ax.text(width + widest * 0.01, y, f"{width:.3g} {unit} ({share:.1%})", va="center",
                fontsize=8)
    ax.set_xlim(0.0, widest * 1.18)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first layer at the top
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"predicted time ({unit}); the model's time is the sum of its ops")
    ax.grid(axis="x", linewidth=0.3, alpha=0.6)
    ax.set_axisbelow(True)
    if used:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    what = title or "model"
    ax.set_title(f"{what} on {profile.chip} ({profile.fidelity}): {total / scale:.4g} {unit}"
                 f" predicted, {len(profile.ops)} ops (tessera {tessera.__version__})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
