"""Checkpoints saved in one layout load bit-exact in another; saves are atomic; damage is named.

Ranks are forked by `tessera.parallel.launch.spawn` (gloo, CPU) with a deadline on every
run. Each rank returns its model's (and optimizer's) full state as numpy arrays, gathered
with PyTorch's own `get_state_dict(full_state_dict=True)`, for the parent to compare.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    RowwiseParallel,
    parallelize_module,
)

from tessera.models import PRESETS
from tessera.models.hf_config import from_hf_config
from tessera.models.llama import LlamaModel
from tessera.parallel import checkpoint
from tessera.parallel.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tessera.parallel.checkpoint_hf import export_hf_safetensors, import_hf_safetensors
from tessera.parallel.errors import CheckpointError, ParallelError
from tessera.parallel.launch import spawn

TIMEOUT_S = 60.0
CONFIG = PRESETS["tiny-llama"]  # largest tensor: the 256 x 64 embedding, 64 KiB
SAVED_STEP = 2
EXTRA = {"data_position": 1234, "seed": 7}
State = dict[str, Any]


# --- what the ranks run (module level: spawn forks) ---------------------------------------

def _model(seed: int) -> LlamaModel:
    model = LlamaModel(CONFIG)
    model.init_weights(seed)
    return model


def _tp(model: nn.Module, mesh: DeviceMesh, layers: list[int] | None = None) -> nn.Module:
    """Megatron-style TP: q/k/v and gate/up split by output, o and down by input."""
    plan = {}
    for i in range(CONFIG.num_layers) if layers is None else layers:
        plan |= {f"layers.{i}.self_attn.{n}": ColwiseParallel() for n in ("q_proj", "k_proj",
                                                                          "v_proj")}
        plan |= {f"layers.{i}.mlp.{n}": ColwiseParallel() for n in ("gate_proj", "up_proj")}
        plan[f"layers.{i}.self_attn.o_proj"] = RowwiseParallel()
        plan[f"layers.{i}.mlp.down_proj"] = RowwiseParallel()
    return parallelize_module(model, mesh, plan)


def _fsdp(model: nn.Module, mesh: DeviceMesh) -> nn.Module:
    for layer in model.layers:
        fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _layout(model: nn.Module, layout: str) -> nn.Module:
    mesh = init_device_mesh("cpu", (2,))
    return _tp(model, mesh) if layout == "tp" else _fsdp(model, mesh)


def _train(model: nn.Module, steps: int) -> torch.optim.Optimizer:
    """AdamW after `steps` steps on fixed tokens (the same on every rank)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    tokens = torch.randint(0, CONFIG.vocab_size, (2, 8), generator=torch.Generator()
                           .manual_seed(0))
    for _ in range(steps):
        model(tokens).float().square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return optimizer


def _full(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> State:
    """Every tensor whole, as numpy (tensors themselves do not survive the forked ranks'
    exit), and the optimizer's settings, keyed by plain parameter names."""
    options = StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=True)
    model_state, optim_state = get_state_dict(model, optimizer or [], options=options)
    out: State = {f"model.{k}": v.detach().numpy().copy() for k, v in model_state.items()}
    for key, value in optim_state.items():
        is_tensor = isinstance(value, torch.Tensor)
        out[f"optim.{key}"] = value.detach().numpy().copy() if is_tensor else value
    return out


def _save_trained(rank: int, world: int, layout: str, folder: Path, hf: Path | None) -> State:
    model = _layout(_model(0), layout)
    optimizer = _train(model, SAVED_STEP)
    save_checkpoint(folder, SAVED_STEP, model, optimizer, extra=EXTRA)
    if hf is not None:
        export_hf_safetensors(model, hf, CONFIG)
    return _full(model, optimizer)


def _load(rank: int, world: int, layout: str, path: Path, with_optimizer: bool) -> State:
    model = _layout(_model(1), layout)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=5e-4) if with_optimizer else None)
    meta = load_checkpoint(path, model, optimizer)
    return {**_full(model, optimizer), "meta": meta}


def _save_tp_pp(rank: int, world: int, folder: Path) -> None:
    """TP2 x PP2: stage s keeps layer s (under its global name) and the ends it owns."""
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("pp", "tp"))
    stage = mesh["pp"].get_local_rank()
    model = _model(5)
    model.layers = nn.ModuleDict({str(stage): model.layers[stage]})
    for name in ("norm", "lm_head") if stage == 0 else ("embed_tokens",):
        setattr(model, name, None)
    save_checkpoint(folder, 1, _tp(model, mesh["tp"], layers=[stage]))


def _import_hf(rank: int, world: int, layout: str, hf: Path) -> State:
    model = _layout(_model(1), layout)
    import_hf_safetensors(model, hf)
    return _full(model)


# --- helpers of the parent ----------------------------------------------------------------

