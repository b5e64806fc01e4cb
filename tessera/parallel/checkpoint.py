"""Sharded training checkpoints: DCP into safetensors files, atomic, loadable in any layout.

    path = save_checkpoint(Path("ckpt"), step, model, optimizer, extra={"data_position": n})
    meta = load_checkpoint(latest_checkpoint(Path("ckpt")), model, optimizer)

Every rank calls both (they run collectives). `torch.distributed.checkpoint` saves the
state of `get_state_dict` (plain, tensor-parallel DTensor and FSDP2 models alike, under
their plain parameter names) through its Hugging Face storage: each rank writes its own
shards to one safetensors file, with each shard's offset in the global tensor in the file's
metadata. Loading reads those into whatever layout the model has now (TP2 -> FSDP2, TP x
PP -> one process): DCP copies the overlap of every saved shard with every local one.

Nothing is pickled. The safetensors files hold tensors only (model state under `model.`,
the optimizer's flattened state under `optim.`); the step, learning rates, the optimizer's
other settings (betas, weight decay, ...) and the caller's `extra` go to `meta.json`.

A save writes into `.tmp-step-N`, fsyncs, renames it to `step-N` and writes `done` last;
`latest_checkpoint` takes the newest folder with `done`, so a save killed at any point
leaves the previous checkpoint the one loaded. All ranks must see the same folder.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from tessera.parallel.checkpoint_files import (
    barrier,
    check_index,
    distributed,
    fsync_dir,
    load_checked,
    rank,
    read_index,
    single_process_quiet,
    world_size,
    write_synced,
)
from tessera.parallel.errors import CheckpointError

FORMAT = "tessera-checkpoint/1"
META_FILE = "meta.json"
DONE_FILE = "done"
MODEL_PREFIX, OPTIM_PREFIX = "model.", "optim."
_STEP_DIR = re.compile(r"step-(\d{8,})")
_LOG = logging.getLogger(__name__)
# the optimizer state flattened to one level ("state.<param>.exp_avg", "param_groups.
# <param>.lr"), so every tensor gets a storage key of its own and every setting a JSON key
_FLAT = StateDictOptions(flatten_optimizer_state_dict=True)


def save_checkpoint(folder: Path, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, *,
                    extra: dict | None = None) -> Path:
    """Save model (and optimizer) state as `folder/step-{step:08d}` and return that path.

    Every rank calls it with its part of the model. `extra` (JSON-serialisable, rank 0's
    is kept: data position, seeds, scheduler settings) comes back from `load_checkpoint`.
    An existing checkpoint of the same step is replaced.
    """
    folder, name = Path(folder), f"step-{step:08d}"
    final, tmp = folder / name, folder / f".tmp-{name}"
    tensors, settings = _flat_state(model, optimizer)
    if distributed() and optimizer is not None:
        # a pipeline's ranks hold different parameters: keep every rank's settings
        every: list[Any] = [None] * world_size()
        torch.distributed.all_gather_object(every, settings)
        settings = {k: v for part in every for k, v in part.items()}
    meta = {"format": FORMAT, "step": step, "world_size": world_size(),
            "learning_rates": _learning_rates(optimizer),
            "optimizer": None if optimizer is None else settings, "extra": extra or {},
            "torch_version": torch.__version__}
    try:
        json.dumps(meta)  # fail before any file is written
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{name}: extra or an optimizer setting is not JSON: "
                              f"{err}") from err
    if rank() == 0:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted save of this step
        tmp.mkdir()
    barrier()
    # save_distributed: every rank writes its own shards, with their offsets, to its own
    # file; the writer fsyncs each file before returning
    writer = dcp.HuggingFaceStorageWriter(str(tmp), save_distributed=True)
    with single_process_quiet():
        dcp.save(tensors, storage_writer=writer, no_dist=not distributed())
    if rank() == 0:
        # dcp.save returns on rank 0 only after every rank's file is written
        meta["files"] = sorted(p.name for p in tmp.glob("*.safetensors"))
        write_synced(tmp / META_FILE, json.dumps(meta, indent=1))
        fsync_dir(tmp)
        _publish(tmp, final)
    barrier()
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (`step-N` with `done`) in `folder`, or None. Folders of
    interrupted saves are skipped, with a warning in the log."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and (path / DONE_FILE).is_file():
            found.append((int(match.group(1)), path))
        elif match or path.name.startswith((".tmp-step-", ".old-step-")):
            _LOG.warning("checkpoint %s is incomplete (an interrupted save): ignored", path)
    return max(found)[1] if found else None


def load_checkpoint(path: Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load a checkpoint of `save_checkpoint` into `model` (and `optimizer`) in whatever
    layout they have now, and return its meta.json (step, learning_rates, extra, ...).

    Every rank calls it. A missing, truncated or mismatched shard raises `CheckpointError`
    naming the file and the tensor, before anything is loaded.
    """
    path = Path(path)
    meta = _read_meta(path)
    if optimizer is not None and meta.get("optimizer") is None:
        raise CheckpointError(f"{path / META_FILE}: the checkpoint holds no optimizer state")
    tensors, settings = _flat_state(model, optimizer)
    missing = [f for f in meta.get("files", []) if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"{path / missing[0]}: shard file is missing")
    files = sorted(path.glob("*.safetensors"))
    index = read_index(files)
    check_index(index, tensors, path)
    load_checked(path, tensors, index,
                 (k for k in index if k.startswith(MODEL_PREFIX) and k not in tensors))
    model_state = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items()
                   if k.startswith(MODEL_PREFIX)}
    if optimizer is None:
        set_model_state_dict(model, model_state)
        return meta
    optim_state: dict[str, Any] = {k[len(OPTIM_PREFIX):]: v for k, v in tensors.items()
                                   if k.startswith(OPTIM_PREFIX)}
    optim_state.update(_saved_settings(path, meta["optimizer"], settings))
    set_state_dict(model, optimizer, model_state_dict=model_state,
                   optim_state_dict=optim_state, options=_FLAT)
    return meta


