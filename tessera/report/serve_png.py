"""PNG of a serving simulation over time: batch size, KV-cache use and queue length, one line
per replica (`tessera.plan.serve_sim.simulate`'s timeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tessera.plan.serve_metrics import ServeResult

MAX_POINTS = 20_000  # per replica and panel: more steps than this are thinned evenly


def _thin(idx: np.ndarray) -> np.ndarray:
    if len(idx) <= MAX_POINTS:
        return idx
    return idx[np.linspace(0, len(idx) - 1, MAX_POINTS).astype(np.int64)]


def serve_png(result: ServeResult, path: str | Path) -> Path:
    """Plot, against time, each replica's running requests (and the sequences each step
    ran), its share of KV-cache blocks in use, and its waiting queue, into `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    tl = result.timeline
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for k in range(result.replicas):
        idx = _thin(np.flatnonzero(tl.replica == k))
        t = tl.start_s[idx]
        label = f"replica {k}" if result.replicas > 1 else None
        line = axes[0].step(t, tl.running_seqs[idx], where="post", lw=1, label=label)[0]
        axes[0].step(t, tl.step_seqs[idx], where="post", lw=0.5, alpha=0.35,
                     color=line.get_color())
        axes[1].step(t, 100.0 * tl.kv_used_frac[idx], where="post", lw=1,
                     color=line.get_color())
        axes[2].step(t, tl.queued[idx], where="post", lw=1, color=line.get_color())
    cfg = result.config
    axes[0].set_ylabel("requests running\n(faint: seqs in step)", fontsize=8)
    axes[0].axhline(cfg.max_num_seqs, color="grey", ls=":", lw=0.8)
    axes[1].set_ylabel("KV blocks in use (%)", fontsize=8)
    axes[1].set_ylim(0, 105)
    axes[2].set_ylabel("requests queued", fontsize=8)
    axes[2].set_ylim(0, max(1.0, 1.05 * float(tl.queued.max(initial=0))))
    axes[2].set_xlabel("time (s)")
    m = result.metrics()
    axes[0].set_title(
        f"{result.load_name}: {cfg.kind.value} scheduler, max_num_seqs {cfg.max_num_seqs}, "
        f"{result.replicas} replica(s); {m['request_throughput']:.2f} req/s, "
        f"mean TTFT {m['mean_ttft_ms']:.0f} ms, mean TPOT {m['mean_tpot_ms']:.1f} ms",
        fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if result.replicas > 1:
        axes[0].legend(fontsize=7, ncol=min(4, result.replicas))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
