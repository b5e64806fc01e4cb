"""PNG of a training plan: throughput against cost, every Pareto-optimal configuration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tessera.plan.search import TrainPlan


def pareto_png(plans: Sequence[TrainPlan], path: str | Path) -> Path:
    """Plot each plan's Pareto front (tokens/s against $ per million tokens, or against
    devices when the instance has no known price) into `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    priced = all(p.price.usd_per_hour is not None for p in plans)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for plan in plans:
        xs = [r.estimate.tokens_per_s for r in plan.pareto]
        ys = [r.costs.usd_per_million_tokens if priced else r.estimate.devices
              for r in plan.pareto]
        ax.plot(xs, ys, marker="o", label=f"{plan.instance} ({plan.price.label()})")
        best = plan.best
        ax.annotate(best.config.label(), (best.estimate.tokens_per_s,
                                          best.costs.usd_per_million_tokens if priced
                                          else best.estimate.devices),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("throughput (tokens/s)")
    ax.set_ylabel("$ per million tokens" if priced else "devices (price unknown)")
    w = plans[0].workload
    ax.set_title(f"{w.model_name}, seq {w.seq_len}, global batch {w.global_batch}: "
                 "Pareto front", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
