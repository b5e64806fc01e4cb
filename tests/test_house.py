"""Nothing is silently skipped: every package has collected tests, ruff reads every file.

pytest's and ruff's default exclusions skip folders named like build outputs (`dist`,
`build`, `venv`, ...); a package with such a name would lose its tests and its lint without
any message. These tests ask the tools themselves what they collect and check.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tessera"
LINTED = ("tessera", "tests", "benchmarks", "examples")
TIMEOUT_S = 300


def _packages() -> list[str]:
    """Dotted names of every package under tessera/ (folders with an __init__.py)."""
    return sorted(".".join(p.parent.relative_to(ROOT).parts)
                  for p in PACKAGE.rglob("__init__.py"))


def _imported(path: Path) -> set[str]:
    """Modules a test file imports (with every parent package of each)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    closed = set()
    for name in names:
        parts = name.split(".")
        closed |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return closed


@pytest.fixture(scope="module")
def collected_modules() -> list[Path]:
    """The test modules `python -m pytest` (the README's `make test`) collects, as files."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=",
                          "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    files = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    return sorted(ROOT / f for f in files)


def test_every_package_has_a_collected_test_module(collected_modules: list[Path]) -> None:
    imported: set[str] = set()
    for path in collected_modules:
        imported |= _imported(path)
    untested = [p for p in _packages() if p not in imported]
    assert not untested, f"packages that no collected test module imports: {untested}"


def test_collection_reaches_every_test_folder(collected_modules: list[Path]) -> None:
    on_disk = {p.parent for p in (ROOT / "tests").rglob("test_*.py")}
    seen = {p.parent for p in collected_modules}
    missing = sorted(str(d.relative_to(ROOT)) for d in on_disk - seen)
    assert not missing, f"test folders pytest does not collect: {missing}"


def test_ruff_reads_every_python_file() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (make test installs it)")
    out = subprocess.run([ruff, "check", "--show-files"], cwd=ROOT, capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-2000:]
    shown = {Path(line.strip()).resolve() for line in out.stdout.splitlines() if line.strip()}
    wanted = {p.resolve() for folder in LINTED for p in (ROOT / folder).rglob("*.py")
              if "__pycache__" not in p.parts}
    missing = sorted(str(p.relative_to(ROOT)) for p in wanted - shown)
    assert not missing, f"files `ruff check` (as make test runs it) skips: {missing}"


def _project_with_build_named_folders(tmp_path: Path) -> Path:
    """A scratch project with this repo's tool settings and folders named like build output."""
    settings = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(settings)
    for name in ("dist", "build", "venv"):
        folder = tmp_path / "tests" / name
        folder.mkdir(parents=True)
        (folder / f"test_{name}.py").write_text("def test_here():\n    assert True\n")
    return tmp_path


def test_settings_do_not_hide_build_named_folders(tmp_path: Path) -> None:
    project = _project_with_build_named_folders(tmp_path)
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=",
                          "-p", "no:cacheprovider"], cwd=project, capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    for name in ("dist", "build", "venv"):
        assert f"tests/{name}/test_{name}.py::test_here" in out.stdout, out.stdout[-2000:]
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is not None:
        listed = subprocess.run([ruff, "check", "--show-files"], cwd=project,
                                capture_output=True, text=True, timeout=TIMEOUT_S).stdout
        for name in ("dist", "build", "venv"):
            assert f"test_{name}.py" in listed, listed


def test_one_name_per_thing() -> None:
    # two classes of one name in different packages (two CapacityErrors, two Engine enums)
    # make callers convert between them or catch the wrong one
    seen: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: files for name, files in seen.items() if len(files) > 1}
    assert not twice, f"classes defined more than once: {twice}"


def test_shared_errors_are_one_class() -> None:
    from tessera import hw, nki, sim

    assert sim.CapacityError is nki.CapacityError
    assert issubclass(sim.SbufCapacityError, nki.CapacityError)
    assert issubclass(sim.PsumCapacityError, sim.SimError)
    from tessera.net import collective_calibration
    from tessera.sim import timing_calibration

    assert collective_calibration.CalibrationError is hw.CalibrationError
    assert timing_calibration.CalibrationError is hw.CalibrationError
