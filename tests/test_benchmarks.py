"""Every benchmark runs from a plain copy of the repo, with nothing outside it.

The benchmark scripts and the example kernels are copied into a folder with no `../shared`
beside it; each script answers `--help`, and the two validation scripts run on the
published rows shipped in `benchmarks/data/` (the kernel one on its smallest variant).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("clone") / "repo"
    for folder in ("benchmarks", "examples"):
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    assert not (dest.parent / "shared").exists()
    return dest


def _run(copy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


@pytest.mark.parametrize("script", BENCHMARKS)
def test_help(copy: Path, script: str) -> None:
    out = _run(copy, f"benchmarks/{script}", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()


def test_validate_collectives_runs_on_shipped_data(copy: Path) -> None:
    out = _run(copy, "benchmarks/validate_collectives.py")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "1073741824" in out.stdout or "1 GiB" in out.stdout


def test_validate_kernels_runs_on_shipped_data(copy: Path) -> None:
    out = _run(copy, "benchmarks/validate_kernels.py", "--only", "block_all_dims")
    assert "block_all_dims" in out.stdout and "published    6.97 ms" in out.stdout, (
        out.stdout[-2000:] + out.stderr[-2000:])


def test_validate_training_runs_on_shipped_data(copy: Path) -> None:
    out = _run(copy, "benchmarks/validate_training.py")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "gpt-175b" in out.stdout and "mean |error|" in out.stdout
