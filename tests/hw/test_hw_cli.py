"""`tessera hw list` and `tessera hw show` through typer's test runner."""

from __future__ import annotations

from typer.testing import CliRunner

from tessera.cli.hw_cmd import app

WIDE = {"COLUMNS": "250"}


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def test_list_shows_every_kind() -> None:
    result = _run("list")
    assert result.exit_code == 0, result.output
    for text in ("nc-v2", "trn2", "h100-sxm", "trn1.32xlarge", "p5.48xlarge", "trn2-ultraserver"):
        assert text in result.output
    assert "$21.500/h" in result.output  # trn1.32xlarge on-demand
    assert "unknown" in result.output  # trn2.48xlarge price
    assert "183.5 TFLOPS" in result.output  # trn1 chip: 2 x 91.75


def test_list_one_kind() -> None:
    result = _run("list", "--kind", "gpu")
    assert result.exit_code == 0
    assert "a100-80gb" in result.output and "trn1" not in result.output
    bad = _run("list", "--kind", "router")
    assert bad.exit_code == 2 and "unknown preset kind" in bad.output


def test_show_is_brief_by_default_and_complete_with_all() -> None:
    brief = _run("show", "trn1")
    assert brief.exit_code == 0, brief.output
    assert "LNC=1: 2" in brief.output and "183.5 TFLOPS" in brief.output
    assert "core.sbuf.bytes_per_partition" not in brief.output and "--all" in brief.output


def test_list_fits_80_columns_even_on_a_wide_terminal() -> None:
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line.rstrip()) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output  # nothing cut short
    wide = _run("list")
    assert max(len(line.rstrip()) for line in wide.output.splitlines()) <= 80


def test_show_chip_with_sources() -> None:
    result = _run("show", "trn1", "--all")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "core.sbuf.bytes_per_partition" in out and "192 KiB" in out
    assert "core.psum.banks" in out
    assert "[A2]" in out and "trainium_inferentia2_arch" in out  # short cite + legend
    assert "uncertain" in out  # the HBM bandwidth unit discrepancy
    assert "LNC=1: 2" in out


def test_show_instance_unknown_price() -> None:
    result = _run("show", "trn2.48xlarge", "--all")
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "price.on_demand_usd_per_hour" in ln)
    assert "unknown" in line


def test_show_by_alias_and_kind() -> None:
    result = _run("show", "h100", "--kind", "gpu")
    assert result.exit_code == 0 and "h100-sxm" in result.output


def test_show_unknown_name_exits_2_without_traceback() -> None:
    result = _run("show", "trn9")
    assert result.exit_code == 2
    assert "unknown" in result.output and "trn1.32xlarge" in result.output
    assert "Traceback" not in result.output
