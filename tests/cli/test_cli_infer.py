"""`tessera plan infer`: the deployment table, JSON objects, side-by-side instance types,
the emitted vLLM configuration, and one `error:` line per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app

RUNNER = CliRunner()


def _run(*args: str):  # noqa: ANN202
    return RUNNER.invoke(app, ["plan", "infer", *args])


def test_json_objects_carry_ttft_tpot_and_breakdown() -> None:
    r = _run("--model", "llama3-70b", "--input", "2048", "--output", "256", "--batch", "4",
             "--instance", "trn1.32xlarge", "--tp", "32", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["stack"] == "nxdi" and row["tp"] == 32 and row["batch"] == 4
    for key in ("ttft_s", "tpot_s", "output_tokens_per_s", "breakdown"):
        assert key in row
    assert row["tpot_s"] < row["ttft_s"]
    assert row["usd_per_million_output_tokens"] > 0


def test_side_by_side_and_emit(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    r = _run("--model", "llama3-8b", "--input", "1024", "--output", "128", "--batch", "2",
             "--instances", "trn2.48xlarge,p5.48xlarge", "--emit", str(out))
    assert r.exit_code == 0, r.output
    assert "trn2.48xlarge" in r.output and "p5.48xlarge" in r.output
    cfg = json.loads((out / "vllm.json").read_text())
    assert cfg["max_num_seqs"] >= 2 and cfg["tensor_parallel_size"] >= 1
    assert (out / "serve.sh").read_text().splitlines()[-1].startswith("vllm serve llama3-8b")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--model", "llama9"], ["unknown model 'llama9'"]),
    (["--model", "llama3-8b", "--serving", "tgi"], ["--serving 'tgi'"]),
    (["--model", "llama3-8b", "--weights", "int4"], ["--weights 'int4'"]),
    (["--model", "llama3-8b", "--tpot-slo", "0.000001", "--batch", "1"], ["meets the SLOs"]),
    (["--model", "llama3.1-405b", "--instance", "inf2.xlarge"], ["does not fit"]),
    (["--model", "llama3-8b", "--input", "0"], ["--input: 0"]),
])
def test_mistakes_are_one_line(args: list[str], fragments: list[str],
                               one_line_error) -> None:  # noqa: ANN001
    one_line_error(_run(*args), *fragments)


def test_plan_infer_refine_and_a_bad_fidelity(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path))
    r = RUNNER.invoke(app, ["plan", "infer", "--model", "tiny-llama", "--input", "64",
                            "--output", "4", "--batch", "1", "--tp", "1", "--lnc", "1",
                            "--replicas", "1", "--instance", "trn2.48xlarge", "--refine", "1"])
    assert r.exit_code == 0, r.output
    assert "re-evaluated at SIMULATED" in r.output
    r = RUNNER.invoke(app, ["plan", "infer", "--model", "tiny-llama", "--fidelity", "exact"])
    assert r.exit_code == 2
    assert "--fidelity 'exact': choose roofline|simulated" in r.output