def _assert_same(got: State, want: State, prefix: str = "") -> None:
    keys = sorted(k for k in want if k.startswith(prefix) and k != "meta")
    assert keys and keys == sorted(k for k in got if k.startswith(prefix) and k != "meta")
    for key in keys:
        if isinstance(want[key], np.ndarray):
            # bit-exact: the same dtype, shape and every bit
            assert torch.equal(torch.from_numpy(got[key]), torch.from_numpy(want[key])), key
        else:
            assert got[key] == want[key], key


@pytest.fixture(scope="module")
def tp2_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, State]:
    """A TP2 run trained 2 steps: its checkpoint folder, its HF export, its full state."""
    root = tmp_path_factory.mktemp("tp2")
    state = spawn(_save_trained, 2, timeout_s=TIMEOUT_S,
                  args=("tp", root / "ckpt", root / "hf"))[0]
    return root / "ckpt", root / "hf", state


def _copy(path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(path, tmp_path / path.name))


# --- tests ----------------------------------------------------------------------------------

def test_tp2_checkpoint_loads_into_fsdp2_bit_exact(tp2_run: tuple[Path, Path, State]) -> None:
    folder, _, saved = tp2_run
    path = latest_checkpoint(folder)
    assert path == folder / f"step-{SAVED_STEP:08d}"
    loaded = spawn(_load, 2, timeout_s=TIMEOUT_S, args=("fsdp", path, True))
    for rank_state in loaded:
        _assert_same(rank_state, saved)  # weights, Adam moments and steps, lr and betas
    meta = loaded[0]["meta"]
    assert (meta["step"], meta["extra"], meta["world_size"]) == (SAVED_STEP, EXTRA, 2)
    assert meta["learning_rates"] == [1e-2]


def test_tp2_checkpoint_loads_into_one_process_bit_exact(
        tp2_run: tuple[Path, Path, State]) -> None:
    folder, _, saved = tp2_run
    model = _model(1)
    optimizer = torch.optim.AdamW(model.parameters())
    load_checkpoint(latest_checkpoint(folder), model, optimizer)
    _assert_same(_full(model, optimizer), saved)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.95)  # a tuple again, from JSON


def test_checkpoint_holds_tensors_in_safetensors_and_the_rest_in_json(
        tp2_run: tuple[Path, Path, State]) -> None:
    folder, _, _ = tp2_run
    path = latest_checkpoint(folder)
    assert path is not None
    names = sorted(p.name for p in path.iterdir())
    # one safetensors file per rank; no pickled .metadata
    assert names == ["done", "meta.json", "shard-00001-model-00001-of-00001.safetensors",
                     "shard-00002-model-00001-of-00001.safetensors"]
    keys = set()
    for name in names[2:]:
        with safe_open(str(path / name), "pt") as stream:
            keys |= set(stream.keys())
            assert "DCP_SHARDING_INFO" in stream.metadata()
    assert "model.layers.1.self_attn.q_proj.weight" in keys
    assert "optim.state.layers.1.self_attn.q_proj.weight.exp_avg" in keys
    assert "optim.state.norm.weight.step" in keys  # Adam's step: a 0-d tensor


def test_fsdp2_checkpoint_loads_into_tp2_bit_exact(tmp_path: Path) -> None:
    saved = spawn(_save_trained, 2, timeout_s=TIMEOUT_S, args=("fsdp", tmp_path, None))[0]
    path = tmp_path / f"step-{SAVED_STEP:08d}"
    loaded = spawn(_load, 2, timeout_s=TIMEOUT_S, args=("tp", path, False))
    for rank_state in loaded:
        _assert_same(rank_state, saved, prefix="model.")


def test_tp2_pp2_checkpoint_loads_into_one_process_bit_exact(tmp_path: Path) -> None:
    spawn(_save_tp_pp, 4, timeout_s=TIMEOUT_S, args=(tmp_path,))
    model = _model(1)
    load_checkpoint(latest_checkpoint(tmp_path), model)
    _assert_same(_full(model), _full(_model(5)))


def test_resumed_training_matches_the_uninterrupted_run(tmp_path: Path) -> None:
    model = _model(0)
    optimizer = _train(model, 1)
    save_checkpoint(tmp_path, 1, model, optimizer)
    _continue(model, optimizer)
    resumed = _model(3)
    resumed_optimizer = torch.optim.AdamW(resumed.parameters())
    load_checkpoint(tmp_path / "step-00000001", resumed, resumed_optimizer)
    _continue(resumed, resumed_optimizer)
    _assert_same(_full(resumed, resumed_optimizer), _full(model, optimizer))


