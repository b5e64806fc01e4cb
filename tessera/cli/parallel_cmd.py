"""`tessera parallel explain`: what one step of a parallel layout communicates and costs.

    tessera parallel explain --config job.toml --instance trn1.32xlarge
    tessera parallel explain --tp 2 --fsdp 2 --sp --instance trn2.48xlarge --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Annotated

import typer

from tessera.cli.errors import CliUsageError, guard

app = typer.Typer(no_args_is_help=True)


@app.command("explain")
@guard
def explain_cmd(
    instance: Annotated[str, typer.Option("--instance")] = "trn1.32xlarge",
    config: Annotated[Path | None, typer.Option(
        "--config", help="A TorchTitan-style job TOML (tessera plan train --emit).")] = None,
    tp: Annotated[int | None, typer.Option("--tp")] = None,
    pp: Annotated[int | None, typer.Option("--pp")] = None,
    fsdp: Annotated[int | None, typer.Option("--fsdp", help="FSDP2 shard degree.")] = None,
    dp: Annotated[int | None, typer.Option("--dp", help="Replicate degree.")] = None,
    schedule: Annotated[str | None, typer.Option(
        "--schedule", help="GPipe, 1F1B or Interleaved1F1B.")] = None,
    microbatches: Annotated[int | None, typer.Option("--microbatches")] = None,
    ac: Annotated[str | None, typer.Option("--ac", help="none, selective or full.")] = None,
    sp: Annotated[bool, typer.Option("--sp", help="Sequence parallel.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="Llama-family zoo model (default: the job's, else tiny-llama); it "
        "runs for real here, so keep it small.")] = None,
    layers: Annotated[int | None, typer.Option("--layers")] = None,
    batch: Annotated[int | None, typer.Option("--batch")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run one step of a layout on local processes, record its collectives and ops, and
    predict its step time on an instance."""
    from tessera.parallel.explain import as_json as to_json
    from tessera.parallel.explain import explain, render
    from tessera.parallel.run import configure

    args = argparse.Namespace(
        config=str(config) if config else None, tp=tp, pp=pp, fsdp=fsdp, dp=dp,
        schedule=schedule, microbatches=microbatches, ac=ac, sp=sp or None,
        loss_parallel=None, model=model, layers=layers, steps=1, batch=batch,
        seq_len=seq_len, optimizer="adamw", lr=1e-3)
    cfg, settings = configure(args)
    m = settings.model
    if cfg.dp_shard == -1:
        raise CliUsageError("data_parallel_shard_degree -1: explain needs the degree itself")
    cfg = cfg.check(cfg.world_size, m.num_heads, m.num_kv_heads, m.num_layers, settings.batch)
    e = explain(cfg, settings, instance)
    typer.echo(json.dumps(to_json(e)) if as_json else render(e))
