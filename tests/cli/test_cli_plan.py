"""`tessera plan train` / `tessera plan models`: the ranked table, JSON rows, the job file,
the Pareto PNG, side-by-side instance types, and one `error:` line for each mistake."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app
from tessera.cli.plan_cmd import parse_counts

RUNNER = CliRunner()
PINNED = ["--tp", "8", "--pp", "1", "--micro-batch", "1", "--recompute", "selective",
          "--zero1"]


def _run(*args: str):  # noqa: ANN202
    return RUNNER.invoke(app, ["plan", "train", *args])


def test_json_rows_carry_the_documented_fields() -> None:
    r = _run("--model", "llama3-8b", "--seq", "4096", "--global-batch", "64",
             "--instances", "2", *PINNED, "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1
    row = rows[0]
    for key in ("tokens_per_s", "seq_per_s", "step_time_s", "mfu", "memory_per_device_bytes",
                "breakdown"):
        assert key in row
    assert (row["tp"], row["dp"], row["dp_mode"], row["recompute"]) == (8, 8, "zero1",
                                                                        "selective")
    assert row["step_time_s"] == pytest.approx(sum(row["breakdown"].values()))
    assert row["tokens_per_s"] == pytest.approx(64 * 4096 / row["step_time_s"])


def test_table_breakdown_png_and_job_file(tmp_path: Path) -> None:
    png, out = tmp_path / "pareto.png", tmp_path / "job"
    r = _run("--model", "llama3-8b", "--seq", "2048", "--global-batch", "64",
             "--instances", "1..2", "--top", "3", "--png", str(png), "--emit", str(out))
    assert r.exit_code == 0, r.output
    assert "tokens/s" in r.output and "step term" in r.output and "pp bubble" in r.output
    assert "[PR_TRN1]" in r.output  # the price's source
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    job = tomllib.loads((out / "job.toml").read_text())
    par = job["parallelism"]
    assert {"data_parallel_replicate_degree", "data_parallel_shard_degree",
            "tensor_parallel_degree", "pipeline_parallel_degree", "context_parallel_degree",
            "pipeline_parallel_schedule"} <= set(par)
    devices = (par["data_parallel_replicate_degree"] * par["data_parallel_shard_degree"]
               * par["tensor_parallel_degree"] * par["pipeline_parallel_degree"]
               * par["context_parallel_degree"])
    assert devices == job["tessera"]["devices"]
    assert job["activation_checkpoint"]["mode"] in ("none", "selective", "full")
    assert job["training"]["global_batch_size"] == 64


def test_instance_types_side_by_side() -> None:
    r = _run("--model", "llama3-8b", "--seq", "2048", "--global-batch", "64",
             "--instances", "trn1.32xlarge,trn2.48xlarge,p5.48xlarge", "--count", "1")
    assert r.exit_code == 0, r.output
    for name in ("trn1.32xlarge", "trn2.48xlarge", "p5.48xlarge"):
        assert name in r.output
    assert "unknown" in r.output  # trn2.48xlarge has no price in the presets: never $0
    assert "$0.00" not in r.output


def test_models_lists_the_zoo() -> None:
    r = RUNNER.invoke(app, ["plan", "models"])
    assert r.exit_code == 0, r.output
    for name in ("llama3-70b", "deepseek-v3", "mixtral-8x7b", "gpt3-175b", "bert-large"):
        assert name in r.output


def test_parse_counts() -> None:
    assert parse_counts("1..4") == [1, 2, 3, 4]
    assert parse_counts("8,2,2") == [2, 8]


@pytest.mark.parametrize(("args", "fragments"), [
    (["--model", "llama9"], ["unknown model 'llama9'"]),
    (["--model", "llama3-8b", "--instances", "0..x"], ["--instances '0..x'"]),
    (["--model", "llama3-8b", "--instance", "trn9"], ["unknown instance 'trn9'"]),
    (["--model", "llama3-8b", "--tp", "5", "--instances", "1"], ["no configuration"]),
    (["--model", "llama3-8b", "--recompute", "some"], ["--recompute takes"]),
    (["--model", "llama3-8b", "--zero1", "--replicate"], ["at most one of"]),
    ([], ["give one of --model"]),
    (["--model", "llama3-8b", "--dtype", "fp4"], ["--dtype: 'fp4'"]),
    (["--model", "llama3-8b", "--mode", "lora", "--lora-targets", "q,x"], ["--lora-targets"]),
    (["--model", "llama3-8b", "--objective", "speed"], ["--objective 'speed'"]),
    (["--model", "llama3-8b", "--refine", "1", "--ray", "nowhere.invalid:1"], ["--ray"]),
])
def test_mistakes_are_one_line(args: list[str], fragments: list[str],
                               one_line_error) -> None:  # noqa: ANN001
    one_line_error(_run(*args), *fragments)


def test_hf_config_names_the_model_after_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "Qwen3-8B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 4096,
        "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000, "hidden_act": "silu",
        "tie_word_embeddings": False}))
    r = _run("--hf-config", str(folder / "config.json"), "--seq", "2048", "--global-batch",
             "64", "--instances", "1", "--top", "2")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Qwen3-8B: seq 2048")


def test_bad_hf_config_is_one_line(tmp_path: Path, one_line_error) -> None:  # noqa: ANN001
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "mamba", "hidden_size": 64}))
    one_line_error(_run("--hf-config", str(cfg)), "mamba")
