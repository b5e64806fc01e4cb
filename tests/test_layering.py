"""House rules: layers import downward only, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tessera"
# lowest first; a layer may import itself and the layers before it (DESIGN.md), except that
# `plan` and `parallel` are siblings (neither imports the other) and `plan` reads `cost`,
# `net` and `models`, never `compiler`
LAYERS = ["hw", "nki", "sim", "kernels", "cost", "net", "models", "compiler", "parallel",
          "plan", "report", "cli"]
EXCLUDED = {"plan": {"parallel", "compiler"}, "parallel": {"plan"}}
# third-party packages a layer must not import
FORBIDDEN = {"net": {"torch"}, "hw": {"torch", "numba"}}
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


def allowed_layers(own: str) -> set[str]:
    """The layers a module of layer `own` may import."""
    return set(LAYERS[: LAYERS.index(own) + 1]) - EXCLUDED.get(own, set())


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0] if len(rel.parts) > 1 else None
    if own is None:
        return
    assert own in LAYERS, f"package tessera/{own} is not a layer of DESIGN.md: add it to LAYERS"
    allowed = allowed_layers(own)
    bad = [(m, line) for m, line in _imports(path)
           if (layer := _layer_of(m)) is not None and layer not in allowed]
    assert not bad, f"{rel} (layer {own}) imports higher layers: {bad}"
    banned = FORBIDDEN.get(own, set())
    third = [(m, line) for m, line in _imports(path) if m.split(".")[0] in banned]
    assert not third, f"{rel} (layer {own}) imports {sorted(banned)}: {third}"


def test_layer_rule_detects_violation(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text("from tessera.cli import app\nimport tessera.sim.timeline\n")
    layers = [_layer_of(m) for m, _ in _imports(fake)]
    assert "cli" in layers and "sim" in layers


def test_siblings_do_not_import_each_other() -> None:
    assert "parallel" not in allowed_layers("plan")
    assert "plan" not in allowed_layers("parallel")
    assert {"net", "cost", "compiler"} <= allowed_layers("parallel")
    assert {"net", "cost"} <= allowed_layers("plan") and "compiler" not in allowed_layers("plan")
    assert "models" in allowed_layers("plan") and "models" in allowed_layers("compiler")
    assert "models" not in allowed_layers("net")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (max {MAX_LINES})"