def _continue(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    tokens = torch.arange(16).reshape(2, 8)
    model(tokens).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_interrupted_saves_leave_the_previous_checkpoint_latest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    model = _model(0)
    first = save_checkpoint(tmp_path, 1, model)
    # killed while the shards were written: only the temporary folder exists
    (tmp_path / ".tmp-step-00000002").mkdir()
    # killed after the rename, before `done`
    real_write = checkpoint.write_synced

    def die_at_done(path: Path, text: str) -> None:
        if path.name == checkpoint.DONE_FILE:
            raise RuntimeError("killed")
        real_write(path, text)

    monkeypatch.setattr(checkpoint, "write_synced", die_at_done)
    with pytest.raises(RuntimeError, match="killed"):
        save_checkpoint(tmp_path, 3, model)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        assert latest_checkpoint(tmp_path) == first
    assert "step-00000003 is incomplete" in caplog.text
    assert ".tmp-step-00000002 is incomplete" in caplog.text
    assert load_checkpoint(first, _model(1))["step"] == 1
    with pytest.raises(CheckpointError, match="step-00000003: no 'done' marker"):
        load_checkpoint(tmp_path / "step-00000003", model)
    # saving a step again replaces it whole
    assert save_checkpoint(tmp_path, 3, model, extra={"again": True}) == latest_checkpoint(
        tmp_path)
    assert load_checkpoint(tmp_path / "step-00000003", model)["extra"] == {"again": True}


def test_truncated_shard_raises_naming_the_file_and_tensor(
        tp2_run: tuple[Path, Path, State], tmp_path: Path) -> None:
    path = _copy(latest_checkpoint(tp2_run[0]), tmp_path)
    shard = path / "shard-00002-model-00001-of-00001.safetensors"
    os.truncate(shard, shard.stat().st_size - 100)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, _model(1))
    message = str(err.value)
    assert "\n" not in message and str(shard) in message and "truncated" in message
    assert "tensor optim.state." in message  # the tensor stored last lost its end
    os.truncate(shard, 20)  # inside the header
    with pytest.raises(CheckpointError, match=f"{shard}: truncated inside its header"):
        load_checkpoint(path, _model(1))
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"{shard}: shard file is missing"):
        load_checkpoint(path, _model(1))


def test_mismatched_model_raises_naming_the_file_and_tensor(tmp_path: Path) -> None:
    from dataclasses import replace

    path = save_checkpoint(tmp_path, 1, _model(0))
    shard = path / "shard-00001-model-00001-of-00001.safetensors"
    wider = LlamaModel(replace(CONFIG, intermediate_size=96))
    with pytest.raises(CheckpointError, match=f"{shard}: tensor model.layers.0.mlp.gate_proj"
                       r".weight has shape \[128, 64\]; the model's is \[96, 64\]"):
        load_checkpoint(path, wider)
    deeper = LlamaModel(replace(CONFIG, num_layers=3))
    with pytest.raises(CheckpointError, match="tensor model.layers.2.input_layernorm.weight "
                       "is in none of the safetensors files"):
        load_checkpoint(path, deeper)
    shallower = LlamaModel(replace(CONFIG, num_layers=1))
    with pytest.raises(CheckpointError, match=f"{shard}: tensor model.layers.1.input_layernorm"
                       ".weight is not in the model"):
        load_checkpoint(path, shallower)
    fresh = _model(1)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(path, fresh, torch.optim.AdamW(fresh.parameters()))
    assert issubclass(CheckpointError, ParallelError)


def test_hf_export_of_tp2_loads_in_transformers_with_the_same_logits(
        tp2_run: tuple[Path, Path, State], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    _, hf, saved = tp2_run
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "model.safetensors"]
    assert from_hf_config(hf / "config.json") == CONFIG
    model = _model(1)
    model.load_state_dict({k.removeprefix("model."): torch.from_numpy(v)
                           for k, v in saved.items() if k.startswith("model.")})
    with safe_open(str(hf / "model.safetensors"), "pt") as stream:
        assert set(stream.keys()) == {("" if k == "lm_head.weight" else "model.") + k
                                      for k in model.state_dict()}
        assert torch.equal(stream.get_tensor("model.layers.1.mlp.up_proj.weight"),
                           model.layers[1].mlp.up_proj.weight)
    reference = transformers.LlamaForCausalLM.from_pretrained(hf).eval()
    tokens = torch.randint(0, CONFIG.vocab_size, (2, 16), generator=torch.Generator()
                           .manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(reference(tokens).logits, model(tokens), rtol=0, atol=1e-5)


def test_hf_import_into_fsdp2_and_one_process(tp2_run: tuple[Path, Path, State],
                                              tmp_path: Path) -> None:
    _, hf, saved = tp2_run
    _assert_same(spawn(_import_hf, 2, timeout_s=TIMEOUT_S, args=("fsdp", hf))[1], saved,
                 prefix="model.")
    model = _model(1)
    import_hf_safetensors(model, hf)
    _assert_same(_full(model), saved, prefix="model.")
    broken = _copy(hf, tmp_path)
    os.truncate(broken / "model.safetensors", 4096)
    with pytest.raises(CheckpointError, match=f"{broken / 'model.safetensors'}: tensor "):
        import_hf_safetensors(_model(1), broken)
