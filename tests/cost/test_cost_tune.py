"""`tessera.cost.tune`: the library's block-size search with the disk cache around it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tessera import cost
from tessera.cost import cache as cache_module
from tessera.kernels import get
from tessera.kernels import tune as search
from tessera.nki import language as nl

SILU = get("silu")
SHAPES = {"rows": 256, "cols": 2048}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))


def test_cached_tune_is_the_search_and_round_trips(tmp_path) -> None:
    steps = []
    first = cost.tune(SILU, SHAPES, "bfloat16", "trn1", progress=steps.append)
    plain = search(SILU, SHAPES, "bfloat16", "trn1")
    assert not first.from_cache and first.params == plain.params
    assert first.time_s == plain.time_s and first.evaluated == len(steps) == plain.evaluated
    path = tmp_path / "cache" / cost.TUNE_FILE
    data = json.loads(path.read_text())
    key = "silu|cols=2048,rows=256|bfloat16|trn1"
    assert data["schema"] == 1 and data["entries"][key]["value"]["params"] == dict(first.params)

    steps.clear()
    again = cost.tune(SILU, dict(reversed(list(SHAPES.items()))), nl.bfloat16, "trainium",
                      progress=steps.append)
    assert again.from_cache and not steps and again.params == first.params
    assert again.time_s == first.time_s and again.evaluated == first.evaluated

    # an entry made by another kernel source / model version is ignored and replaced
    data["entries"][key]["fingerprint"] = "stale"
    path.write_text(json.dumps(data))
    fresh = cost.tune(SILU, SHAPES, "bfloat16", "trn1")
    assert not fresh.from_cache and fresh.params == first.params
    assert json.loads(path.read_text())["entries"][key]["fingerprint"] != "stale"

    # cache=False neither reads nor writes; an unreadable file counts as empty
    cost.tune(SILU, SHAPES, "float32", "trn1", cache=False)
    assert len(json.loads(path.read_text())["entries"]) == 1
    path.write_text("{not json")
    assert not cost.tune(SILU, SHAPES, "bfloat16", "trn1").from_cache


def test_cache_dir_precedence(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TESSERA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cost.cache_dir() == tmp_path / "xdg" / "tessera"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cost.cache_dir() == tmp_path / "home" / ".cache" / "tessera"
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "mine"))
    assert cost.cache_dir() == tmp_path / "mine"


def test_fingerprint_tracks_kernel_definition() -> None:
    base = cache_module.kernel_fingerprint(SILU)
    assert base == cache_module.kernel_fingerprint(SILU)
    other = dataclasses.replace(SILU, tunables={"chunk": (512,)})
    assert cache_module.kernel_fingerprint(other) != base
