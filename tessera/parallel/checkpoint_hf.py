"""Export and import the in-tree Llama model as a Hugging Face `model.safetensors`.

    export_hf_safetensors(model, Path("hf"), config)   # every rank calls it
    transformers.LlamaForCausalLM.from_pretrained("hf")

The export gathers every sharded parameter whole (`DTensor.full_tensor()`, a collective, so
every rank calls it) and rank 0 writes one unsharded `model.safetensors` under Hugging
Face's names (`model.` before each of `LlamaModel`'s parameter names, `lm_head.weight` as
is) and a `config.json` for `LlamaForCausalLM`. The import reads such a folder (also a
Hugging Face checkpoint split over several files) into any layout through DCP's Hugging Face
reader, converting to the model's dtype.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict
from torch.distributed.tensor import DTensor

from tessera.models.config import Activation, ModelConfig, ModelFamily
from tessera.parallel.checkpoint_files import (
    barrier,
    check_index,
    fsync_dir,
    load_checked,
    rank,
    read_index,
    write_synced,
)
from tessera.parallel.errors import CheckpointError

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
_HEAD = "lm_head.weight"  # the one Hugging Face name without the "model." prefix
_HF_PREFIX = "model."
# buffers older Hugging Face checkpoints carry that LlamaModel computes instead
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def hf_name(name: str) -> str:
    """The Hugging Face name of a `LlamaModel` parameter."""
    return name if name == _HEAD else _HF_PREFIX + name


def hf_llama_config(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json of `LlamaForCausalLM` computing what `LlamaModel(config)` computes;
    `CheckpointError` for what that class cannot express."""
    if config.family is not ModelFamily.LLAMA:
        raise CheckpointError(f"family: {config.family.value} is not llama")
    refused = {"qk_norm": config.qk_norm,  # Qwen3's per-head norms: not in LlamaForCausalLM
               # one attention_bias flag covers q, k, v and o there
               "attention_out_bias": config.attention_out_bias != config.attention_bias,
               # the reference model computes SiLU whatever the field says
               "activation": config.activation is not Activation.SILU}
    for field, bad in refused.items():
        if bad:
            raise CheckpointError(f"{field}: {getattr(config, field)!r} has no "
                                  "LlamaForCausalLM config.json equivalent")
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads, "head_dim": config.head_dim,
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.norm_eps, "hidden_act": "silu",
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": config.tie_word_embeddings,
        "attention_bias": config.attention_bias, "mlp_bias": config.mlp_bias,
        "dtype": str(dtype).removeprefix("torch."),
    }


def export_hf_safetensors(model: nn.Module, path: Path, config: ModelConfig) -> Path:
    """Write `model`'s full weights as `path/model.safetensors` plus `path/config.json`
    (Hugging Face Llama names and config) and return `path`. Every rank calls it; each
    rank must hold every parameter (whole, or as a DTensor shard: not a pipeline stage)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = model.state_dict()
    _check_complete(state, config)
    tensors = {}
    for name, value in state.items():
        # full_tensor is a collective: every rank gathers, in the same (state_dict) order
        full = value.full_tensor() if isinstance(value, DTensor) else value
        if not (config.tie_word_embeddings and name == _HEAD):  # tied: stored once
            tensors[hf_name(name)] = full.detach().to("cpu").contiguous()
    if rank() == 0:
        dtype = state["embed_tokens.weight"].dtype
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{WEIGHTS_FILE}.tmp"
        # transformers refuses a safetensors file without format "pt" in its metadata
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        with tmp.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path / WEIGHTS_FILE)
        write_synced(path / CONFIG_FILE, json.dumps(hf_llama_config(config, dtype), indent=2))
        fsync_dir(path)
    barrier()
    return path


def import_hf_safetensors(model: nn.Module, path: Path) -> None:
    """Load the Hugging Face Llama weights in folder `path` (`*.safetensors`) into `model`,
    whatever its layout, cast to its dtype. Every rank calls it. A missing, truncated or
    mismatched tensor raises `CheckpointError` naming the file and the tensor."""
    path = Path(path)
    state = get_model_state_dict(model)
    config = getattr(model, "config", None)
    tied = bool(config is not None and config.tie_word_embeddings)
    wanted = {hf_name(k): v for k, v in state.items() if not (tied and k == _HEAD)}
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors file")
    index = read_index(files)
    check_index(index, wanted, path, check_dtype=False)
    load_checked(path, wanted, index, (k for k in index if k not in wanted and k != _HEAD
                                       and not k.endswith(_IGNORED_SUFFIXES)))
    loaded = {k if k == _HEAD else k.removeprefix(_HF_PREFIX): v for k, v in wanted.items()}
    if tied and _HEAD in state:
        loaded[_HEAD] = loaded["embed_tokens.weight"]
    set_model_state_dict(model, loaded)


def _check_complete(state: dict, config: ModelConfig) -> None:
    """Every parameter of `LlamaModel(config)`, in its shape: a pipeline stage's part, or a
    model of another config, would make a file transformers reads wrongly or not at all."""
    from tessera.models.llama import LlamaModel

    with torch.device("meta"):  # shapes only, no memory
        reference = LlamaModel(config).state_dict()
    for name, tensor in reference.items():
        if name not in state:
            raise CheckpointError(f"{name}: not in the model (a pipeline stage? export from "
                                  "a model holding every layer)")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{name}: shape {list(state[name].shape)}, config says "
                                  f"{list(tensor.shape)}")
