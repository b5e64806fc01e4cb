"""`tessera kernel ...`: run kernel files on the CPU, show their streams, profile their timing."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tessera import report, sim
from tessera.cli import profile_cmd
from tessera.cli.errors import fail, guard
from tessera.cli.options import KERNEL_CHIP_HELP, chip_preset
from tessera.cli.paths import check_writable
from tessera.nki.kernel_files import (
    ExampleRun,
    input_specs,
    load_kernel_file,
    parse_shape,
    parse_spec,
    resize_inputs,
    run_example,
)

LNC_HELP = ("Logical NeuronCore size: 2 runs the kernel on two physical cores (trn2, trn3). "
            "Default: the kernel file's LNC, else 1.")

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})

MISMATCH = 1  # the kernel ran but its output differs from the reference
SHAPE_HELP = ("Resize an input by the kernel's parameter name: NAME=AxB[:dtype], e.g. "
              "--shape lhsT=4096x8192. Repeatable.")
KWARG_HELP = "Pass a keyword argument to the kernel: KEY=VALUE (a Python literal). Repeatable."


@app.callback()
def kernel() -> None:
    """Run and inspect NKI kernels on the CPU."""


def _shapes(items: list[str] | None) -> dict[str, tuple[tuple[int, ...], str | None]]:
    parsed = [parse_shape(item) for item in items or []]
    return {name: (shape, dtype) for name, shape, dtype in parsed}


def _kwargs(items: list[str] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise fail(f"--kwarg {item!r}: expected KEY=VALUE, e.g. --kwarg tile_n=512")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = text.strip()  # a bare word is a string
    return out


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
@guard
def warm_up() -> None:
    """Compile the timing model's loops for this machine (once; `make` does it on install)."""
    typer.echo("preparing the timing model (compiled once per machine, 20-45 s the first "
               "time) ...")
    seconds = sim.warm_up()
    typer.echo(f"timing model ready ({seconds:.1f} s)")


@app.command()
@guard
def run(
    spec: Annotated[str, typer.Argument(
        metavar="FILE::KERNEL",
        help="Kernel file and kernel name, e.g. examples/kernels/vector_add.py::vector_add")],
    chip: Annotated[str | None, typer.Option(metavar="CHIP", help=KERNEL_CHIP_HELP)] = None,
    symbolic: Annotated[bool, typer.Option(
        "--symbolic", help="Trace shapes only (TensorSpec inputs); print the counts.")] = False,
    shape: Annotated[list[str] | None, typer.Option(metavar="NAME=AxB", help=SHAPE_HELP)
                     ] = None,
    kwarg: Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE", help=KWARG_HELP)
                     ] = None,
    lnc: Annotated[int | None, typer.Option(help=LNC_HELP)] = None,
) -> None:
    """Run a kernel on its file's example inputs and compare with its reference.

    The run applies the allocator's capacity rules too: what cannot fit even by spilling
    (a tile larger than a partition, one instruction's operands, PSUM) is an error, as in
    `kernel profile`.
    """
    parsed = parse_spec(spec)
    kernel_file = load_kernel_file(parsed.path)
    chip_name = chip_preset(chip or kernel_file.chip)
    result = run_example(kernel_file, parsed.kernel, chip_name, symbolic, _shapes(shape),
                         _kwargs(kwarg), lnc)
    trace = result.trace
    # capacity, as the kernel's compile config allocates (spilling where it would)
    cal = sim.calibration_for(trace.chip.core.name, trace.chip.core.version)
    sim.allocate_kernel(trace.instructions, trace.tensors, trace.edges, trace.chip,
                        cal.sbuf_alignment_bytes, trace.compile_config)
    console = Console(highlight=False)
    console.print(_counts_table(result))
    cmp = result.comparison
    if cmp is None:  # symbolic: no values, so nothing to compare or time meaningfully
        return
    console.print(f"wall time: {result.wall_s * 1e3:.1f} ms")
    if cmp.poison is not None:
        console.print(f"[red]FAIL[/red]: output contains the poison value of uninitialised "
                      f"memory (NaN) at {cmp.poison}: the kernel reads memory it never "
                      "wrote", soft_wrap=True)
        raise typer.Exit(MISMATCH)
    verdict = "[green]PASS[/green]" if cmp.passed else "[red]FAIL[/red]"
    console.print(f"{verdict} vs reference ({cmp.dtype}): max abs err {cmp.max_abs_err:.3e}, "
                  f"max rel err {cmp.max_rel_err:.3e} (tolerance {cmp.tolerance:.1e})",
                  soft_wrap=True)
    if not cmp.passed:
        raise typer.Exit(MISMATCH)


