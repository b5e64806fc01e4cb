"""`tessera serve simulate`: vllm bench serve's metrics from the inference model's step costs,
the timeline PNG, trace replay, and one `error:` line per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app

RUNNER = CliRunner()
BASE = ["--model", "llama3.1-8b", "--instance", "trn2.48xlarge", "--tp", "8",
        "--max-num-seqs", "4", "--max-model-len", "2048"]


def _run(*args: str):  # noqa: ANN202
    return RUNNER.invoke(app, ["serve", "simulate", *args])


def test_closed_loop_json_metrics() -> None:
    r = _run(*BASE, "--input", "512", "--output", "64", "--max-concurrency", "1",
             "--requests", "5", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    for key in ("request_throughput", "output_throughput", "mean_ttft_ms", "median_tpot_ms",
                "p99_itl_ms", "mean_e2el_ms"):
        assert key in m
    assert m["completed"] == 5 and m["max_concurrent_requests"] == 1
    # one request at a time: the run lasts the sum of the requests' end-to-end latencies
    assert m["duration"] * 1e3 == pytest.approx(5 * m["mean_e2el_ms"], rel=1e-6)
    assert m["mean_tpot_ms"] < m["mean_ttft_ms"]


def test_trace_replay_and_png(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps({"arrival_s": i * 0.1, "input_tokens": 256,
                                           "output_tokens": 16}) for i in range(6)))
    png = tmp_path / "serve.png"
    r = _run(*BASE, "--trace", str(trace), "--png", str(png), "--goodput", "ttft:10000")
    assert r.exit_code == 0, r.output
    assert "request_goodput" in r.output and "completed                  6" in r.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_trace_row_is_one_line(tmp_path: Path, one_line_error) -> None:  # noqa: ANN001
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0,128,8\n0.5,abc,8\n")
    one_line_error(_run(*BASE, "--trace", str(trace)), "t.csv:3", "input_tokens")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--model", "llama9"], ["unknown model"]),
    ([*BASE, "--scheduler", "fifo"], ["fifo"]),
    ([*BASE, "--tp", "64", "--replicas", "2"], ["needs 128 devices"]),
    ([*BASE, "--goodput", "ttft:fast"], ["--goodput"]),
    ([*BASE, "--goodput", "tpot:0.0001", "--requests", "3"], ["tpot"]),
])
def test_mistakes_are_one_line(args: list[str], fragments: list[str],
                               one_line_error) -> None:  # noqa: ANN001
    one_line_error(_run(*args), *fragments)


def test_serve_simulate_at_simulated_fidelity(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path))
    base = ["serve", "simulate", "--model", "tiny-llama", "--instance", "trn2.48xlarge",
            "--tp", "1", "--lnc", "1", "--max-num-seqs", "2", "--max-model-len", "256",
            "--input", "64", "--output", "4", "--requests", "4", "--max-concurrency", "2",
            "--json"]
    out = {}
    for fid in ("roofline", "simulated"):
        r = RUNNER.invoke(app, [*base, "--fidelity", fid])
        assert r.exit_code == 0, r.output
        out[fid] = json.loads(r.stdout.strip().splitlines()[-1])
        assert out[fid]["fidelity"] == fid
    # ROOFLINE is a lower bound on the simulated kernels' times
    assert out["simulated"]["median_tpot_ms"] >= out["roofline"]["median_tpot_ms"] > 0
    assert out["simulated"]["median_ttft_ms"] >= out["roofline"]["median_ttft_ms"] > 0
