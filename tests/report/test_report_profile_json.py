"""Canonical profile JSON: provenance header, SI numbers as the model made them, no NaN/inf."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import tessera
from tessera import sim
from tessera.nki import TensorSpec
from tessera.nki.kernel_files import load_kernel_file
from tessera.report import profile_report, write_profile_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"


@pytest.fixture(scope="module")
def prof() -> sim.Profile:
    kernel = load_kernel_file(EXAMPLES / "matmul_tutorial.py").kernel("matmul_hoist_loads")
    return sim.profile(kernel, TensorSpec((256, 256), "bfloat16"),
                       TensorSpec((256, 1024), "bfloat16"), chip="trn2", symbolic=True)


def test_report_carries_provenance_and_the_profile_numbers(prof: sim.Profile,
                                                           tmp_path: Path) -> None:
    path = write_profile_json(prof, tmp_path / "p.json", kernel="matmul_hoist_loads",
                              overrides={"core.sbuf.bytes_per_partition": "262144"})
    r = json.loads(path.read_text())
    assert r["schema"].startswith("tessera.profile/")
    assert r["tessera_version"] == tessera.__version__ and r["chip"] == "trn2"
    assert r["overrides"] == {"core.sbuf.bytes_per_partition": "262144"}
    assert r["total_s"] == prof.total_s and r["flops"] == prof.flops
    assert r["bound"] == prof.bound.value
    assert [e["resource"] for e in r["engines"]] == [u.resource.value for u in prof.engines]
    assert sum(h["count"] for h in r["top_instructions"]) <= prof.instructions
    assert r["top_instructions"][0]["file"].endswith("matmul_tutorial.py")
    assert r["critical_path"]["length_s"] == pytest.approx(prof.total_s)
    assert r["peak_psum_bytes_per_partition"] == prof.peak_psum_bytes > 0


def test_unbounded_intensity_becomes_null(prof: sim.Profile) -> None:
    no_traffic = dataclasses.replace(prof, arithmetic_intensity=float("inf"))
    r = profile_report(no_traffic)
    assert r["arithmetic_intensity_flops_per_byte"] is None
    json.dumps(r, allow_nan=False)  # strictly valid JSON