def _flat_state(model: nn.Module, optimizer: torch.optim.Optimizer | None
                ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(storage key -> tensor, optimizer setting -> JSON value) in the present layout."""
    if optimizer is None:
        model_state, optim_state = get_model_state_dict(model), {}
    else:
        # a fresh optimizer has no state yet; get_state_dict creates it (a step at lr 0)
        model_state, optim_state = get_state_dict(model, optimizer, options=_FLAT)
    tensors, settings = {}, {}
    for key, value in model_state.items():
        if not isinstance(value, torch.Tensor):
            # the safetensors storage would write such a value as an unreadable entry
            raise CheckpointError(f"model state {key} is a {type(value).__name__}, not a "
                                  "tensor; only tensors are saved")
        tensors[MODEL_PREFIX + key] = value
    for key, value in optim_state.items():
        if isinstance(value, torch.Tensor):  # moments, Adam's step, a tensor lr
            tensors[OPTIM_PREFIX + key] = value
        else:
            settings[key] = value  # json writes tuples (betas) as lists
    return tensors, settings


def _saved_settings(path: Path, saved: Mapping[str, Any], now: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """The saved optimizer settings for the present optimizer's keys, tuples restored."""
    out = {}
    for key, value in now.items():
        if key not in saved:
            raise CheckpointError(f"{path / META_FILE}: optimizer setting {key} is missing")
        # JSON has no tuples: betas come back as lists
        restore = isinstance(value, tuple) and isinstance(saved[key], list)
        out[key] = tuple(saved[key]) if restore else saved[key]
    return out


def _read_meta(path: Path) -> dict[str, Any]:
    if not (path / DONE_FILE).is_file():
        raise CheckpointError(f"{path}: no '{DONE_FILE}' marker: the save did not finish")
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path / META_FILE}: cannot be read: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META_FILE}: not a {FORMAT} checkpoint")
    return meta


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished `tmp` to `final` and mark it done; an older `final` (the same
    step saved again) is moved aside first and removed last."""
    old = final.with_name(f".old-{final.name}")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    write_synced(final / DONE_FILE, "")  # last: until it exists the folder is ignored
    fsync_dir(final)
    shutil.rmtree(old, ignore_errors=True)


def _learning_rates(optimizer: torch.optim.Optimizer | None) -> list[float]:
    if optimizer is None:
        return []
    return [float(group["lr"]) for group in optimizer.param_groups if "lr" in group]
