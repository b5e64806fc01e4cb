"""`tessera collective OP`: predicted time and bandwidth of a collective on an instance.

    tessera collective ALL_REDUCE --bytes 64MiB --ranks 16 --instance trn1.32xlarge
    tessera collective all_reduce            # every logical core of trn1.32xlarge, 64 MiB
    tessera collective all_gather --ranks 32 --instance trn1.32xlarge --sweep --png ag.png
    tessera collective ALL_REDUCE --bytes 1GiB --ranks 256 --instance trn2.48xlarge \
        --instances 4 --algorithm hierarchical --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tessera import hw, net
from tessera.cli.errors import USAGE_ERROR, CliUsageError, guard
from tessera.cli.paths import check_writable
from tessera.net import CollectiveCost

__all__ = ["USAGE_ERROR", "app", "collective"]

app = typer.Typer(
    help="Predict a collective's time on an instance topology (nccom-test style output).",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _gbps(x: float) -> str:
    return f"{x / 1e9:.2f} GB/s"


def _print_one(cost: CollectiveCost, model: net.CollectiveModel) -> None:
    typer.echo(f"{cost.op.value} of {net.format_bytes(cost.n_bytes)} ({cost.n_bytes} B) over "
               f"{_n(cost.ranks, 'rank')} on {model.topology.name} "
               f"(LNC={model.rank_map.lnc}, {_n(model.rank_map.ranks_per_chip, 'rank')} per "
               "chip)")
    typer.echo(f"  algorithm      {cost.algorithm.value} ({_n(cost.steps, 'step')})")
    typer.echo(f"  time           {cost.time_s * 1e6:.1f} us")
    typer.echo(f"  algbw          {_gbps(cost.algbw_bytes_per_s)}")
    typer.echo(f"  busbw          {_gbps(cost.busbw_bytes_per_s)}")
    if cost.busiest_link is None:
        typer.echo("  busiest link   none (all ranks share one chip: HBM only)")
    else:
        share = cost.busiest_link_busy_s / cost.time_s
        typer.echo(f"  busiest link   {cost.busiest_link} busy "
                   f"{cost.busiest_link_busy_s * 1e6:.1f} us ({100 * share:.0f} % of the time)")
    if len(cost.candidates) > 1:
        alts = ", ".join(f"{a.value} {t * 1e6:.1f} us" for a, t in cost.candidates)
        typer.echo(f"  candidates     {alts}")


def _print_sweep(costs: list[CollectiveCost]) -> None:
    typer.echo(f"{'size(B)':>12} {'time(us)':>11} {'algbw(GB/s)':>12} {'busbw(GB/s)':>12}  "
               "algorithm")
    for c in costs:
        typer.echo(f"{c.n_bytes:>12d} {c.time_s * 1e6:>11.1f} {c.algbw_bytes_per_s / 1e9:>12.2f} "
                   f"{c.busbw_bytes_per_s / 1e9:>12.2f}  {c.algorithm.value}")


def _plot(costs: list[CollectiveCost], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    sizes = [c.n_bytes for c in costs]
    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(10, 4))
    ax_t.loglog(sizes, [c.time_s * 1e6 for c in costs], marker="o")
    ax_t.set_xlabel("size (bytes)")
    ax_t.set_ylabel("time (us)")
    ax_b.semilogx(sizes, [c.busbw_bytes_per_s / 1e9 for c in costs], marker="o")
    ax_b.set_xlabel("size (bytes)")
    ax_b.set_ylabel("bus bandwidth (GB/s)")
    for ax in (ax_t, ax_b):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@app.command()
@guard
def collective(
    op: Annotated[str, typer.Argument(metavar="OP", help="ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, "
                                           "ALL_TO_ALL, BROADCAST, SEND_RECV or PERMUTE.")],
    n_bytes: Annotated[str, typer.Option("--bytes", help="Size: 4096, 64MiB, 1GB, ...")] = "64MiB",
    ranks: Annotated[int | None, typer.Option(
        help="Ranks taking part, placed NXD-style (default: every logical core of the "
             "instances, so the collective crosses chips).")] = None,
    instance: Annotated[str, typer.Option(help="Instance preset.")] = "trn1.32xlarge",
    instances: Annotated[int, typer.Option(help="Instances joined by the network.")] = 1,
    algorithm: Annotated[str, typer.Option(help="auto, ring, ring_bidir, direct, rhd, torus "
                                                "or hierarchical.")] = "auto",
    lnc: Annotated[int | None, typer.Option(help="Logical core size (Trn2: 1 or 2).")] = None,
    ranks_per_chip: Annotated[int | None, typer.Option(help="Ranks per chip (default: "
                                                            "every logical core).")] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="Sizes 1 KiB .. 1 GiB (x4).")] = False,
    png: Annotated[Path | None, typer.Option(help="PNG path for --sweep.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Predict time, algorithm bandwidth, bus bandwidth and the busiest link of a collective."""
    if png is not None:
        if not sweep:
            raise CliUsageError("--png draws the size sweep: add --sweep (or drop --png)")
        check_writable(png, "--png")
    parsed_op = net.parse_op(op)
    preset = _instance(instance)
    if ranks is None:
        ranks = preset.chip_count * preset.chip.logical_cores(lnc) * instances
    model = net.CollectiveModel.for_instance(instance, ranks, instances, lnc, ranks_per_chip)
    group = [0, 1] if parsed_op is net.CollectiveOp.SEND_RECV else None
    if sweep:
        costs = model.sweep(parsed_op, net.size_sweep(), group, algorithm)
    else:
        size = net.parse_bytes(n_bytes)
        per_rank = preset.chip.hbm_bytes // max(1, model.rank_map.ranks_per_chip)
        if size > per_rank:
            raise CliUsageError(f"--bytes {n_bytes} ({net.format_bytes(size)}) exceeds the "
                                f"{net.format_bytes(per_rank)} of HBM each rank has on "
                                f"{preset.name}")
        costs = [model.cost(parsed_op, size, group, algorithm)]
    if as_json:
        for c in costs:
            typer.echo(json.dumps(c.as_dict()))
    elif sweep:
        _print_sweep(costs)
    else:
        _print_one(costs[0], model)
    if sweep:
        path = png or Path(f"collective_{parsed_op.value}_{model.topology.name}.png".replace(
            " ", ""))
        _plot(costs, f"{parsed_op.value}, {_n(ranks, 'rank')}, {model.topology.name}", path)
        if not as_json:
            typer.echo(f"wrote {path}")


def _instance(name: str) -> hw.InstanceSpec:
    """The instance preset, or the network model's one-line error for an unknown name."""
    try:
        return hw.load_instance(name)
    except hw.UnknownPresetError:
        net.from_instance(name)  # raises TopologyError naming the instances
        raise
