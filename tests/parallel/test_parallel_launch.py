"""From a plan to a launch: `tessera plan train --emit` writes a job that torchrun runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app

RUNNER = CliRunner()


def _emit(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "job"
    r = RUNNER.invoke(app, ["plan", "train", "--model", "tiny-llama", "--seq", "16",
                            "--global-batch", "8", "--instance", "trn1.2xlarge", *extra,
                            "--emit", str(out)])
    assert r.exit_code == 0, r.output
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _losses(out: str) -> list[float]:
    return [float(line.split()[-1]) for line in out.splitlines() if line.startswith("step ")]


def test_emitted_job_runs_on_4_local_processes(tmp_path: Path) -> None:
    job = _emit(tmp_path, "--count", "2", "--tp", "2", "--pp", "2")
    text = (job / "job.toml").read_text()
    assert "tensor_parallel_degree = 2" in text and "pipeline_parallel_degree = 2" in text
    for script in ("torchrun.sh", "sbatch.sh"):
        assert os.access(job / script, os.X_OK)
        subprocess.run(["bash", "-n", str(job / script)], check=True, timeout=10)
    sbatch = (job / "sbatch.sh").read_text()
    assert "#SBATCH --nodes=2" in sbatch and "--ntasks-per-node=1" in sbatch
    assert '--rdzv-endpoint "$head_node:29500"' in sbatch and "SLURM_JOB_ID" in sbatch
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4", "-m",
           "tessera.parallel.run", "--config", str(job / "job.toml"), "--steps", "2"]
    four = subprocess.run(run, capture_output=True, text=True, env=_env(tmp_path),
                          timeout=120, start_new_session=True)
    assert four.returncode == 0, four.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "tessera.parallel.run", "--model",
                          "tiny-llama", "--batch", "8", "--seq-len", "16", "--steps", "2"],
                         capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert one.returncode == 0, one.stderr[-2000:]
    assert _losses(four.stdout) == pytest.approx(_losses(one.stdout), rel=1e-5)
    assert len(_losses(four.stdout)) == 2


def test_emitted_torchrun_script_runs_one_instance(tmp_path: Path) -> None:
    job = _emit(tmp_path, "--count", "1", "--tp", "2")
    assert "--standalone --nproc-per-node 2" in (job / "torchrun.sh").read_text()
    r = subprocess.run(["bash", str(job / "torchrun.sh"), "--steps", "1"], capture_output=True,
                       text=True, env=_env(tmp_path), timeout=120, start_new_session=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(_losses(r.stdout)) == 1


def test_an_emit_folder_that_cannot_be_made_fails_before_the_search(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = RUNNER.invoke(app, ["plan", "train", "--model", "tiny-llama", "--seq", "16",
                            "--global-batch", "8", "--instance", "trn1.2xlarge",
                            "--emit", str(blocker / "job")])
    assert r.exit_code == 2
    assert f"--emit {blocker / 'job'}: cannot create the folder" in r.output
    assert "feasible of" not in r.output  # no plan was printed first
