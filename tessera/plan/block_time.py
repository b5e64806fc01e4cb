"""Per-micro-batch times and sizes of one block (and of the embedding and LM head) on one
device, from the op list of `layers.py`, priced once per distinct block and cached."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tessera.models.config import ModelConfig
from tessera.plan.backward import backward_time
from tessera.plan.devices import Device
from tessera.plan.layers import BlockOp, Shard, block_ops, embedding_ops, head_ops
from tessera.plan.memory import saved_bytes
from tessera.plan.space import Recompute
from tessera.plan.workload import LoraConfig, TrainDtype

DTYPE = "bfloat16"  # activations; matmul operands follow the training precision


@dataclass(frozen=True)
class BlockTime:
    """One block (or the embedding/head group) for one micro-batch on one device."""

    forward_s: float
    backward_s: float
    weight_grad_s: float  # part of backward_s computing weight gradients
    core_forward_s: float  # attention-core forward, recomputed under selective recompute
    trainable_params: int  # local parameters with gradients
    frozen_params: int  # local parameters without (LoRA's base weights)
    saved_bytes: tuple[int, int, int]  # activations kept, by Recompute NONE/SELECTIVE/FULL
    input_bytes: int  # the block's input (what full recomputation keeps)
    flops: float  # forward FLOPs actually run
    core_flops: float  # of which in the attention core
    largest_output_bytes: int  # the biggest tensor an op writes (a transient buffer)


def lora_ops(op: BlockOp, lora: LoraConfig) -> tuple[BlockOp, ...]:
    """The adapter matmuls x A (K x r) and (x A) B (r x N) of a targeted weight matmul."""
    sh = dict(op.shapes)
    m, k, n, r = sh["M"], sh["K"], sh["N"], lora.rank
    return (BlockOp(f"{op.name}.lora_a", "matmul", (("M", m), ("K", k), ("N", r)), op.calls,
                    f"{op.weight}.lora_a", k * r * op.calls),
            BlockOp(f"{op.name}.lora_b", "matmul", (("M", m), ("K", r), ("N", n)), op.calls,
                    f"{op.weight}.lora_b", r * n * op.calls))


@functools.lru_cache(maxsize=8192)
def ops_time(device: Device, ops: tuple[BlockOp, ...], matmul_dtype: TrainDtype,
             trains_base: bool, lora: LoraConfig | None, input_bytes: int) -> BlockTime:
    """Price a list of ops (forward, backward, recompute parts, sizes)."""
    fwd = bwd = wgrad = core = flops = core_flops = 0.0
    trainable = frozen = 0
    largest = 0
    all_ops = list(ops)
    for op in ops:
        if lora is not None and op.lora_target in lora.targets and op.weight:
            all_ops += lora_ops(op, lora)
    for op in all_ops:
        is_adapter = ".lora_" in op.weight
        trains = trains_base or is_adapter
        mdt = matmul_dtype if op.weight else TrainDtype.BF16
        one = device.op(op.kernel, op.shapes, DTYPE, mdt)
        if not op.fused:
            fwd += one.time_s * op.calls
            flops += one.flops * op.calls
            if op.core:
                core += one.time_s * op.calls
                core_flops += one.flops * op.calls
        b, w = backward_time(device, op, DTYPE, matmul_dtype, trains, one)
        bwd += b
        wgrad += w
        if trains:
            trainable += op.params
        else:
            frozen += op.params
        largest = max(largest, _output_bytes(op))
    saved = tuple(saved_bytes(ops, rc, input_bytes) for rc in Recompute)
    return BlockTime(fwd, bwd, wgrad, core, trainable, frozen, saved, input_bytes, flops,
                     core_flops, largest)


def _output_bytes(op: BlockOp) -> int:
    sh = dict(op.shapes)
    if op.kernel == "matmul":
        return sh["M"] * sh["N"] * 2 * op.calls
    if "rows" in sh and "cols" in sh:
        return sh["rows"] * sh["cols"] * 2 * op.calls
    return 0


@functools.lru_cache(maxsize=8192)
def block_time(device: Device, cfg: ModelConfig, layer: int, shard: Shard,
               matmul_dtype: TrainDtype, trains_base: bool,
               lora: LoraConfig | None) -> BlockTime:
    """`BlockTime` of block `layer`."""
    ops = block_ops(cfg, layer, shard)
    input_bytes = shard.norm_rows * cfg.hidden_size * shard.itemsize
    return ops_time(device, ops, matmul_dtype, trains_base, lora, input_bytes)


@functools.lru_cache(maxsize=4096)
def ends_time(device: Device, cfg: ModelConfig, shard: Shard, matmul_dtype: TrainDtype,
              trains_base: bool) -> tuple[BlockTime, BlockTime]:
    """(embedding, final norm + LM head + loss) `BlockTime`s (the LM head is not a LoRA
    target; with LoRA the embeddings and head stay frozen)."""
    rows = shard.norm_rows * cfg.hidden_size * shard.itemsize
    emb = ops_time(device, embedding_ops(cfg, shard), matmul_dtype, trains_base, None, 0)
    head = ops_time(device, head_ops(cfg, shard), matmul_dtype, trains_base, None, rows)
    return emb, head


def layer_key(cfg: ModelConfig, layer: int, seq_len: int) -> tuple[object, ...]:
    """What makes two blocks' ops differ: first block (plain norm), MoE or dense, span."""
    moe = cfg.is_moe_layer(layer) if getattr(cfg, "moe", None) is not None else False
    span = cfg.attention_span(layer, seq_len) if hasattr(cfg, "attention_span") else seq_len
    return (layer == 0, moe, span)


@functools.lru_cache(maxsize=256)
def representatives(cfg: ModelConfig, seq_len: int) -> tuple[int, ...]:
    """For each layer index, the first layer with the same ops (priced in its place)."""
    first: dict[tuple[object, ...], int] = {}
    return tuple(first.setdefault(layer_key(cfg, i, seq_len), i)
                 for i in range(cfg.num_layers))
