"""Apply a `ParallelismConfig` to an in-tree reference model with PyTorch's own parallelisms.

    mesh = cfg.mesh()
    model = parallelize(model, cfg, mesh)        # no pipeline: the whole model, sharded

Each parallelism is one small function, applied in TorchTitan's order: tensor (and sequence)
parallel with DTensor's `parallelize_module` plans, activation checkpointing with PyTorch's
checkpoint wrapper, then FSDP2 (`fully_shard`) per block and at the root over the
data-parallel mesh dims (a `dp_replicate x dp_shard` mesh: HSDP, or plain replication when
the shard degree is 1). Pipelines split the model first (`pipeline.py`) and parallelize each
stage with the same functions.

Tensor-parallel plan of a Llama block (Megatron's): q/k/v and gate/up column-parallel (each
rank holds a slice of the heads and of the MLP width), o and down row-parallel (their partial
sums all-reduced, or reduce-scattered along the sequence under sequence parallel, where the
norms then run on sequence shards). The embedding is row-parallel over the vocabulary, the LM
head column-parallel (its logits gathered, or left sharded for a loss-parallel
cross-entropy).
"""

from __future__ import annotations

from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from tessera.models.config import ModelFamily
from tessera.parallel.config import Checkpointing, ConfigError, ParallelismConfig

# the prefix PyTorch's checkpoint wrapper puts in parameter names (DCP strips it too)
WRAPPED = "_checkpoint_wrapped_module."


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The decoder blocks of a reference model (or of one pipeline stage)."""
    layers = model.layers if hasattr(model, "layers") else getattr(model, "h", None)
    if layers is None:
        raise ConfigError(f"{type(model).__name__}: not a reference model (no layers)")
    return list(layers.values() if isinstance(layers, nn.ModuleDict) else layers)


def parallelize(model: nn.Module, cfg: ParallelismConfig, mesh) -> nn.Module:  # noqa: ANN001
    """`model` (or a pipeline stage of it) with TP, checkpointing and FSDP2 applied in place."""
    config = getattr(model, "config", None)
    if cfg.tp > 1:
        if config is None or config.family is not ModelFamily.LLAMA:
            raise ConfigError("tensor_parallel_degree > 1: the TP plan covers the Llama "
                              "reference model (GPT-2's fused q/k/v projection has none yet)")
        if config.qk_norm:
            raise ConfigError("tensor_parallel_degree > 1 with per-head q/k norms (Qwen3): "
                              "their weights would need a gradient reduction over the heads "
                              "each rank holds, which the TP plan does not yet add")
        apply_tp(model, mesh["tp"], cfg)
    if cfg.checkpointing is not Checkpointing.NONE:
        apply_checkpointing(model, cfg.checkpointing)
    if cfg.dp_shard > 1 and cfg.dp_replicate == 1:
        apply_fsdp(model, mesh["dp_shard"])  # plain FSDP: no replicate group to all-reduce
    elif cfg.dp_replicate > 1:
        apply_fsdp(model, mesh["dp_replicate", "dp_shard"])  # HSDP, or DDP-like at shard 1
    return model


def apply_tp(model: nn.Module, tp_mesh, cfg: ParallelismConfig) -> None:  # noqa: ANN001
    """Megatron-style TP (and SP) plans on every block, the embedding and the LM head."""
    sp = cfg.sequence_parallel
    seq = Shard(1)  # [B, S, H] activations split along the sequence under SP
    top: dict[str, object] = {}
    if getattr(model, "embed_tokens", None) is not None:
        top["embed_tokens"] = RowwiseParallel(input_layouts=Replicate(),
                                              output_layouts=seq if sp else Replicate())
    if getattr(model, "norm", None) is not None and sp:
        top["norm"] = SequenceParallel()
    if getattr(model, "lm_head", None) is not None:
        top["lm_head"] = ColwiseParallel(
            input_layouts=seq if sp else Replicate(),
            output_layouts=Shard(-1) if cfg.loss_parallel else Replicate(),
            use_local_output=not cfg.loss_parallel)
    if top:
        parallelize_module(model, tp_mesh, top)
    for block in blocks_of(model):
        plan: dict[str, object] = {
            "self_attn.q_proj": ColwiseParallel(),
            "self_attn.k_proj": ColwiseParallel(),
            "self_attn.v_proj": ColwiseParallel(),
            "self_attn.o_proj": RowwiseParallel(output_layouts=seq if sp else Replicate()),
            "mlp.gate_proj": ColwiseParallel(),
            "mlp.up_proj": ColwiseParallel(),
            "mlp.down_proj": RowwiseParallel(output_layouts=seq if sp else Replicate()),
        }
        if sp:
            # the norms run on sequence shards; attention and MLP gather the sequence first
            plan.update({
                "input_layernorm": SequenceParallel(),
                "post_attention_layernorm": SequenceParallel(),
                # LlamaBlock passes (x, cos, sin, cache, position, mask) positionally
                "self_attn": PrepareModuleInput(
                    input_layouts=(seq, *[None] * 5),
                    desired_input_layouts=(Replicate(), *[None] * 5)),
                "mlp": PrepareModuleInput(input_layouts=(seq,),
                                          desired_input_layouts=(Replicate(),)),
            })
        parallelize_module(block, tp_mesh, plan)


def apply_checkpointing(model: nn.Module, mode: Checkpointing) -> None:
    """Recompute blocks in backward: every block (full) or every other one (selective)."""
    layers = model.layers if hasattr(model, "layers") else model.h
    keys = list(layers.keys()) if isinstance(layers, nn.ModuleDict) else range(len(layers))
    for n, key in enumerate(keys):
        if mode is Checkpointing.FULL or n % 2 == 0:
            layers[key] = checkpoint_wrapper(layers[key], preserve_rng_state=False)


def apply_fsdp(model: nn.Module, dp_mesh) -> None:  # noqa: ANN001
    """FSDP2 on each block, then on the root (embedding, norm, head)."""
    for block in blocks_of(model):
        fully_shard(block, mesh=dp_mesh)
    fully_shard(model, mesh=dp_mesh)
