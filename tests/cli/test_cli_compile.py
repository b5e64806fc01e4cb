"""`tessera compile`: a model from a factory, a preset or a config.json; the profile summary,
the report folder, and one `error:` line for every mistake."""

from __future__ import annotations

import json
import re
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli.app import app
from tessera.cli.compile_cmd import make_inputs, parse_input

MODEL_FILE = textwrap.dedent('''\
    import torch


    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.Linear(64, 128)
            self.down = torch.nn.Linear(128, 64)

        def forward(self, x):
            return self.down(torch.relu(self.up(x)))


    class Flip(torch.nn.Module):
        def forward(self, x):
            return torch.flip(x, dims=[-1])


    def make():
        return Mlp()


    def flip():
        return Flip()


    def not_a_module():
        return 3


    def boom():
        return 1 / 0


    NUMBER = 5
''')
TINY_LLAMA_CONFIG = {
    "model_type": "llama", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "hidden_act": "silu",
}


def _invoke(*args: str):  # noqa: ANN202 - click Result
    return CliRunner().invoke(app, ["compile", *args], terminal_width=200)


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(MODEL_FILE)
    return path


# ------------------------------------------------------------------ success
def test_factory_from_a_file(model_file: Path) -> None:
    result = _invoke(f"{model_file}:make", "--inputs", "x=4x64", "--chip", "trn1",
                     "--fidelity", "roofline")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"compiled {model_file}:make (4x64 float32; with weights) "
                               "for trn1 in ")
    ran = re.fullmatch(r"ran on the simulated device in [\d.]+ s: max \|compiled - eager\| "
                       r"= ([\d.e+-]+) over 1 output\(s\)", lines[1])
    assert ran is not None and float(ran.group(1)) < 1e-4, lines[1]
    assert lines[2].startswith("2 ops on trn1 (roofline): ")
    assert "per layer:" in lines and any(line.strip().startswith("up ") for line in lines)


def test_factory_by_module_name_symbolic(model_file: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(model_file.parent)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the current folder
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    result = _invoke("mymodels:make", "--inputs", "x=4x64:bfloat16", "--symbolic",
                     "--fidelity", "roofline")
    assert result.exit_code == 0, result.output
    assert "(4x64 bfloat16; symbolic)" in result.output.splitlines()[0]


def test_preset_with_a_report_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "tiny"
    result = _invoke("--preset", "tiny-llama", "--seq", "32", "--fidelity", "roofline",
                     "--chip", "trn2", "--report", str(folder))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.splitlines()[0].startswith("compiled tiny-llama (1x32 int64; with weights)")
    assert "layers.1" in out and "costliest ops:" in out
    for name in ("profile.json", "layers.png", "trace.json"):
        assert (folder / name).stat().st_size > 0
        assert str(folder / name) in out
    report = json.loads((folder / "profile.json").read_text())
    assert report["model"] == "tiny-llama" and report["chip"] == "trn2"
    assert report["inputs"] == {"input_ids": {"shape": [1, 32], "dtype": "int64"}}
    assert report["settings"] == {"symbolic": False, "dtype": None, "fallback": "error"}


def test_hf_config_symbolic(tmp_path: Path) -> None:
    config = tmp_path / "my-llama" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps(TINY_LLAMA_CONFIG))
    result = _invoke("--hf-config", str(config), "--seq", "16", "--batch", "2", "--symbolic",
                     "--dtype", "bfloat16", "--fidelity", "roofline")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(
        "compiled my-llama (2x16 int64; symbolic)")
    assert "layers.0" in result.output and "layers.1" not in result.output


def test_fallback_host_prices_unsupported_ops(model_file: Path) -> None:
    result = _invoke(f"{model_file}:flip", "--inputs", "x=4x8", "--fidelity", "roofline",
                     "--fallback", "host")
    assert result.exit_code == 0, result.output
    assert "host fallback ops:" in result.output


def test_inputs_syntax_and_values() -> None:
    assert parse_input("x=1x128:int64") == ("x", (1, 128), "int64")
    assert parse_input("h = 2X3 ") == ("h", (2, 3), "float32")
    ids, h = make_inputs([("ids", (2, 3), "int64"), ("h", (4, 5), "bfloat16")])
    assert ids.dtype.is_floating_point is False and int(ids.abs().sum()) == 0
    assert str(h.dtype) == "torch.bfloat16" and float(h.float().std()) > 0.1


