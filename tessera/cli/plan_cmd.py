"""`tessera plan`: which instances, which parallelism, how fast, what it costs.

    tessera plan train --model llama3-70b --seq 8192 --global-batch 1024 \\
        --instance trn1.32xlarge --instances 1..64 --top 10 --png pareto.png
    tessera plan train --model llama3-8b --instances trn1.32xlarge,trn2.48xlarge,p5.48xlarge
    tessera plan train --model llama3-8b --instance trn1.32xlarge --instances 4 \\
        --tp 8 --pp 1 --micro-batch 1 --recompute selective --zero1 --json
    tessera plan models
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tessera import hw
from tessera.cli import infer_cmd
from tessera.cli.errors import CliUsageError, guard
from tessera.cli.options import RayOption, WorkersOption, batch_executor
from tessera.cli.paths import check_writable
from tessera.plan.emit import write_job
from tessera.plan.search import Objective, Pins, PlanRow, TrainPlan, search
from tessera.plan.space import DataParallel, PipelineSchedule, Recompute
from tessera.plan.workload import LoraConfig, TrainWorkload

app = typer.Typer(help="Plan training: instances, parallelism, speed and cost.",
                  add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})

DEFAULT_TOKENS = 1e12  # "time and cost to train N tokens": one trillion unless told


def parse_counts(spec: str) -> list[int]:
    """`8`, `1..64` (every count from 1 to 64) or `1,2,4,8`."""
    out: list[int] = []
    try:
        for part in spec.split(","):
            if ".." in part:
                lo, hi = (int(x) for x in part.split("..", 1))
                if lo < 1 or hi < lo:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise CliUsageError(f"--instances {spec!r}: write a count (8), a range (1..64), a list"
                            " (1,2,4) or instance types (trn1.32xlarge,p5.48xlarge)") from None
    if any(n < 1 for n in out):
        raise CliUsageError(f"--instances {spec!r}: counts must be positive")
    return sorted(set(out))


def _instances(spec: str, instance: str, count: str) -> tuple[list[str], list[int]]:
    """(instance types, counts): `spec` is counts for `instance`, or a list of types."""
    if spec and ".." not in spec and not spec.replace(",", "").isdigit():
        types = [t.strip() for t in spec.split(",") if t.strip()]
        return types, parse_counts(count)
    return [instance], parse_counts(spec or count)


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f}"


def _duration(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600:.1f} h"


def _money(x: float | None, fmt: str = "{:,.2f}") -> str:
    if x is None:
        return "unknown"
    if 0 < x < 0.01:
        return f"${x:.2g}"
    return "$" + fmt.format(x)


def _secs(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} us"


def _row_json(row: PlanRow, tokens: float) -> dict[str, object]:
    e, c = row.estimate, row.config
    seconds, dollars = row.costs.to_train(tokens, e.tokens_per_s)
    return {
        "instance": row.instance, "instances": e.instances, "devices": e.devices,
        "config": c.label(), "tp": c.tp, "pp": c.pp, "dp": c.dp, "cp": c.cp, "ep": c.ep,
        "sequence_parallel": c.sequence_parallel, "dp_mode": c.dp_mode.value,
        "dp_shard": c.dp_shard, "reshard_after_forward": c.reshard_after_forward,
        "micro_batch": c.micro_batch, "micro_batches": e.micro_batches,
        "recompute": c.recompute.value, "schedule": c.schedule.value,
        "virtual_stages": c.virtual_stages, "lnc": c.lnc,
        "tokens_per_s": e.tokens_per_s, "seq_per_s": e.seq_per_s,
        "step_time_s": e.step_time_s, "mfu": e.mfu, "hfu": e.hfu,
        "memory_per_device_bytes": e.memory.total_bytes,
        "memory_capacity_bytes": e.memory.capacity_bytes,
        "memory": {"weights": e.memory.weights_bytes, "gradients": e.memory.gradients_bytes,
                   "optimizer": e.memory.optimizer_bytes,
                   "activations": e.memory.activations_bytes,
                   "workspace": e.memory.workspace_bytes},
        "usd_per_hour": row.costs.usd_per_hour,
        "usd_per_million_tokens": row.costs.usd_per_million_tokens,
        "train_tokens": tokens, "train_time_s": seconds, "train_usd": dollars,
        "breakdown": e.breakdown.as_dict(),
    }


def _table(plan: TrainPlan, tokens: float, title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("#", "inst", "devices", "configuration", "tokens/s", "step", "MFU", "HFU",
                "mem GiB", "$/hour", "$/Mtok", f"train {tokens:.0e} tok"):
        t.add_column(col, justify="left" if col == "configuration" else "right")
    for i, row in enumerate(plan.rows, 1):
        e = row.estimate
        seconds, dollars = row.costs.to_train(tokens, e.tokens_per_s)
        t.add_row(str(i), f"{e.instances}", str(e.devices), row.config.label(),
                  f"{e.tokens_per_s:,.0f}", _secs(e.step_time_s), f"{e.mfu:.1%}",
                  f"{e.hfu:.1%}", f"{_gib(e.memory.total_bytes)}/{_gib(e.memory.capacity_bytes)}",
                  _money(row.costs.usd_per_hour), _money(row.costs.usd_per_million_tokens),
                  f"{_duration(seconds)}, {_money(dollars, '{:,.0f}')}")
    return t


def _breakdown(console: Console, row: PlanRow) -> None:
    e = row.estimate
    console.print(f"best: {row.config.label()} on {e.instances} x {row.instance} "
                  f"({e.micro_batches} micro-batches per step)")
    t = Table(box=box.SIMPLE_HEAD)
    t.add_column("step term")
    t.add_column("time", justify="right")
    t.add_column("share", justify="right")
    for name, s in e.breakdown.as_dict().items():
        t.add_row(name.removesuffix("_s").replace("_", " "), _secs(s),
                  f"{s / e.step_time_s:.1%}")
    t.add_row("step", _secs(e.step_time_s), "100%")
    console.print(t)
    m = e.memory
    console.print(f"memory per device: weights {_gib(m.weights_bytes)} + gradients "
                  f"{_gib(m.gradients_bytes)} + optimizer {_gib(m.optimizer_bytes)} + "
                  f"activations {_gib(m.activations_bytes)} + workspace "
                  f"{_gib(m.workspace_bytes)} = {_gib(m.total_bytes)} of "
                  f"{_gib(m.capacity_bytes)} GiB")


@app.command("train")
@guard
def plan_train(
    model: Annotated[str | None, typer.Option(
        "--model", help="Model zoo name (see `tessera plan models`).")] = None,
    hf_config: Annotated[Path | None, typer.Option(
        "--hf-config", help="A Hugging Face config.json instead of --model.")] = None,
    seq: Annotated[int, typer.Option("--seq", help="Sequence length in tokens.")] = 4096,
    global_batch: Annotated[int, typer.Option(
        "--global-batch", help="Sequences per optimizer step.")] = 1024,
    instance: Annotated[str, typer.Option(
        "--instance", help="Instance type (see `tessera hw list`).")] = "trn1.32xlarge",
    instances: Annotated[str, typer.Option(
        "--instances", help="Instance counts (8, 1..64, 1,2,4) or instance types to "
        "compare (trn1.32xlarge,p5.48xlarge).")] = "",
    count: Annotated[str, typer.Option(
        "--count", help="Counts searched per type when --instances lists types.")] = "1..16",
    top: Annotated[int, typer.Option("--top", help="Rows to show.")] = 10,
    objective: Annotated[str, typer.Option(
        "--objective", help="cost ($ per million tokens), throughput or mfu.")] = "cost",
    fidelity: Annotated[str, typer.Option(
        "--fidelity", help="roofline (formula, a lower bound) or simulated (library "
        "kernels on the simulated core; tunes new shapes, minutes each).")] = "roofline",
    dtype: Annotated[str, typer.Option("--dtype", help="bf16, fp8 or mxfp8.")] = "bf16",
    mode: Annotated[str, typer.Option("--mode", help="pretrain, full or lora.")] = "pretrain",
    lora_rank: Annotated[int, typer.Option("--lora-rank", help="LoRA rank.")] = 16,
    lora_targets: Annotated[str, typer.Option(
        "--lora-targets", help="Projections with adapters (of q,k,v,o,gate,up,down).")
    ] = "q,k,v,o,gate,up,down",
    attention: Annotated[str, typer.Option(
        "--attention", help="flash or materialized (unfused, as Megatron-LM in 2022).")
    ] = "flash",
    overlap: Annotated[str | None, typer.Option(
        "--overlap", help="DP/FSDP overlap: none or layer (default: layer on GPUs, none on "
        "Neuron, as each stack does).")] = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Pin tensor parallelism.")] = None,
    pp: Annotated[int | None, typer.Option("--pp", help="Pin pipeline stages.")] = None,
    dp: Annotated[int | None, typer.Option("--dp", help="Pin data parallelism.")] = None,
    cp: Annotated[int | None, typer.Option("--cp", help="Pin context parallelism.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", help="Pin expert parallelism.")] = None,
    micro_batch: Annotated[int | None, typer.Option("--micro-batch")] = None,
    recompute: Annotated[str | None, typer.Option(
        "--recompute", help="none, selective or full.")] = None,
    zero1: Annotated[bool, typer.Option("--zero1", help="Pin ZeRO-1.")] = False,
    fsdp: Annotated[int | None, typer.Option(
        "--fsdp", help="Pin FSDP2 with this shard degree (= dp: fully sharded; smaller: "
        "hybrid).")] = None,
    replicate: Annotated[bool, typer.Option("--replicate", help="Pin DDP.")] = False,
    no_reshard: Annotated[bool, typer.Option(
        "--no-reshard", help="FSDP2 keeps gathered weights after forward.")] = False,
    sequence_parallel: Annotated[bool | None, typer.Option(
        "--sequence-parallel/--no-sequence-parallel")] = None,
    schedule: Annotated[str | None, typer.Option(
        "--schedule", help="gpipe, 1f1b, interleaved_1f1b, interleaved_zb or zbv.")] = None,
    virtual_stages: Annotated[int | None, typer.Option("--virtual-stages")] = None,
    lnc: Annotated[int | None, typer.Option("--lnc", help="Logical core size (trn2).")
                   ] = None,
    refine: Annotated[int, typer.Option(
        "--refine", metavar="K", help="Re-evaluate the top K configurations at SIMULATED "
        "fidelity (their kernel shapes tuned side by side first).")] = 0,
    workers: WorkersOption = None,
    ray: RayOption = None,
    tokens: Annotated[float, typer.Option(
        "--tokens", help="Tokens to train on, for time and cost.")] = DEFAULT_TOKENS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per config.")
                       ] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Pareto plot.")] = None,
    emit: Annotated[Path | None, typer.Option(
        "--emit", help="Write the best configuration as DIR/job.toml (TorchTitan).")] = None,
) -> None:
    """Rank training configurations by speed and cost (pin any dimension to evaluate one)."""
    if (model is None) == (hf_config is None):
        raise CliUsageError("give one of --model NAME or --hf-config PATH")
    if png is not None:
        check_writable(png, "--png")
    if emit is not None:
        # made now, so a folder that cannot be written fails before the search, not after
        try:
            emit.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CliUsageError(f"--emit {emit}: cannot create the folder "
                                f"({err.strerror})") from None
        check_writable(emit / "job.toml", "--emit")
    model_cfg: object = model
    name = None
    if hf_config is not None:
        from tessera.models.config import from_hf_config

        if not hf_config.is_file():
            raise CliUsageError(f"--hf-config {hf_config}: no such file")
        model_cfg = from_hf_config(hf_config)
        # models/Qwen3-8B/config.json is "Qwen3-8B"; my-llama.json is "my-llama"
        name = hf_config.parent.name if hf_config.stem == "config" else hf_config.stem
    lora = (LoraConfig(rank=lora_rank, targets=tuple(t.strip() for t in lora_targets.split(",")
                                                     if t.strip()))
            if mode == "lora" else None)
    w = TrainWorkload.create(model_cfg, seq, global_batch, mode, dtype, lora,  # type: ignore
                             attention, name=name)
    pins = _pins(tp, pp, dp, cp, ep, micro_batch, recompute, zero1, fsdp, replicate,
                 no_reshard, sequence_parallel, schedule, virtual_stages, lnc)
    types, counts = _instances(instances, instance, count)
    if refine < 0:
        raise CliUsageError(f"--refine {refine}: give 0 or more configurations")
    simulated = fidelity == "simulated" or refine > 0
    executor = batch_executor(workers, ray) if simulated else None
    console = Console(highlight=False, soft_wrap=False, stderr=as_json)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # tables in logs and pipes stay readable
    plans = []
    for name in types:
        def progress(done: int, total: int, name: str = name) -> None:
            if console.is_terminal and total > 4:
                console.print(f"  {name}: {done}/{total} instance counts searched",
                              end="\r")
        def tuned(step, name: str = name) -> None:  # noqa: ANN001 - cost.batch.BatchStep
            if not as_json:
                console.print(f"  {name}: tuned {step.request.op} {dict(step.request.shapes)}"
                              f" ({step.done}/{step.total})")
        plans.append(search(w, name, counts, pins=pins, objective=_objective(objective),
                            fidelity=fidelity, overlap=overlap, top=top, refine=refine,
                            executor=executor, progress=progress, tune_progress=tuned))
    if as_json:
        for plan in plans:
            for row in plan.rows:
                typer.echo(json.dumps(_row_json(row, tokens)))
    else:
        _print_plans(console, plans, tokens, fidelity)
    if png is not None:
        from tessera.report.plan_png import pareto_png

        pareto_png(plans, png)
        if not as_json:
            console.print(f"wrote {png}")
    if emit is not None:
        path = write_job(plans[0].best if len(plans) == 1 else _overall(plans, objective),
                         w, emit)
        if not as_json:
            console.print(f"wrote {path} and the launch scripts {path.parent / 'torchrun.sh'}"
                          f", {path.parent / 'sbatch.sh'}")


def _objective(value: str) -> Objective:
    try:
        return Objective(value)
    except ValueError:
        raise CliUsageError(f"--objective {value!r}: choose cost, throughput or mfu") from None


def _overall(plans: list[TrainPlan], objective: str) -> PlanRow:
    from tessera.plan.search import _rank_key

    return min((p.best for p in plans), key=lambda r: _rank_key(r, _objective(objective)))


def _print_plans(console: Console, plans: list[TrainPlan], tokens: float,
                 fidelity: str) -> None:
    w = plans[0].workload
    head = (f"{w.model_name}: seq {w.seq_len}, global batch {w.global_batch}, {w.mode.value},"
            f" {w.dtype.value}; op times at {fidelity.upper()} fidelity")
    if len(plans) == 1:
        plan = plans[0]
        console.print(head)
        refined = (f"; the top {plan.refined} re-evaluated at SIMULATED fidelity"
                   if plan.refined else "")
        console.print(_table(plan, tokens, f"{plan.instance}: {plan.feasible} feasible of "
                                           f"{plan.evaluated} evaluated "
                                           f"({plan.elapsed_s:.1f} s){refined}"))
        _breakdown(console, plan.best)
    else:
        t = Table(title=head + ": the best configuration per instance type",
                  box=box.SIMPLE_HEAD, title_justify="left")
        for col in ("instance", "inst", "configuration", "tokens/s", "MFU", "tokens/s/$",
                    "$/Mtok", f"train {tokens:.0e} tok", "price (date, source)"):
            t.add_column(col, justify="left" if col in ("instance", "configuration",
                                                        "price (date, source)") else "right")
        for plan in plans:
            row, e = plan.best, plan.best.estimate
            seconds, dollars = row.costs.to_train(tokens, e.tokens_per_s)
            per_dollar = (None if row.costs.usd_per_hour is None
                          else e.tokens_per_s / row.costs.usd_per_hour)
            t.add_row(plan.instance, str(e.instances), row.config.label(),
                      f"{e.tokens_per_s:,.0f}", f"{e.mfu:.1%}",
                      "unknown" if per_dollar is None else f"{per_dollar:,.0f}",
                      _money(row.costs.usd_per_million_tokens),
                      f"{_duration(seconds)}, {_money(dollars, '{:,.0f}')}",
                      f"{plan.price.label()} {plan.price.source.split(']')[0]}]"
                      if plan.price.source else plan.price.label())
        console.print(t)
    neuron = [p.instance for p in plans if p.refined == 0
              and isinstance(hw.load_instance(p.instance).chip, hw.ChipSpec)]
    if fidelity == "roofline" and neuron:
        console.print("note: ROOFLINE prices each Neuron kernel at its engine's peak, an upper "
                      "bound on speed (the vendor's trn1 rows run 1.6-1.8x slower); --refine K "
                      "re-prices the top K with the library kernels on the simulated core.")
    for plan in plans:
        if plan.price.usd_per_hour is not None:
            console.print(f"price of {plan.instance}: {plan.price.label()}, source "
                          f"{plan.price.source}")


def _pins(tp, pp, dp, cp, ep, micro_batch, recompute, zero1, fsdp, replicate,  # noqa: ANN001
          no_reshard, sequence_parallel, schedule, virtual_stages, lnc) -> Pins:
    modes = [m for m, on in ((DataParallel.ZERO1, zero1), (DataParallel.FSDP, fsdp is not None),
                             (DataParallel.REPLICATE, replicate)) if on]
    if len(modes) > 1:
        raise CliUsageError("give at most one of --zero1, --fsdp N, --replicate")
    try:
        rc = None if recompute is None else Recompute(recompute)
        sched = None if schedule is None else PipelineSchedule(schedule)
    except ValueError as err:
        raise CliUsageError(f"{err}: --recompute takes none|selective|full, --schedule "
                            "gpipe|1f1b|interleaved_1f1b|interleaved_zb|zbv") from None
    mode = modes[0] if modes else None
    return Pins(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, sequence_parallel=sequence_parallel,
                dp_mode=mode, fsdp_shard=fsdp, reshard_after_forward=False if no_reshard
                else None, micro_batch=micro_batch, recompute=rc, schedule=sched,
                virtual_stages=virtual_stages, lnc=lnc)


app.command("infer", help="LLM inference: TTFT, TPOT, throughput and $ per token of "
                          "deployments (vLLM Neuron, NxD Inference, vLLM on GPUs).")(
    infer_cmd.plan_infer)


@app.command("models")
@guard
def plan_models() -> None:
    """List the model zoo: parameters (total and active per token), layers, attention."""
    from tessera.models.config import PRESETS

    t = Table(box=box.SIMPLE_HEAD)
    for col in ("name", "family", "params", "active", "layers", "hidden", "heads/kv",
                "experts"):
        t.add_column(col, justify="left" if col in ("name", "family") else "right")
    for name, cfg in PRESETS.items():
        total = cfg.num_parameters()
        active = cfg.num_active_parameters() if hasattr(cfg, "num_active_parameters") \
            else total
        moe = getattr(cfg, "moe", None)
        experts = "-" if moe is None else f"{moe.experts_per_token}/{moe.num_experts}"
        t.add_row(name, cfg.family.value, f"{total / 1e9:.2f}B", f"{active / 1e9:.2f}B",
                  str(cfg.num_layers), str(cfg.hidden_size),
                  f"{cfg.num_heads}/{cfg.num_kv_heads}", experts)
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(t)


__all__ = ["app", "parse_counts"]
