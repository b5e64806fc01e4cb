"""The `tessera` command: one typer app with a sub-app per layer."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera.cli import (
    collective_cmd,
    compile_cmd,
    hw_cmd,
    kernel_cmd,
    parallel_cmd,
    plan_cmd,
    serve_cmd,
)
from tessera.cli.errors import DEBUG_ENV, set_debug

app = typer.Typer(
    name="tessera",
    help="Tessera: a NeuronCore modelled in software, with an NKI-compatible kernel language.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(hw_cmd.app, name="hw", help="Hardware catalogue: cores, chips, instances, GPUs.")
app.add_typer(kernel_cmd.app, name="kernel", help="Run and inspect NKI kernels on the CPU.")
app.add_typer(plan_cmd.app, name="plan", help="Plan training: which instances, which "
                                               "parallelism, how fast, what it costs.")
app.add_typer(parallel_cmd.app, name="parallel", help="Parallel training on PyTorch: what a "
                                                       "layout communicates and costs.")
app.add_typer(serve_cmd.app, name="serve", help="Serving: simulate a vLLM server request "
                                                 "by request (vllm bench serve metrics).")
app.command("collective", help="Cost a collective (all-reduce, all-gather, ...) on an "
                                "instance topology.")(collective_cmd.collective)
app.command("compile", help="Compile a PyTorch model (MODULE:FACTORY, --preset or "
                            "--hf-config) for one NeuronCore: predicted time per layer and op, "
                            "reports.")(compile_cmd.compile_model)


@app.callback()
def tessera(
    debug: Annotated[bool, typer.Option(
        "--debug", help=f"Print full tracebacks on errors (or set {DEBUG_ENV}=1).")] = False,
) -> None:
    """Tessera: a NeuronCore modelled in software, with an NKI-compatible kernel language."""
    set_debug(debug)


def main() -> None:
    """Entry point of the `tessera` console script."""
    app()
