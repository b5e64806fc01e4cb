"""Helpers of `tessera kernel profile`: `--set` parsing and the printed summary.

The command itself lives in `kernel_cmd`; this module turns its options into a chip spec and
override mapping, and a `Profile` into rich tables. Units are converted for display here only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tessera import hw, sim
from tessera.cli.errors import CliUsageError
from tessera.hw import ChipSpec, MemoryKind
from tessera.hw.units import format_quantity
from tessera.nki.compiler import SchedulingHeuristic
from tessera.sim import Profile

CALIBRATION_PREFIX = "calibration."  # `--set calibration.X=...` replaces a model constant


class OverrideSyntaxError(CliUsageError):
    """A `--set` item is not of the form KEY=VALUE."""


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """`["core.sbuf.bytes_per_partition=262144", ...]` -> {path: text}.

    Values stay text: `hw.with_overrides` parses them with units ("2.4 GHz") and checks the
    type of the field they replace, which a guess here could only get wrong.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise OverrideSyntaxError(f"--set {item!r}: expected KEY=VALUE, e.g. "
                                      "core.sbuf.bytes_per_partition=262144")
        out[key] = value
    return out


def effective_chip(chip: str, overrides: dict[str, str]) -> ChipSpec:
    """The chip preset with the hardware (non-calibration) overrides applied.

    Raises the catalogue's errors (unknown preset, `OverrideError`, `PresetError`) before any
    kernel runs, so a typo in `--set` costs no tracing time.
    """
    spec = hw.load_chip(chip)
    hw_part = {k: v for k, v in overrides.items() if not k.startswith(CALIBRATION_PREFIX)}
    return hw.with_overrides(spec, hw_part) if hw_part else spec


def parse_heuristic(text: str) -> SchedulingHeuristic:
    """`asap`, `critical-path`, `dma-prefetch` or `trivial` (any case, - or _)."""
    try:
        return SchedulingHeuristic(text.strip().lower().replace("-", "_"))
    except ValueError:
        choices = ", ".join(h.value.replace("_", "-") for h in SchedulingHeuristic)
        raise CliUsageError(f"--schedule {text!r}: choose one of {choices}") from None


def check_calibration(chip: ChipSpec, overrides: dict[str, str]) -> None:
    """Apply the `calibration.*` overrides to the chip's calibration now, so a bad name or
    value fails before any kernel runs."""
    part = {k[len(CALIBRATION_PREFIX):]: v for k, v in overrides.items()
            if k.startswith(CALIBRATION_PREFIX)}
    if part:
        sim.calibration_for(chip.core.name, chip.core.version).with_overrides(part)


def _t(seconds: float) -> str:
    return format_quantity("x_s", seconds)


def _b(n: float) -> str:
    return format_quantity("x_bytes", int(n))


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def _where(file: str, line: int) -> str:
    """A source location as file name and line: the table stays narrow (JSON has the path)."""
    return f"{os.path.basename(file)}:{line}"


def _label(u: object) -> str:
    return "hbm share" if u.resource is MemoryKind.HBM else u.resource.value  # type: ignore


def _engines_table(p: Profile) -> Table:
    table = Table(title="engines (busy time per unit, comparable with the wall time)")
    for name in ("resource", "units", "busy", "of wall time", "instructions"):
        table.add_column(name, justify="left" if name == "resource" else "right")
    for u in p.engines:
        style = "bold" if u.resource is p.bound else ""
        table.add_row(_label(u), str(u.units), _t(u.busy_per_unit_s), _pct(u.utilisation),
                      f"{u.instructions:,}", style=style)
    return table


def _hot_table(p: Profile) -> Table:
    table = Table(title="top instructions by engine time",
                  caption="engine time: summed over instances and over every engine each one "
                          "holds (a DMA: all its DMA engines)")
    for name in ("opcode", "engine", "where", "count", "engine time"):
        table.add_column(name, justify="right" if name in ("count", "engine time") else "left")
    for h in p.top_instructions:
        table.add_row(h.opcode.value, h.engine.value, _where(h.location.file, h.location.line),
                      f"{h.count:,}", _t(h.total_s))
    return table


def _roofline_line(p: Profile) -> str:
    if p.hbm_read_bytes + p.hbm_write_bytes == 0:
        return "roofline: no HBM traffic"
    if p.flops == 0:
        return "roofline: no matmuls (the Tensor-engine roofline does not apply)"
    side = "compute" if p.arithmetic_intensity >= p.ridge_point else "memory"
    return (f"roofline: arithmetic intensity {p.arithmetic_intensity:.1f} FLOP/B vs ridge "
            f"{p.ridge_point:.1f} FLOP/B ({side}-bound side)")


