"""`tessera kernel ...`: run kernel files on the CPU, show their streams, profile their timing."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tessera import report, sim
from tessera.cli import profile_cmd
from tessera.hw import HwError
from tessera.nki.errors import NkiError
from tessera.nki.kernel_files import (
    ExampleRun,
    KernelFileError,
    input_specs,
    load_kernel_file,
    parse_spec,
    run_example,
)
from tessera.nki.runtime import default_chip

app = typer.Typer(no_args_is_help=True, add_completion=False)

USAGE_ERROR = 2  # bad arguments, bad kernel file or a kernel that breaks a hardware rule
MISMATCH = 1  # the kernel ran but its output differs from the reference


class Chip(StrEnum):
    """Chips a kernel can be traced for."""

    trn1 = "trn1"
    trn2 = "trn2"


@app.callback()
def kernel() -> None:
    """Run and inspect NKI kernels on the CPU."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


def _counts_table(run: ExampleRun) -> Table:
    table = Table(title=f"{run.kernel} on {run.trace.chip.name}")
    table.add_column("engine")
    table.add_column("opcode")
    table.add_column("count", justify="right")
    for engine, total in run.engine_counts:
        table.add_row(engine, "[bold]all[/bold]", f"[bold]{total}[/bold]")
        for row in run.opcode_counts:
            if row.engine == engine:
                table.add_row("", row.opcode, str(row.count))
    table.add_section()
    table.add_row("[bold]total[/bold]", "", f"[bold]{len(run.trace.instructions)}[/bold]")
    return table


@app.command("warm-up")
def warm_up() -> None:
    """Compile the timing model's loops for this machine (once; `make` does it on install)."""
    typer.echo("preparing the timing model (compiled once per machine, ~30 s the first time) ...")
    seconds = sim.warm_up()
    typer.echo(f"timing model ready ({seconds:.1f} s)")


@app.command()
def run(
    spec: Annotated[str, typer.Argument(
        metavar="FILE::KERNEL",
        help="Kernel file and kernel name, e.g. examples/kernels/vector_add.py::vector_add")],
    chip: Annotated[Chip | None, typer.Option(
        help="Target chip (default: NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).")] = None,
    symbolic: Annotated[bool, typer.Option(
        "--symbolic", help="Trace shapes only (TensorSpec inputs); print the counts.")] = False,
) -> None:
    """Run a kernel on its file's example_inputs() and compare with reference()."""
    try:
        parsed = parse_spec(spec)
        kernel_file = load_kernel_file(parsed.path)
        result = run_example(kernel_file, parsed.kernel, chip.value if chip else None,
                             symbolic)
    except (KernelFileError, NkiError) as err:
        raise _fail(str(err)) from None
    except AssertionError as err:  # a kernel's own shape assertions
        raise _fail(f"{spec}: assertion failed: {err}") from None
    console = Console(highlight=False)
    console.print(_counts_table(result))
    cmp = result.comparison
    if cmp is None:  # symbolic: no values, so nothing to compare or time meaningfully
        return
    console.print(f"wall time: {result.wall_s * 1e3:.1f} ms")
    verdict = "[green]PASS[/green]" if cmp.passed else "[red]FAIL[/red]"
    console.print(f"{verdict} vs reference ({cmp.dtype}): max abs err {cmp.max_abs_err:.3e}, "
                  f"max rel err {cmp.max_rel_err:.3e} (tolerance {cmp.tolerance:.1e})",
                  soft_wrap=True)
    if not cmp.passed:
        raise typer.Exit(MISMATCH)


_PROFILE_ERRORS = (KernelFileError, NkiError, HwError, sim.SimError,
                   profile_cmd.OverrideSyntaxError)


@app.command()
def profile(
    spec: Annotated[str, typer.Argument(
        metavar="FILE::KERNEL",
        help="Kernel file and kernel name, e.g. examples/kernels/vector_add.py::vector_add")],
    chip: Annotated[str | None, typer.Option(
        metavar="trn1|trn2",
        help="Target chip (default: NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).")] = None,
    symbolic: Annotated[bool, typer.Option(
        "--symbolic", help="Trace shapes only: TensorSpecs shaped like example_inputs().")
    ] = False,
    lnc: Annotated[int | None, typer.Option(
        help="Logical NeuronCore size: 2 runs the kernel on two physical cores.")] = None,
    trace: Annotated[Path | None, typer.Option(
        help="Write a Chrome/Perfetto trace (JSON) here.")] = None,
    png: Annotated[Path | None, typer.Option(help="Write a timeline PNG here.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the profile as canonical JSON here.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Hardware what-if, e.g. core.sbuf.bytes_per_partition=262144; "
             "calibration.NAME=VALUE replaces a model constant. Repeatable.")] = None,
) -> None:
    """Predict a kernel's time on its example inputs: engines, rates, roofline, hot spots."""
    chip_name = chip or default_chip()
    if chip_name not in Chip.__members__:
        raise _fail(f"unknown chip {chip_name!r}; choose one of: {', '.join(Chip.__members__)}")
    try:
        parsed = parse_spec(spec)
        overrides = profile_cmd.parse_overrides(set_ or [])
        chip_spec = profile_cmd.effective_chip(chip_name, overrides)
        kernel_file = load_kernel_file(parsed.path)
        kernel_fn = kernel_file.kernel(parsed.kernel)
        inputs = kernel_file.example_inputs()
        if symbolic:
            inputs = input_specs(inputs)
        result = sim.profile(kernel_fn, *inputs, chip=chip_name, symbolic=symbolic, lnc=lnc,
                             overrides=overrides)
    except _PROFILE_ERRORS as err:
        raise _fail(str(err)) from None
    except AssertionError as err:  # a kernel's own shape assertions
        raise _fail(f"{spec}: assertion failed: {err}") from None
    console = Console(highlight=False)
    profile_cmd.print_summary(console, parsed.kernel, result, chip_spec, symbolic)
    meta = {"kernel": parsed.kernel, "overrides": overrides}
    try:
        if json_out is not None:
            profile_cmd.wrote(console, "profile JSON",
                              report.write_profile_json(result, json_out, **meta))
        if trace is not None:
            profile_cmd.wrote(console, "trace (open in ui.perfetto.dev)",
                              report.write_chrome_trace(result, trace, **meta))
        if png is not None:
            profile_cmd.wrote(console, "timeline PNG",
                              report.write_timeline_png(result, png, **meta))
    except OSError as err:
        raise _fail(f"cannot write the report: {err}") from None
