"""`tessera serve simulate`: a serving run simulated request by request, reported with the
metric names of `vllm bench serve`.

    tessera serve simulate --model llama3.1-8b --instance trn2.3xlarge --tp 4 \\
        --max-num-seqs 32 --max-model-len 4096 --input 1500 --output 250 --rate 5 \\
        --requests 10000 [--dataset sharegpt.json] [--json] [--png serve.png]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tessera.cli.errors import CliUsageError, guard
from tessera.cli.options import RayOption, WorkersOption, batch_executor
from tessera.cli.paths import check_writable

app = typer.Typer(help="Serving: simulate a vLLM server request by request.",
                  add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})

_METRIC_ORDER = ("completed", "duration", "request_throughput", "output_throughput",
                 "total_token_throughput", "request_goodput", "mean_ttft_ms",
                 "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
                 "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p99_itl_ms",
                 "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms", "max_concurrent_requests")


def _choice(kind, value: str | None, option: str):  # noqa: ANN001, ANN202
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise CliUsageError(f"{option} {value!r}: choose "
                            f"{'|'.join(m.value for m in kind)}") from None


@app.command("simulate")
@guard
def serve_simulate(
    model: Annotated[str, typer.Option("--model", help="Model zoo name.")],
    instance: Annotated[str, typer.Option("--instance")] = "trn2.48xlarge",
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor parallelism per replica "
                                                        "(default: the whole instance).")
                  ] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Copies behind a "
                                                             "least-loaded router.")] = 1,
    lnc: Annotated[int | None, typer.Option("--lnc")] = None,
    serving: Annotated[str | None, typer.Option("--serving", help="vllm or nxdi.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="neuron (vLLM Neuron), vllm (upstream, mixed batches) or static "
        "(default: neuron on Neuron instances, vllm on GPUs).")] = None,
    max_num_seqs: Annotated[int, typer.Option("--max-num-seqs")] = 32,
    max_model_len: Annotated[int, typer.Option("--max-model-len")] = 4096,
    max_num_batched_tokens: Annotated[int | None, typer.Option(
        "--max-num-batched-tokens")] = None,
    block_size: Annotated[int, typer.Option("--block-size")] = 32,
    context_buckets: Annotated[bool, typer.Option("--context-buckets")] = False,
    kv_fp8: Annotated[bool, typer.Option("--kv-fp8")] = False,
    no_prefix_caching: Annotated[bool, typer.Option("--no-prefix-caching")] = False,
    input_len: Annotated[int, typer.Option("--input", help="Prompt tokens (mean).")] = 1024,
    output_len: Annotated[int, typer.Option("--output", help="Output tokens (mean).")] = 128,
    range_ratio: Annotated[float, typer.Option(
        "--range-ratio", help="Lengths drawn within +-ratio of the means (vLLM's random "
        "dataset).")] = 0.0,
    rate: Annotated[float, typer.Option("--rate", help="Requests/s (inf: all at once).")
                    ] = math.inf,
    burstiness: Annotated[float, typer.Option("--burstiness", help="1: Poisson; other: "
                                                                   "gamma.")] = 1.0,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency")] = None,
    requests: Annotated[int, typer.Option("--requests")] = 1000,
    dataset: Annotated[Path | None, typer.Option("--dataset", help="ShareGPT JSON.")] = None,
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="JSONL/CSV of arrival_s, input_tokens, output_tokens.")] = None,
    goodput: Annotated[list[str] | None, typer.Option(
        "--goodput", help="SLO NAME:MS (ttft, tpot, e2el), repeatable.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fidelity: Annotated[str, typer.Option(
        "--fidelity", help="roofline (formula, a lower bound) or simulated (library kernels "
        "on the simulated core; a dry run collects the step shapes, tuned side by side).")
    ] = "roofline",
    workers: WorkersOption = None,
    ray: RayOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Batch, KV use and queue over "
                                                           "time.")] = None,
) -> None:
    """Simulate serving a load and print `vllm bench serve`'s metrics."""
    from tessera.cost import Fidelity
    from tessera.plan.devices import Device, DeviceKind, load_instance
    from tessera.plan.infer_refine import tune_recorded
    from tessera.plan.infer_step import InferCost
    from tessera.plan.serve_cost import InferStepCost
    from tessera.plan.serve_load import random_load, with_arrivals
    from tessera.plan.serve_sim import simulate
    from tessera.plan.serve_trace import read_sharegpt, read_trace
    from tessera.plan.serve_types import SchedulerConfig, SchedulerKind, ServeSlo
    from tessera.plan.serving import ServingConfig, ServingStack, default_stack
    from tessera.plan.workload import resolve_model

    if png is not None:
        check_writable(png, "--png")
    name, cfg = resolve_model(model)
    spec = load_instance(instance)
    device = Device.create(spec, lnc)
    gpu = device.kind is DeviceKind.GPU
    per_replica = tp or device.per_instance // replicas
    stack = _choice(ServingStack, serving, "--serving") or default_stack(spec)
    kind = _choice(SchedulerKind, scheduler, "--scheduler") or (
        SchedulerKind.VLLM if gpu else SchedulerKind.NEURON)
    batched = max_num_batched_tokens or (8192 if gpu else min(2048, max_model_len))
    sc = ServingConfig(stack, per_replica, replicas, device.lnc, max_num_seqs, max_model_len,
                       block_size, max(batched, max_num_seqs), kv_fp8=kv_fp8,
                       context_buckets=context_buckets, static_shapes=not gpu,
                       async_scheduling=stack is ServingStack.VLLM)
    if per_replica * replicas > device.per_instance:
        raise CliUsageError(f"--tp {per_replica} x --replicas {replicas} needs "
                            f"{per_replica * replicas} devices; {spec.name} has "
                            f"{device.per_instance}")
    fid = _choice(Fidelity, fidelity, "--fidelity") or Fidelity.ROOFLINE
    cost = InferStepCost(InferCost(cfg, device, sc))
    if cost.kv_blocks * block_size < max_model_len:
        raise CliUsageError(f"{name} on {per_replica} devices of {spec.name} leaves KV room "
                            f"for {cost.kv_blocks * block_size} tokens, less than one "
                            f"--max-model-len {max_model_len} request")
    if trace is not None:
        load = read_trace(trace, max_concurrency)
    elif dataset is not None:
        reqs = read_sharegpt(dataset, requests, seed=seed).requests
        load = with_arrivals(reqs, rate, burstiness, max_concurrency, seed, "sharegpt")
    else:
        load = random_load(requests, input_len, output_len, range_ratio=range_ratio,
                           rate_per_s=rate, burstiness=burstiness,
                           max_concurrency=max_concurrency, seed=seed)
    config = SchedulerConfig(kind, max_num_seqs, max(batched, max_num_seqs), max_model_len,
                             enable_prefix_caching=not no_prefix_caching)
    if fid is Fidelity.SIMULATED and not gpu:
        # a dry run collects every kernel shape the steps ask for; tuned, then run again
        dry = Device.create(spec, lnc).recording()
        simulate(InferStepCost(InferCost(cfg, dry, sc)), load, config, replicas)
        err = Console(stderr=True, highlight=False)
        tune_recorded(spec.chip.name, dry.recorder or set(), batch_executor(workers, ray),
                      lambda st: err.print(f"  tuned {st.request.op} "
                                           f"{dict(st.request.shapes)} ({st.done}/{st.total})"))
        cost = InferStepCost(InferCost(cfg, Device.create(spec, lnc, Fidelity.SIMULATED), sc))
    result = simulate(cost, load, config, replicas)
    slo = ServeSlo.parse(goodput) if goodput else None
    metrics = result.metrics(slo=slo)
    if as_json:
        typer.echo(json.dumps({"model": name, "instance": spec.name,
                               "deployment": sc.label(), "scheduler": kind.value,
                               "kv_blocks": cost.kv_blocks, "fidelity": fid.value,
                               **metrics}))
    else:
        typer.echo(f"{name} on {spec.name}: {sc.label()}, scheduler {kind.value}, "
                   f"{cost.kv_blocks} KV blocks of {block_size} tokens per replica; "
                   f"op times at {fid.value.upper()}; load {load.name}, "
                   f"{len(load.requests)} requests")
        for key in _METRIC_ORDER:
            if key in metrics and metrics[key] is not None:
                v = metrics[key]
                typer.echo(f"  {key:26} {v:,.2f}" if isinstance(v, float)
                           else f"  {key:26} {v}")
    if png is not None:
        from tessera.report.serve_png import serve_png

        serve_png(result, png)
        if not as_json:
            typer.echo(f"wrote {png}")