def _compute_lines(p: Profile) -> list[str]:
    """Matmul FLOPs against the Tensor engine's peak, or, for a kernel without matmuls, the
    streaming engines' element rates against theirs."""
    if p.flops > 0:
        achieved = format_quantity("x_flops", p.achieved_flops_per_s)
        return [f"compute: {p.flops:.4g} FLOP, {achieved} of "
                f"{format_quantity('x_flops', p.peak_flops_per_s)} peak "
                f"({_pct(p.flops_utilisation)})"]
    lines = []
    for u in p.engines:
        if u.elements and p.total_s:
            rate = u.elements / p.total_s
            lines.append(f"{u.resource.value}: {u.elements:,} elements, {rate / 1e9:.3g} "
                         f"G elements/s of {u.peak_elements_per_s / 1e9:.3g} G/s peak "
                         f"({_pct(rate / u.peak_elements_per_s)})")
    return lines or ["compute: no matmuls and no streaming-engine work"]


def _bound_line(p: Profile) -> str:
    u = p.usage(p.bound)
    line = f"bound by: [bold]{_label(u)}[/bold] (busy {_pct(u.utilisation)} of the wall time"
    if p.bound is MemoryKind.HBM and p.hbm_utilisation < u.utilisation - 0.05:
        line += (f", moving {_pct(p.hbm_utilisation)} of its peak bandwidth: strided "
                 "(row-gather) accesses hold the share longer than their bytes need")
    return line + ")"


def print_summary(console: Console, kernel: str, p: Profile, chip: ChipSpec,
                  symbolic: bool) -> None:
    """The profile as the command prints it: headline, tables, rates, memory, hot spots."""
    mode = "symbolic" if symbolic else "functional"
    cores = f"{p.cores} core{'s' if p.cores > 1 else ''}"
    order = p.heuristic.value.replace("_", "-")
    console.print(f"[bold]{kernel}[/bold] on {p.chip} ({cores}, {mode}, {order} schedule): "
                  f"[bold]{_t(p.total_s)}[/bold] wall time, {p.instructions:,} instructions",
                  soft_wrap=True)
    for note in p.notes:
        console.print(f"note: {note}", soft_wrap=True)
    console.print(_engines_table(p))
    for line in _compute_lines(p):
        console.print(line, soft_wrap=True)
    console.print(f"HBM: read {_b(p.hbm_read_bytes)}, write {_b(p.hbm_write_bytes)}, "
                  f"{format_quantity('x_bytes_per_s', p.achieved_hbm_bytes_per_s)} of the "
                  f"{format_quantity('x_bytes_per_s', p.peak_hbm_bytes_per_s)} share "
                  f"({_pct(p.hbm_utilisation)} of peak bandwidth)", soft_wrap=True)
    console.print(_roofline_line(p), soft_wrap=True)
    console.print(_bound_line(p), soft_wrap=True)
    cp = p.critical_path
    parts = ", ".join(f"{r.value} {_t(s)}" for r, s in cp.by_resource)
    console.print(f"critical path: {_t(cp.length_s)} over {cp.instructions:,} instructions, "
                  f"dominated by {cp.dominant.value} ({parts}; waiting {_t(cp.waiting_s)})",
                  soft_wrap=True)
    sbuf, psum = chip.core.sbuf.bytes_per_partition, chip.core.psum.bytes_per_partition
    console.print(f"peak on-chip memory per partition: SBUF {_b(p.peak_sbuf_bytes)} of "
                  f"{_b(sbuf)} ({_pct(p.peak_sbuf_bytes / sbuf)}), PSUM "
                  f"{_b(p.peak_psum_bytes)} of {_b(psum)} ({_pct(p.peak_psum_bytes / psum)})",
                  soft_wrap=True)
    for line in spill_lines(p):
        console.print(line, soft_wrap=True)
    console.print(_hot_table(p))


_SPILLS_LISTED = 5


def spill_lines(p: Profile) -> list[str]:
    """What the allocation spilled: the total, then the first tiles with their lines."""
    if not p.spills:
        return []
    lines = [f"[yellow]SBUF spills[/yellow]: {len(p.spills)} tile(s), {_b(p.spill_bytes)} "
             "stored to HBM and loaded back"]
    for sp in p.spills[:_SPILLS_LISTED]:
        lines.append(f"  {sp.tensor}{list(sp.shape)} {sp.dtype} ({_b(sp.tile_bytes)}) created "
                     f"at {sp.created_at}: stored for {sp.needed_at}, reloaded for "
                     f"{sp.reloaded_for}")
    if len(p.spills) > _SPILLS_LISTED:
        lines.append(f"  ... and {len(p.spills) - _SPILLS_LISTED} more")
    return lines


def wrote(console: Console, what: str, path: Path) -> None:
    """Tell the user where a report went."""
    console.print(f"wrote {what}: {path}", soft_wrap=True)
