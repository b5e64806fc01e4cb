"""House rules: layers import downward only, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tessera"
# lowest first; a layer may import only itself and layers before it (DESIGN.md)
LAYERS = ["hw", "nki", "sim", "kernels", "cost", "compiler", "dist", "plan", "report", "cli"]
MAX_LINES = 600


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tessera" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0] if len(rel.parts) > 1 else None
    if own not in LAYERS:
        return
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    bad = [(m, line) for m, line in _imports(path)
           if (layer := _layer_of(m)) is not None and layer not in allowed]
    assert not bad, f"{rel} (layer {own}) imports higher layers: {bad}"


def test_layer_rule_detects_violation(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text("from tessera.cli import app\nimport tessera.sim.timeline\n")
    layers = [_layer_of(m) for m, _ in _imports(fake)]
    assert "cli" in layers and "sim" in layers


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (max {MAX_LINES})"
