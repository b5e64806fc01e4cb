"""`tessera hw`: browse the hardware catalogue (cores, chips, GPUs, instances)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tessera import hw
from tessera.cli.errors import CliUsageError, guard
from tessera.hw.sourced import Status, as_plain
from tessera.hw.units import format_quantity

app = typer.Typer(
    help="Hardware catalogue: every number with its source.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# per kind, the columns of `hw list` (each section fits an 80-column terminal)
_LIST_COLUMNS = {
    "core": ("name", "aliases", "peak bf16"),
    "chip": ("name", "core", "cores", "peak bf16", "HBM", "HBM BW"),
    "gpu": ("name", "peak bf16", "HBM", "HBM BW"),
    "instance": ("name", "chips", "peak bf16", "HBM", "HBM BW", "$/hour"),
}

_STATUS_STYLE = {
    Status.PUBLISHED: "green",
    Status.DERIVED: "cyan",
    Status.UNCERTAIN: "yellow",
    Status.UNKNOWN: "red",
    Status.OVERRIDDEN: "magenta",
}
_DASH = "-"
_SOURCE_KEY = re.compile(r"\[([A-Za-z0-9_]+)\]")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _summary(preset: hw.Preset) -> tuple[str, str, str, str, str, str]:
    """(accelerators, cores, peak bf16, HBM, HBM bandwidth, price) for the list view."""
    if isinstance(preset, hw.CoreSpec):
        return (_DASH, "1", format_quantity("x_flops", preset.peak_flops()), _DASH, _DASH, _DASH)
    if isinstance(preset, (hw.ChipSpec, hw.GpuSpec)):
        cores = str(preset.physical_cores) if isinstance(preset, hw.ChipSpec) else _DASH
        acc = f"{preset.core.name}" if isinstance(preset, hw.ChipSpec) else _DASH
        return (acc, cores, format_quantity("x_flops", preset.peak_flops()),
                format_quantity("x_bytes", preset.hbm_bytes),
                format_quantity("x_bytes_per_s", preset.hbm_bytes_per_s), _DASH)
    assert isinstance(preset, hw.InstanceSpec)
    cores = str(preset.physical_cores) if preset.physical_cores else _DASH
    return (f"{preset.chip_count} x {preset.chip.name}", cores,
            format_quantity("x_flops", preset.peak_flops()),
            format_quantity("x_bytes", preset.hbm_bytes),
            format_quantity("x_bytes_per_s", preset.hbm_bytes_per_s),
            format_quantity("x_usd_per_hour", preset.price.on_demand_usd_per_hour))


def _row(info: hw.PresetInfo, preset: hw.Preset) -> dict[str, str]:
    acc, cores, peak, hbm, bw, price = _summary(preset)
    return {"name": info.name, "aliases": ", ".join(info.aliases), "core": acc,
            "chips": acc, "cores": cores, "peak bf16": peak, "HBM": hbm,
            "HBM BW": bw, "$/hour": price}


@app.command("list")
@guard
def list_cmd(
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: core, chip, gpu or instance.")
    ] = None,
) -> None:
    """List every preset with its key figures (dense BF16 peak from the core model), one
    section per kind."""
    try:
        infos = hw.list_presets(kind)
    except ValueError as exc:
        raise CliUsageError(str(exc)) from None
    console = _console()
    for section, columns in _LIST_COLUMNS.items():
        rows = [_row(i, hw.load_preset(i.name, i.kind)) for i in infos if i.kind == section]
        if not rows:
            continue
        table = Table(title=f"{section}s", box=box.SIMPLE_HEAD, title_justify="left",
                      collapse_padding=True, pad_edge=False, show_edge=False)
        for col in columns:
            table.add_column(col, no_wrap=True,
                             justify="left" if col in ("name", "aliases", "core",
                                                       "chips") else "right")
        for row in rows:
            table.add_row(*(row[c] for c in columns))
        console.print(table)
        console.print()


def _format(name: str, value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], hw.PartitionStartRule):
        return "; ".join(
            f"<={r.max_partitions}: {'/'.join(map(str, r.starts))}" for r in value
        )
    if isinstance(value, tuple):
        return "[" + ", ".join(format_quantity(name, v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return format_quantity(name, as_plain(value))


class _FactTable:
    """Rows of (field path, value, status, citation); collects the source keys it cites."""

    def __init__(self, title: str) -> None:
        self.table = Table(title=title)
        self.table.add_column("field", no_wrap=True)
        self.table.add_column("value", no_wrap=True)
        self.table.add_column("status", no_wrap=True)
        self.table.add_column("source")
        self.keys: set[str] = set()

    def group(self, path: str) -> None:
        self.table.add_row(Text(path, style="bold"), "", "", "")

    def text(self, path: str, value: str) -> None:
        self.table.add_row(path, Text(value), "", "")

    def fact(self, path: str, value: str, prov: hw.Provenance) -> None:
        cited = prov.cited_as or prov.source
        self.keys.update(_SOURCE_KEY.findall(cited))
        source = Text(cited)
        if prov.note:
            source.append(f" ({prov.note})", style="italic")
        status = Text(prov.status.value, style=_STATUS_STYLE[prov.status])
        self.table.add_row(path, Text(value), status, source)

    def add_spec(self, spec: hw.Spec, prefix: str = "") -> None:
        """One row per fact of `spec`, recursing into nested specs."""
        for name in spec.field_names():
            value = getattr(spec, name)
            path = f"{prefix}{name}"
            if isinstance(value, hw.Spec):
                self.group(path)
                self.add_spec(value, f"{path}.")
            elif isinstance(value, tuple) and value and isinstance(value[0], hw.Spec):
                for i, item in enumerate(value):
                    self.group(f"{path}[{i}]")
                    self.add_spec(item, f"{path}[{i}].")
            elif name in spec.sources:
                self.fact(path, _format(name, value), spec.sources[name])
            elif hasattr(value, "items"):
                if not value:
                    self.text(path, "(none published)")
                for key, item in value.items():
                    k = getattr(key, "value", key)
                    self.fact(f"{path}.{k}", _format(name, item), spec.sources[f"{name}.{k}"])
            else:  # names, kinds and other descriptive text carry no number
                self.text(path, _format(name, value))


def _derived(preset: hw.Preset) -> list[tuple[str, str]]:
    """Figures computed by the model (not stored in YAML) shown under the facts."""
    out: list[tuple[str, str]] = []
    if isinstance(preset, (hw.CoreSpec, hw.ChipSpec, hw.GpuSpec, hw.InstanceSpec)):
        for p in _precisions(preset):
            peak = format_quantity("x_flops", preset.peak_flops(p))
            out.append((f"peak {p.value} (dense)", peak))
    if isinstance(preset, hw.CoreSpec):
        out.append(("sbuf total", format_quantity("x_bytes", preset.sbuf.total_bytes)))
        out.append(("dma per core", _bw(preset.dma.core_bytes_per_s)))
    if isinstance(preset, hw.ChipSpec):
        lnc = ", ".join(f"LNC={n}: {preset.logical_cores(n)}" for n in preset.lnc_allowed)
        out += [("logical cores", lnc), ("dma engines", str(preset.dma_engines)),
                ("sbuf total", format_quantity("x_bytes", preset.sbuf_bytes)),
                ("hbm per core", _bw(preset.hbm_bytes_per_s_per_core))]
    if isinstance(preset, hw.InstanceSpec):
        out += [("hbm total", format_quantity("x_bytes", preset.hbm_bytes)),
                ("hbm bandwidth total", _bw(preset.hbm_bytes_per_s)),
                ("efa per chip", _bw(preset.efa_bytes_per_s_per_chip))]
    return out


def _bw(value: float | None) -> str:
    return format_quantity("x_bytes_per_s", value)


def _precisions(preset: hw.Preset) -> list[hw.Precision]:
    """Precisions with a TensorE rate (Neuron) or a published peak (GPU)."""
    if isinstance(preset, hw.InstanceSpec):
        preset = preset.chip
    if isinstance(preset, hw.GpuSpec):
        return list(preset.published_peak_flops)
    core = preset.core if isinstance(preset, hw.ChipSpec) else preset
    return list(core.tensor.rate_by_precision)


@app.command("show")
@guard
def show_cmd(
    name: Annotated[str, typer.Argument(help="Preset name or alias, e.g. trn1, nc-v3, p5")],
    kind: Annotated[
        str | None, typer.Option(help="Kind to search: core, chip, gpu or instance.")
    ] = None,
    all_fields: Annotated[bool, typer.Option(
        "--all", help="Every field with its value, status and source.")] = False,
) -> None:
    """Show a preset's key figures; with --all, every field with its value, status and
    source."""
    try:
        preset = hw.load_preset(name, kind)
    except ValueError as exc:
        if isinstance(exc, hw.HwError):
            raise
        raise CliUsageError(str(exc)) from None
    console = _console()
    derived = Table(title=f"{preset.kind} {preset.name}: {preset.display_name}",
                    show_header=False, box=box.SIMPLE, title_justify="left")
    derived.add_column("figure", no_wrap=True)
    derived.add_column("value")
    for label, value in _brief(preset) + _derived(preset):
        derived.add_row(label, Text(value))
    console.print(derived)
    if not all_fields:
        console.print(Text(f"every field with its source: tessera hw show {preset.name} "
                           "--all"))
        return
    facts = _FactTable("every field")
    facts.add_spec(preset)
    console.print(facts.table)
    legend = Table(title="sources")
    legend.add_column("key", no_wrap=True)
    legend.add_column("document")
    table = hw.source_table()
    for key in sorted(k for k in facts.keys if k in table):
        legend.add_row(Text(f"[{key}]"), Text(f"{table[key].title} <{table[key].url}>"))
    console.print(legend)
    console.print(Text(f"loaded from {preset.origin}"))


def _brief(preset: hw.Preset) -> list[tuple[str, str]]:
    """The list view's figures, labelled."""
    first = "core" if isinstance(preset, hw.ChipSpec) else "accelerators"
    labels = (first, "cores", None, "HBM", "HBM bandwidth", "on-demand price")
    return [(label, value) for label, value in zip(labels, _summary(preset), strict=True)
            if value != _DASH and label is not None]  # peaks: in the derived figures