@app.command()
@guard
def profile(
    spec: Annotated[str, typer.Argument(
        metavar="FILE::KERNEL",
        help="Kernel file and kernel name, e.g. examples/kernels/vector_add.py::vector_add")],
    chip: Annotated[str | None, typer.Option(metavar="CHIP", help=KERNEL_CHIP_HELP)] = None,
    symbolic: Annotated[bool, typer.Option(
        "--symbolic", help="Trace shapes only: TensorSpecs shaped like example_inputs().")
    ] = False,
    lnc: Annotated[int | None, typer.Option(help=LNC_HELP)] = None,
    shape: Annotated[list[str] | None, typer.Option(metavar="NAME=AxB", help=SHAPE_HELP)
                     ] = None,
    kwarg: Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE", help=KWARG_HELP)
                     ] = None,
    trace: Annotated[Path | None, typer.Option(
        help="Write a Chrome/Perfetto trace (JSON) here.")] = None,
    png: Annotated[Path | None, typer.Option(help="Write a timeline PNG here.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the profile as canonical JSON here.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Hardware what-if, e.g. core.sbuf.bytes_per_partition=262144; "
             "calibration.NAME=VALUE replaces a model constant. Repeatable.")] = None,
    schedule: Annotated[str | None, typer.Option(
        metavar="HEURISTIC",
        help="How the compiler orders ready instructions: asap (default), critical-path, "
             "dma-prefetch or trivial (program order). Default: the kernel's "
             "compile_config.")] = None,
) -> None:
    """Predict a kernel's time on its example inputs: engines, rates, roofline, hot spots."""
    parsed = parse_spec(spec)
    kernel_file = load_kernel_file(parsed.path)
    chip_name = chip_preset(chip or kernel_file.chip)
    if schedule is not None:
        profile_cmd.parse_heuristic(schedule)  # a typo fails before any work
    outputs = {"--trace": trace, "--png": png, "--json": json_out}
    for option, path in outputs.items():
        if path is not None:
            check_writable(path, option)  # before minutes of tracing, not after
    overrides = profile_cmd.parse_overrides(set_ or [])
    chip_spec = profile_cmd.effective_chip(chip_name, overrides)
    profile_cmd.check_calibration(chip_spec, overrides)  # bad constants fail before tracing
    kernel_fn = kernel_file.kernel(parsed.kernel)
    inputs = resize_inputs(kernel_fn, kernel_file.example_inputs(parsed.kernel),
                           _shapes(shape), symbolic)
    if symbolic:
        inputs = input_specs(inputs)
    heuristic = profile_cmd.parse_heuristic(schedule) if schedule is not None else None
    result = sim.profile(kernel_fn, *inputs, chip=chip_name, symbolic=symbolic,
                         lnc=lnc or kernel_file.lnc,
                         overrides=overrides, kernel_kwargs=_kwargs(kwarg),
                         heuristic=heuristic)
    console = Console(highlight=False)
    profile_cmd.print_summary(console, parsed.kernel, result, chip_spec, symbolic)
    meta = {"kernel": parsed.kernel, "overrides": overrides}
    if json_out is not None:
        profile_cmd.wrote(console, "profile JSON",
                          report.write_profile_json(result, json_out, **meta))
    if trace is not None:
        profile_cmd.wrote(console, "trace (open in ui.perfetto.dev)",
                          report.write_chrome_trace(result, trace, **meta))
    if png is not None:
        profile_cmd.wrote(console, "timeline PNG",
                          report.write_timeline_png(result, png, **meta))
