"""The `tessera` command: one typer app with a sub-app per layer."""

from __future__ import annotations

import typer

from tessera.cli import collective_cmd, hw_cmd, kernel_cmd

app = typer.Typer(
    name="tessera",
    help="Tessera: a NeuronCore modelled in software, with an NKI-compatible kernel language.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(hw_cmd.app, name="hw", help="Hardware catalogue: cores, chips, instances, GPUs.")
app.add_typer(kernel_cmd.app, name="kernel", help="Run and inspect NKI kernels on the CPU.")
app.add_typer(collective_cmd.app, name="collective",
              help="Cost a collective (all-reduce, all-gather, ...) on an instance topology.")


def main() -> None:
    """Entry point of the `tessera` console script."""
    app()
