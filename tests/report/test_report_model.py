"""Reports of a compiled model: the JSON adds up, the PNG is drawn, the Perfetto trace lays
the ops back to back, and all three land in one folder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tessera
from tessera import report
from tessera.compiler import CompiledModel
from tessera.compiler.reports import model_json, model_ops, model_png, model_trace
from tessera.compiler.reports.model_folder import FILES
from tessera.models import TINY_LLAMA, build_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INPUTS = {"input_ids": {"shape": [1, 32], "dtype": "int64"}}


@pytest.fixture(scope="module")
def compiled() -> CompiledModel:
    ids = torch.zeros(1, 32, dtype=torch.int64)
    return tessera.compile(build_model(TINY_LLAMA), (ids,), chip="trn2", fidelity="roofline")


class WithFlip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.flip(self.proj(x), dims=[-1])


@pytest.fixture(scope="module")
def with_host_op() -> CompiledModel:
    return tessera.compile(WithFlip(), (torch.randn(4, 8),), chip="trn1",
                           fidelity="roofline", fallback="host")


# ------------------------------------------------------------------ JSON
def test_json_header_and_totals_add_up(compiled: CompiledModel) -> None:
    p = compiled.profile
    r = model_json.model_report(p, model="tiny-llama", inputs=INPUTS,
                                settings={"dtype": torch.float32})
    assert r["schema"] == "tessera.model_profile/1"
    assert r["tessera_version"] == tessera.__version__
    assert (r["chip"], r["fidelity"], r["model"]) == ("trn2", "roofline", "tiny-llama")
    assert r["inputs"] == INPUTS and r["settings"] == {"dtype": "float32"}
    totals = r["totals"]
    ops = r["ops"]
    assert len(ops) == totals["ops"] == len(p.ops)
    assert totals["total_s"] == pytest.approx(sum(o["time_s"] for o in ops), rel=1e-12)
    assert totals["total_s"] == pytest.approx(totals["device_s"] + totals["host_s"])
    assert totals["flops"] == pytest.approx(sum(o["flops"] for o in ops))
    assert totals["hbm_bytes"] == pytest.approx(sum(o["hbm_bytes"] for o in ops))
    assert totals["peak_hbm_bytes"] == r["memory"]["peak_bytes"] == p.peak_hbm_bytes
    assert totals["peak_sbuf_bytes"] == 0 and totals["fidelity"] == "roofline"
    for rows in (r["layers"], r["modules"]):
        assert sum(x["time_s"] for x in rows) == pytest.approx(totals["total_s"])
        assert sum(x["ops"] for x in rows) == len(ops)
        assert sum(x["share"] for x in rows) == pytest.approx(1.0)
    assert [x["module"] for x in r["layers"]] == ["embed_tokens", "layers.0", "layers.1",
                                                  "norm", "lm_head"]
    assert sum(r["groups"].values()) == pytest.approx(totals["total_s"])
    for resource, u in r["utilisation"].items():
        assert u["utilisation"] == pytest.approx(u["busy_s"] / totals["total_s"]), resource


def test_json_op_rows_run_back_to_back(compiled: CompiledModel) -> None:
    ops = model_json.model_report(compiled.profile)["ops"]
    keys = {"node", "op", "kind", "module", "priced_as", "kernels", "time_s", "bound", "flops",
            "hbm_bytes", "start_s", "layer", "group"}
    assert all(keys <= set(o) for o in ops)
    for a, b in zip(ops, ops[1:], strict=False):
        assert b["start_s"] == pytest.approx(a["start_s"] + a["time_s"])
    by_node = {o["node"]: o for o in ops}
    assert by_node["linear"]["kernels"] == ["matmul"] and by_node["linear"]["group"] == "matmul"
    assert by_node["linear"]["layer"] == "layers.0"
    assert by_node["scaled_dot_product_attention"]["group"] == "attention"
    assert by_node["rms_norm"]["group"] == "norm"
    assert by_node["permute"]["group"] == "copy" and by_node["view_1"]["group"] == "view"


def test_json_file_is_strict_json(compiled: CompiledModel, tmp_path: Path) -> None:
    path = model_json.write_model_json(compiled.profile, tmp_path / "p.json",
                                       inputs={"x": torch.zeros(2, 3, dtype=torch.bfloat16),
                                               "scale": math.inf})
    loaded = json.loads(path.read_text())  # the file was written with allow_nan=False
    assert loaded["inputs"] == {"x": {"shape": [2, 3], "dtype": "bfloat16"}, "scale": None}
    assert model_json.plain({"a": (1, float("nan")), "b": torch.int64}) == {
        "a": [1, None], "b": "int64"}


def test_host_ops_are_their_own_group(with_host_op: CompiledModel) -> None:
    r = model_json.model_report(with_host_op.profile)
    assert r["totals"]["host_s"] > 0
    assert r["groups"]["host"] == pytest.approx(r["totals"]["host_s"])
    assert r["totals"]["device_s"] > 0
    assert [o["layer"] for o in r["ops"]] == ["proj", "(top)"]


# ------------------------------------------------------------------ PNG
def test_png_is_written(compiled: CompiledModel, tmp_path: Path) -> None:
    path = model_png.write_model_png(compiled.profile, tmp_path / "l.png", title="tiny")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    rows = model_png.layer_groups(compiled.profile)
    assert list(rows) == ["embed_tokens", "layers.0", "layers.1", "norm", "lm_head"]
    assert rows["layers.0"]["matmul"] > 0 and rows["lm_head"]["copy"] == 0


# ------------------------------------------------------------------ trace
def _events(trace: dict) -> tuple[dict[str, int], list[dict]]:
    names = {e["args"]["name"]: e["tid"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    return names, [e for e in trace["traceEvents"] if e["ph"] == "X"]


def test_trace_lays_the_ops_back_to_back(compiled: CompiledModel, tmp_path: Path) -> None:
    p = compiled.profile
    path = model_trace.write_model_trace(p, tmp_path / "t.json", model="tiny-llama")
    trace = json.loads(path.read_text())
    assert trace["otherData"]["schema"] == "tessera.model_trace/1"
    assert trace["otherData"]["total_s"] == pytest.approx(p.total_s)
    process = [e for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert [e["args"]["name"] for e in process] == ["trn2"]
    lanes, events = _events(trace)
    assert list(lanes)[:2] == ["model", "layers"] and "copy" in lanes
    model = [e for e in events if e["tid"] == lanes["model"]]
    assert [e["name"] for e in model] == [op.node for op in p.ops]
    assert model[0]["ts"] == 0.0
    for a, b in zip(model, model[1:], strict=False):
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"], abs=1e-5)
    assert sum(e["dur"] for e in model) == pytest.approx(p.total_s * 1e6, rel=1e-6)
    assert set(model[0]["args"]) >= {"op", "module", "kernels", "bound", "flops", "hbm_bytes"}
    layers = [e for e in events if e["tid"] == lanes["layers"]]
    assert [e["name"] for e in layers] == ["embed_tokens", "layers.0", "layers.1", "norm",
                                           "lm_head"]
    assert sum(e["dur"] for e in layers) == pytest.approx(p.total_s * 1e6, rel=1e-6)
    # every op that takes time is on one resource lane too, at the same time as on `model`
    on_lanes = [e for e in events if e["tid"] not in (lanes["model"], lanes["layers"])]
    assert len(on_lanes) == sum(1 for op in p.ops if model_ops.op_lane(op) is not None)
    assert {e["name"] for e in on_lanes if e["tid"] == lanes["copy"]} == {
        op.node for op in p.ops if op.priced_as == "copy"}


def test_trace_has_a_host_lane(with_host_op: CompiledModel) -> None:
    trace = report.model_chrome_trace(with_host_op.profile)
    lanes, events = _events(trace)
    host = [e for e in events if e["tid"] == lanes["host"]]
    assert [e["args"]["op"] for e in host] == ["aten.flip.default"]
    assert json.dumps(trace, allow_nan=False)


# ------------------------------------------------------------------ folder
def test_write_model_report_fills_a_new_folder(compiled: CompiledModel, tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    paths = report.write_model_report(compiled, folder, model="tiny-llama",
                                      settings={"fallback": "error"})
    assert {k: p.name for k, p in paths.items()} == FILES
    assert all(p.parent == folder and p.stat().st_size > 0 for p in paths.values())
    loaded = json.loads(paths["json"].read_text())
    assert loaded["inputs"] == INPUTS
    assert loaded["settings"] == {"symbolic": False, "fallback": "error"}
    assert paths["png"].read_bytes().startswith(PNG_MAGIC)
    assert json.loads(paths["trace"].read_text())["otherData"]["model"] == "tiny-llama"


def test_compiled_model_report_method_writes_the_same_folder(compiled: CompiledModel,
                                                              tmp_path: Path) -> None:
    paths = compiled.report(tmp_path / "r")
    assert {k: p.name for k, p in paths.items()} == FILES
    loaded = json.loads(paths["json"].read_text())
    assert loaded["settings"] == {"symbolic": False}
    assert loaded["inputs"] == INPUTS


def test_importing_reports_does_not_import_torch() -> None:
    code = "import sys, tessera.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
