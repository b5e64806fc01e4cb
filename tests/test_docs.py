"""Every code block in README.md and docs/*.md runs as written.

Each block carries a language tag. `python` blocks of one file run in order in one fresh
interpreter (later blocks may use what earlier ones defined); `console` blocks are shell
commands run one by one (`make test`, this very suite, is the one command left out). Both
run in a scratch folder that sees the repo's `examples/`, `benchmarks/` and `.venv/` (so
the relative paths of the docs work and the files they write land in the scratch folder);
`make` runs in the repo;
`json` and `yaml` blocks must parse; `text` blocks are prose layouts (trees, diagrams,
sample output) and are not code. A block without a tag fails the test, so nothing is left
unrun by accident.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LANGUAGES = {"python", "console", "json", "yaml", "text"}
SKIPPED_COMMANDS = {"make test"}  # the suite that runs this test
TIMEOUT_S = 600


def _blocks(path: Path) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(path.read_text())]


def _scratch(tmp_path: Path) -> Path:
    for name in ("examples", "benchmarks", ".venv"):
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    return {**os.environ, "TESSERA_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg",
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_every_block_has_a_known_language(path: Path) -> None:
    for lang, body in _blocks(path):
        assert lang in LANGUAGES, f"{path.name}: a block tagged {lang!r}: {body[:60]!r}"


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_data_blocks_parse(path: Path) -> None:
    for lang, body in _blocks(path):
        if lang == "json":
            json.loads(body)
        elif lang == "yaml":
            yaml.safe_load(body)


PYTHON_DOCS = [p for p in DOCS if any(lang == "python" for lang, _ in _blocks(p))]


@pytest.mark.parametrize("path", PYTHON_DOCS, ids=_ids(PYTHON_DOCS))
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    code = [body for lang, body in _blocks(path) if lang == "python"]
    script = tmp_path / "doc_blocks.py"
    script.write_text("\n".join(code))
    out = subprocess.run([sys.executable, str(script)], cwd=_scratch(tmp_path),
                         env=_env(tmp_path), capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0, f"{path.name}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


def _commands(path: Path) -> list[str]:
    lines = []
    for lang, body in _blocks(path):
        if lang == "console":
            lines += [ln.split("#")[0].strip() for ln in body.splitlines()]
    return [ln for ln in lines if ln and ln not in SKIPPED_COMMANDS]


CONSOLE_DOCS = [p for p in DOCS if _commands(p)]


@pytest.mark.parametrize("path", CONSOLE_DOCS, ids=_ids(CONSOLE_DOCS))
def test_console_blocks_run(path: Path, tmp_path: Path) -> None:
    scratch, env = _scratch(tmp_path), _env(tmp_path)
    for command in _commands(path):
        cwd = ROOT if command.startswith("make ") else scratch
        out = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=TIMEOUT_S)
        assert out.returncode == 0, f"{path.name}: {command}\n{out.stderr[-3000:]}"


def test_the_isa_table_lists_every_opcode_with_its_engines() -> None:
    from tessera.nki.opcodes import OPCODES

    rows = {}
    for line in (ROOT / "docs" / "nki.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[3]
    for spec in OPCODES.values():
        assert spec.isa in rows, f"docs/nki.md has no row for {spec.isa}"
        assert rows[spec.isa] == ", ".join(e.value for e in spec.engines), spec.isa