# ------------------------------------------------------------------ errors
BAD = {
    "nothing": ((), ("MODULE:FACTORY", "--preset", "--hf-config")),
    "two models": (("--preset", "tiny-llama", "--hf-config", "c.json"), ("once",)),
    "no colon": (("{file}",), ("expected MODULE:FACTORY",)),
    "missing file": (("{dir}/nope.py:make", "--inputs", "x=4x64"), ("does not exist",)),
    "unknown module": (("no_such_module_xyz:make", "--inputs", "x=4x64"),
                       ("no_such_module_xyz", "not found")),
    "missing factory": (("{file}:nope", "--inputs", "x=4x64"), ("has no 'nope'",)),
    "not callable": (("{file}:NUMBER", "--inputs", "x=4x64"), ("not callable",)),
    "not a module": (("{file}:not_a_module", "--inputs", "x=4x64"),
                     ("not_a_module()", "int", "torch.nn.Module")),
    "factory raises": (("{file}:boom", "--inputs", "x=4x64"),
                       ("mymodels.py:", "in boom: ZeroDivisionError")),
    "no inputs": (("{file}:make",), ("--inputs NAME=AxB",)),
    "bad inputs": (("{file}:make", "--inputs", "x=4xq"), ("--inputs 'x=4xq'", "NAME=AxB")),
    "bad input dtype": (("{file}:make", "--inputs", "x=4x64:float99"), ("float99",)),
    "inputs with preset": (("--preset", "tiny-llama", "--inputs", "x=4"), ("--seq",)),
    "unknown preset": (("--preset", "llama99"), ("llama99", "tiny-llama")),
    "preset without a reference model": (("--preset", "mixtral-8x7b", "--symbolic"),
                                         ("mixtral-8x7b", "moe")),
    "missing config": (("--hf-config", "{dir}/none.json"), ("none.json", "no such file")),
    "bad config": (("--hf-config", "{dir}/bad.json"), ("model_type",)),
    "seq too long": (("--preset", "tiny-llama", "--seq", "4096"), ("4096", "128")),
    "weights too big": (("--preset", "llama3-8b"), ("--symbolic", "GB")),
    "bad chip": (("--preset", "tiny-llama", "--chip", "trn9"), ("trn9", "trn2")),
    "bad fidelity": (("--preset", "tiny-llama", "--fidelity", "exact"), ("roofline",)),
    "bad fallback": (("--preset", "tiny-llama", "--fallback", "cpu"), ("host",)),
    "bad dtype": (("--preset", "tiny-llama", "--dtype", "int3"), ("int3", "bfloat16")),
    "bad ray address": (("--preset", "tiny-llama", "--ray", "nowhere"),
                        ("--ray", "'nowhere'", "ray://HOST:PORT")),
    "no workers": (("--preset", "tiny-llama", "--workers", "0"), ("--workers 0",)),
    "report is a file": (("--preset", "tiny-llama", "--report", "{file}"), ("is a file",)),
    "report cannot be made": (("--preset", "tiny-llama", "--report", "{file}/sub"),
                              ("--report", "cannot create")),
    "shape mismatch": (("{file}:make", "--inputs", "x=4x32", "--fidelity", "roofline"),
                       ("torch.export could not trace Mlp",)),
    "unsupported op": (("{file}:flip", "--inputs", "x=4x8", "--fidelity", "roofline"),
                       ("aten.flip.default", "fallback")),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_mistakes_are_one_line(case: str, model_file: Path, one_line_error) -> None:
    (model_file.parent / "bad.json").write_text('{"vocab_size": 10}')
    args, fragments = BAD[case]
    args = tuple(a.format(file=model_file, dir=model_file.parent) for a in args)
    one_line_error(_invoke(*args), *fragments)


def test_syntax_error_in_the_model_file(tmp_path: Path, one_line_error) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def make(:\n")
    one_line_error(_invoke(f"{path}:make", "--inputs", "x=4"), "broken.py:1",
                    "SyntaxError")


def test_tuning_progress_is_reported_per_kernel_shape(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    import torch

    import tessera
    from tessera.cli.compile_cmd import _TuningProgress

    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path))  # nothing tuned yet
    steps = []
    tessera.compile(torch.nn.Linear(40, 24), (torch.randn(3, 40),), chip="trn1",
                    progress=steps.append, cache=False)
    assert steps and {s.kernel for s in steps} == {"matmul"}
    assert [s.evaluated for s in steps] == list(range(1, len(steps) + 1))
    shown = _TuningProgress()
    for step in steps:
        shown(step)
    shown.done()
    err = capsys.readouterr().err
    assert f"tuning kernel shape 1: matmul, configuration {len(steps)}/" in err
    assert err.rstrip().endswith("cached for the next compile")


def test_ray_at_an_unreachable_address_is_one_line(one_line_error) -> None:
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    start = time.perf_counter()
    one_line_error(_invoke("--preset", "tiny-llama", "--ray", f"ray://127.0.0.1:{port}"),
                   "--ray", f"ray://127.0.0.1:{port}", "cannot connect")
    assert time.perf_counter() - start < 5  # checked before the model is built


def test_ray_not_installed_is_one_line(monkeypatch, one_line_error) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    one_line_error(_invoke("--preset", "tiny-llama", "--ray", "local"),
                   "--ray", "pip install 'tessera[ray]'")


def test_ray_local_tunes_the_new_shapes(model_file: Path, tmp_path: Path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))  # nothing tuned yet
    result = _invoke(f"{model_file}:make", "--inputs", "x=4x64", "--chip", "trn2",
                     "--symbolic", "--ray", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "ops on trn2 (simulated)" in result.output
    assert (tmp_path / "cache" / "cost.json").is_file() and not ray.is_initialized()
