"""`tessera kernel profile FILE::KERNEL`: the printed summary, report files, one-line errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.errors import USAGE_ERROR
from tessera.cli.kernel_cmd import app
from tessera.cli.profile_cmd import OverrideSyntaxError, parse_overrides

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
BLOCKED = f"{EXAMPLES / 'matmul_tutorial.py'}::matmul_block_all_dims"
VECTOR_ADD = f"{EXAMPLES / 'vector_add.py'}::vector_add"


def _invoke(*args: str):  # noqa: ANN202 - click Result
    return CliRunner().invoke(app, ["profile", *args], terminal_width=200)


def _value(line_start: str, output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(line_start))


# ------------------------------------------------------------------ success
def test_summary_names_time_engines_rates_roofline_and_hot_spots() -> None:
    result = _invoke(BLOCKED, "--chip", "trn1", "--symbolic")
    assert result.exit_code == 0, result.output
    out = result.output
    head = out.splitlines()[0]
    assert head.startswith("matmul_block_all_dims on trn1 (1 core, symbolic, asap schedule): ")
    assert "wall time, 19 instructions" in head  # 8 matmuls, 4 adds, 1 memset, 6 DMAs
    for label in ("compute: ", "HBM: ", "roofline: ", "bound by: ", "critical path: ",
                  "peak on-chip memory per partition: "):
        assert _value(label, out)
    assert "1.342e+08 FLOP" in out  # 2 * 256 * 256 * 1024
    assert "of 192 KiB" in _value("peak on-chip", out)  # NC-v2 SBUF per partition
    assert "ridge" in _value("roofline: ", out)
    rows = [line for line in out.splitlines() if "│" in line]
    assert any("nc_matmul" in r and "tensor" in r and "matmul_tutorial.py:" in r
               and " 8 " in r for r in rows), out


def test_reports_are_written(tmp_path: Path) -> None:
    trace, png, report = tmp_path / "t.json", tmp_path / "t.png", tmp_path / "p.json"
    result = _invoke(BLOCKED, "--chip", "trn2", "--symbolic", "--trace", str(trace),
                     "--png", str(png), "--json", str(report),
                     "--set", "core.sbuf.bytes_per_partition=262144")
    assert result.exit_code == 0, result.output
    loaded = json.loads(trace.read_text())
    assert loaded["otherData"]["chip"] == "trn2"
    assert loaded["otherData"]["overrides"] == {"core.sbuf.bytes_per_partition": "262144"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(report.read_text())["kernel"] == "matmul_block_all_dims"
    assert "of 256 KiB" in _value("peak on-chip", result.output)  # the what-if SBUF
    assert str(trace) in result.output and str(png) in result.output


def test_calibration_override_changes_the_prediction() -> None:
    base = _invoke(VECTOR_ADD, "--chip", "trn1")
    slow = _invoke(VECTOR_ADD, "--chip", "trn1", "--set", "calibration.cross_engine_sync_s=1e-5")
    assert base.exit_code == slow.exit_code == 0, base.output + slow.output
    assert base.output.splitlines()[0] != slow.output.splitlines()[0]
    assert "functional" in base.output.splitlines()[0]


def test_lnc2_profiles_two_cores() -> None:
    result = _invoke(VECTOR_ADD, "--chip", "trn2", "--lnc", "2", "--symbolic")
    assert result.exit_code == 0, result.output
    assert "(2 cores, symbolic, asap schedule)" in result.output.splitlines()[0]


# ------------------------------------------------------------------ errors
def test_unknown_chip(one_line_error) -> None:
    one_line_error(_invoke(VECTOR_ADD, "--chip", "trn9"), "trn9", "trn1", "trn2")


@pytest.mark.parametrize(("setting", "fragments"), [
    ("core.sbuf.nope=1", ("core.sbuf.nope", "bytes_per_partition")),
    ("core.sbuf.bytes_per_partition=lots", ("core.sbuf.bytes_per_partition", "lots")),
    ("calibration.nope=1", ("nope", "cross_engine_sync_s")),
    ("nokey", ("KEY=VALUE",)),
])
def test_bad_set_is_one_line(setting: str, fragments: tuple[str, ...], one_line_error) -> None:
    one_line_error(_invoke(VECTOR_ADD, "--chip", "trn1", "--set", setting), *fragments)


def test_sbuf_capacity_error_names_the_tensor_and_line(one_line_error) -> None:
    result = _invoke(BLOCKED, "--chip", "trn1", "--symbolic",
                     "--set", "core.sbuf.bytes_per_partition=4096")
    one_line_error(result, "SBUF capacity", "matmul_tutorial.py:")


def test_kernel_errors_are_one_line(tmp_path: Path, one_line_error) -> None:
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent("""\
        import numpy as np
        from tessera.nki.compat import install
        install()
        import nki
        import nki.isa as nisa
        import nki.language as nl

        @nki.jit
        def bad(a):
            acc = nl.ndarray((128, 8), nl.float32, buffer=nl.psum)
            nisa.nc_matmul(acc, a, a)  # operands straight from HBM: not allowed
            return acc

        def example_inputs():
            return (np.ones((128, 128), np.float32),)
        """))
    one_line_error(_invoke(f"{path}::bad", "--chip", "trn1", "--symbolic"), "bad.py:11")
    one_line_error(_invoke(f"{path}::missing", "--chip", "trn1"), "missing", "bad")
    one_line_error(_invoke(f"{path}::bad", "--lnc", "3"), "1 or 2")


def test_unwritable_report_path_is_one_line(tmp_path: Path) -> None:
    result = _invoke(VECTOR_ADD, "--chip", "trn1", "--trace",
                     str(tmp_path / "no" / "such" / "dir" / "t.json"))
    assert result.exit_code == USAGE_ERROR
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0]  # before any work: no summary
    assert lines[0].startswith("error: --trace")


def test_parse_overrides_keeps_values_as_text() -> None:
    assert parse_overrides(["a.b=2.4 GHz", "c = 1"]) == {"a.b": "2.4 GHz", "c": "1"}
    for bad in ("=1", "a.b=", "a.b"):
        with pytest.raises(OverrideSyntaxError):
            parse_overrides([bad])


def test_busy_times_compare_with_the_wall_time_and_vector_kernels_show_element_rates(
) -> None:
    result = _invoke(f"{EXAMPLES}/vector_add.py::vector_add", "--chip", "trn1")
    assert result.exit_code == 0, result.output
    out = result.output
    wall_us = float(out.splitlines()[0].split(": ")[1].split(" us")[0])
    dma = next(r for r in out.splitlines() if "│ dma " in r)
    cells = [c.strip() for c in dma.split("│") if c.strip()]
    assert cells[1] == "16" and float(cells[2].split()[0]) <= wall_us  # per engine
    assert "0 FLOP" not in out and _value("vector: ", out).endswith("%)")
    assert "G elements/s" in out


def test_schedule_option_compares_heuristics(tmp_path: Path) -> None:
    times = {}
    for name in ("trivial", "asap", "critical-path", "dma-prefetch"):
        report = tmp_path / f"{name}.json"
        result = _invoke(BLOCKED, "--chip", "trn1", "--symbolic", "--schedule", name,
                         "--json", str(report))
        assert result.exit_code == 0, result.output
        assert f"{name} schedule" in result.output.splitlines()[0]
        data = json.loads(report.read_text())
        assert data["schedule"] == name.replace("-", "_")
        times[name] = data["total_s"]
    assert times["trivial"] == pytest.approx(PINNED_BLOCKED_TRIVIAL_S, rel=1e-9)
    assert "note: DMA_PREFETCH" in _invoke(BLOCKED, "--symbolic", "--schedule",
                                           "dma-prefetch").output
    bad = _invoke(BLOCKED, "--schedule", "fastest")
    assert bad.exit_code == USAGE_ERROR and "choose one of asap" in bad.output


# matmul_block_all_dims at its example shape on trn1, program order (the reference loop)
PINNED_BLOCKED_TRIVIAL_S = 1.0285675462184875e-05
