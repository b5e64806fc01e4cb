"""`tessera collective`: text, JSON and sweep output, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.collective_cmd import USAGE_ERROR, app
from tessera.net import CollectiveModel

runner = CliRunner()
BASE = ["ALL_REDUCE", "--bytes", "64MiB", "--ranks", "16", "--instance", "trn1.32xlarge"]


def test_text_output_names_time_bandwidths_and_busiest_link() -> None:
    res = runner.invoke(app, BASE)
    assert res.exit_code == 0, res.output
    expected = CollectiveModel.for_instance("trn1.32xlarge", 16).cost("all_reduce", "64MiB",
                                                                       algorithm="auto")
    for label in ("algorithm", "time", "algbw", "busbw", "busiest link"):
        assert label in res.output
    assert f"{expected.time_s * 1e6:.1f} us" in res.output
    assert expected.algorithm.value in res.output


def test_json_output_has_exactly_the_documented_keys() -> None:
    res = runner.invoke(app, [*BASE, "--algorithm", "ring", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"op", "bytes", "ranks", "time_s", "algorithm", "algbw_bytes_per_s",
                         "busbw_bytes_per_s"}
    assert data["algorithm"] == "ring" and data["bytes"] == 64 * 2**20 and data["ranks"] == 16
    assert data["algbw_bytes_per_s"] == pytest.approx(data["bytes"] / data["time_s"])
    assert data["busbw_bytes_per_s"] == pytest.approx(data["algbw_bytes_per_s"] * 2 * 15 / 16)


def test_sweep_prints_sizes_and_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "sweep.png"
    res = runner.invoke(app, ["all_gather", "--ranks", "32", "--sweep", "--png", str(png)])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 11 and rows[0].split()[0] == "1024"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_json_is_one_object_per_size(tmp_path: Path) -> None:
    res = runner.invoke(app, ["reduce_scatter", "--ranks", "8", "--sweep", "--json", "--png",
                              str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["bytes"] for x in lines] == [1024 * 4**k for k in range(11)]


@pytest.mark.parametrize(("args", "message"), [
    (["ALL_SUM"], "unknown collective"),
    (["ALL_REDUCE", "--bytes", "12XB"], "unknown size unit"),
    (["ALL_REDUCE", "--bytes", "0"], "positive"),
    (["ALL_REDUCE", "--instance", "trn9"], "unknown instance"),
    (["ALL_REDUCE", "--ranks", "33"], "exceed"),
    (["ALL_REDUCE", "--algorithm", "magic"], "unknown algorithm"),
    (["ALL_REDUCE", "--ranks", "6", "--algorithm", "rhd"], "power-of-two"),
])
def test_errors_are_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == USAGE_ERROR
    assert message in res.output and "Traceback" not in res.output
