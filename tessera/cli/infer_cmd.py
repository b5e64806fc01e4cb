"""`tessera plan infer`: TTFT, TPOT, throughput and $ per token of LLM inference.

    tessera plan infer --model llama3-70b --input 2048 --output 2048 --batch 4 \\
        --instance trn1.32xlarge [--tp 32] [--json]
    tessera plan infer --model llama3-8b --input 1024 --output 256 \\
        --instances inf2.48xlarge,trn1.32xlarge,trn2.48xlarge,p5.48xlarge
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tessera import cost
from tessera.cli.errors import CliUsageError, guard
from tessera.cli.options import RayOption, WorkersOption, batch_executor
from tessera.plan.infer import InferEstimate, InferObjective, InferPins, InferPlan, infer
from tessera.plan.serving import ServingStack, WeightDtype


def _ms(s: float) -> str:
    return f"{s * 1e3:,.1f} ms"


def _money(x: float | None) -> str:
    return "unknown" if x is None else (f"${x:.3g}" if x < 1 else f"${x:,.2f}")


def _enum(kind, value: str | None, option: str):  # noqa: ANN001, ANN202
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        choices = "|".join(m.value for m in kind)
        raise CliUsageError(f"{option} {value!r}: choose {choices}") from None


def _table(plan: InferPlan, title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("#", "deployment", "batch", "TTFT", "TPOT", "tok/s/request", "tok/s/instance",
                "padding (prefill/batch/KV)", "mem GiB", "max batch", "$/hour", "$/M out"):
        t.add_column(col, justify="left" if col == "deployment" else "right")
    for i, e in enumerate(plan.rows, 1):
        m = e.memory
        t.add_row(str(i), e.serving.label(), str(e.batch), _ms(e.ttft_s), _ms(e.tpot_s),
                  f"{e.output_tokens_per_s_per_request:,.1f}",
                  f"{e.output_tokens_per_s:,.0f}",
                  f"{e.prefill_padding:.0%}/{e.decode_padding:.0%}/{e.kv_padding:.0%}",
                  f"{m.total_bytes / 2**30:.1f}/{m.capacity_bytes / 2**30:.1f}",
                  str(m.max_batch), _money(e.usd_per_hour),
                  _money(e.usd_per_million_output_tokens))
    return t


def _breakdown(console: Console, e: InferEstimate) -> None:
    t = Table(box=box.SIMPLE_HEAD, title=f"best: {e.serving.label()}, batch {e.batch}",
              title_justify="left")
    t.add_column("term")
    t.add_column("prefill step", justify="right")
    t.add_column("decode step", justify="right")
    p, d = e.prefill.as_dict(), e.decode.as_dict()
    for key in p:
        t.add_row(key.removesuffix("_s").replace("_", " "), _ms(p[key]), _ms(d[key]))
    t.add_row("step", _ms(e.prefill.total_s), _ms(e.decode.total_s))
    console.print(t)
    m = e.memory
    console.print(f"memory per device: weights {m.weights_bytes / 2**30:.2f} GiB + KV cache "
                  f"{m.kv_bytes / 2**30:.2f} GiB ({m.kv_per_seq_bytes / 2**20:.1f} MiB per "
                  f"sequence of {e.serving.max_model_len} tokens) + workspace "
                  f"{m.workspace_bytes / 2**30:.2f} GiB of {m.capacity_bytes / 2**30:.1f} GiB; "
                  f"{m.max_batch} sequences fit")


def _fidelity_note(console: Console, plans: list[InferPlan]) -> None:
    for plan in plans:
        if plan.refined:
            console.print(f"{plan.instance}: the top {plan.refined} re-evaluated at "
                          "SIMULATED fidelity")
    rough = [p.instance for p in plans if not p.refined and any(
        e.fidelity is cost.Fidelity.ROOFLINE for e in p.rows) and not _is_gpu(p.instance)]
    if rough:
        console.print(f"note: op times on {', '.join(rough)} are ROOFLINE, a lower bound "
                      "(the vendor's trn2 70B decode runs about 2x slower than it); "
                      "--refine K or --fidelity simulated re-prices with the library kernels "
                      "on the simulated core.")


def _is_gpu(instance: str) -> bool:
    from tessera.plan.devices import load_instance
    from tessera.plan.infer import device_is_gpu

    return device_is_gpu(load_instance(instance))


@guard
def plan_infer(
    model: Annotated[str, typer.Option("--model", help="Model zoo name.")],
    input_tokens: Annotated[int, typer.Option("--input", help="Prompt tokens.")] = 1024,
    output_tokens: Annotated[int, typer.Option("--output", help="Generated tokens.")] = 256,
    batch: Annotated[int | None, typer.Option(
        "--batch", help="Requests decoded together (default: searched).")] = None,
    instance: Annotated[str, typer.Option("--instance")] = "trn2.48xlarge",
    instances: Annotated[str, typer.Option(
        "--instances", help="Instance types to compare (a,b,c).")] = "",
    serving: Annotated[str | None, typer.Option(
        "--serving", help="vllm or nxdi (default: vllm on trn2/trn3 and GPUs, nxdi on "
        "trn1/inf2).")] = None,
    tp: Annotated[int | None, typer.Option("--tp")] = None,
    replicas: Annotated[int | None, typer.Option("--replicas", help="DP replicas.")] = None,
    lnc: Annotated[int | None, typer.Option("--lnc")] = None,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len")] = None,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs")] = None,
    block_size: Annotated[int, typer.Option("--block-size")] = 32,
    weights: Annotated[str, typer.Option("--weights", help="bf16, fp8 or int8.")] = "bf16",
    kv_fp8: Annotated[bool, typer.Option("--kv-fp8", help="An fp8 KV cache.")] = False,
    context_buckets: Annotated[bool, typer.Option(
        "--context-buckets", help="vLLM decode context-length buckets.")] = False,
    host_sampling: Annotated[bool, typer.Option(
        "--host-sampling", help="Sample on the host instead of the device.")] = False,
    prefix_hit_rate: Annotated[float, typer.Option("--prefix-hit-rate")] = 0.0,
    objective: Annotated[str, typer.Option(
        "--objective", help="latency, throughput or cost.")] = "latency",
    ttft_slo: Annotated[float | None, typer.Option("--ttft-slo", help="Seconds.")] = None,
    tpot_slo: Annotated[float | None, typer.Option("--tpot-slo", help="Seconds.")] = None,
    top: Annotated[int, typer.Option("--top")] = 8,
    fidelity: Annotated[str, typer.Option(
        "--fidelity", help="roofline (formula, a lower bound) or simulated (library "
        "kernels on the simulated core; tunes new shapes, about a minute per model).")
    ] = "roofline",
    refine: Annotated[int, typer.Option(
        "--refine", metavar="K", help="Re-evaluate the top K deployments at SIMULATED "
        "fidelity (their kernel shapes tuned side by side first).")] = 0,
    workers: WorkersOption = None,
    ray: RayOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    emit: Annotated[Path | None, typer.Option(
        "--emit", help="Write the best deployment's serving config and command to DIR.")
    ] = None,
) -> None:
    """Predict TTFT, TPOT, throughput and cost of LLM inference deployments."""
    pins = InferPins(
        stack=_enum(ServingStack, serving, "--serving"), tp=tp, replicas=replicas, lnc=lnc,
        max_model_len=max_model_len, max_num_seqs=max_num_seqs, block_size=block_size,
        weight_dtype=_enum(WeightDtype, weights, "--weights"), kv_fp8=kv_fp8,
        context_buckets=context_buckets, on_device_sampling=not host_sampling)
    obj = _enum(InferObjective, objective, "--objective")
    fid = _enum(cost.Fidelity, fidelity, "--fidelity")
    if refine < 0:
        raise CliUsageError(f"--refine {refine}: give 0 or more deployments")
    simulated = fid is cost.Fidelity.SIMULATED or refine > 0
    executor = batch_executor(workers, ray) if simulated else None
    err = Console(stderr=True, highlight=False)

    def tuned(step) -> None:  # noqa: ANN001 - cost.batch.BatchStep
        err.print(f"  tuned {step.request.op} {dict(step.request.shapes)} "
                  f"({step.done}/{step.total})")

    types = [t.strip() for t in instances.split(",") if t.strip()] or [instance]
    plans = [infer(model, input_tokens, output_tokens, name, batch=batch, pins=pins,
                   objective=obj, ttft_slo_s=ttft_slo, tpot_slo_s=tpot_slo,
                   prefix_hit_rate=prefix_hit_rate, top=top, fidelity=fid, refine=refine,
                   executor=executor, progress=tuned if simulated else None)
             for name in types]
    if as_json:
        for plan in plans:
            for e in plan.rows:
                typer.echo(json.dumps({"instance": plan.instance, **e.as_dict()}))
    else:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:
            console.width = max(console.width, 170)
        head = (f"{plans[0].workload.model_name}: {input_tokens} tokens in, {output_tokens} "
                "out")
        for plan in plans:
            console.print(_table(plan, f"{head} on {plan.instance} "
                                       f"({plan.price.label()})"))
        if len(plans) == 1:
            _breakdown(console, plans[0].best)
        _fidelity_note(console, plans)
    if emit is not None:
        from tessera.plan.emit_serving import write_serving

        best = min((p.best for p in plans), key=lambda e: e.ttft_s + output_tokens * e.tpot_s)
        written = write_serving(best, plans[0].workload, emit)
        if not as_json:
            typer.echo(f"wrote {', '.join(str(p) for p in written)}")
