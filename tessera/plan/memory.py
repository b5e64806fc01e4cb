"""Device memory of one configuration: weights, gradients, optimizer state, activations of
the in-flight micro-batches, and the largest transient buffers.

Byte counts per parameter (bf16 mixed precision with fp32 master weights and AdamW):
- replicate and ZeRO-1 (Megatron-LM's accounting, its distributed optimizer for ZeRO-1):
  bf16 weights 2 + fp32 gradients 4 + fp32 master 4 + two fp32 moments 8 = 18 bytes, the
  last 12 sharded over the data-parallel ranks by ZeRO-1 (Korthikanti et al. 2022 sec. 2;
  Rajbhandari et al. 2020, ZeRO stage 1);
- FSDP2 with MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32): the sharded
  parameter is the fp32 master (4) with fp32 gradients (4) and moments (8), all / shard
  degree, plus bf16 copies of the blocks gathered at a time (the current one and the one
  prefetched) [FSDP2];
- LoRA: frozen base weights in bf16 only (2, sharded by FSDP), adapters as above.
Activations come from the ops' saved tensors (`layers.Saved`); pipelines hold the first
stage's in-flight micro-batches: 1 without PP, m for GPipe, pp for 1F1B and ZBV, and
pp x (1 + (pp - 1) / (pp x v)) for the interleaved schedules (Narayanan et al. 2021,
section 2.2.2).

[FSDP2] PyTorch docs, torch.distributed.fsdp.fully_shard and MixedPrecisionPolicy.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.plan.layers import BlockOp
from tessera.plan.space import DataParallel, ParallelConfig, PipelineSchedule, Recompute

BYTES_BF16 = 2
BYTES_REPLICATED = 2 + 4  # bf16 weight + fp32 gradient, never sharded by ZeRO-1
BYTES_OPTIMIZER = 4 + 8  # fp32 master + two fp32 moments
BYTES_FSDP = 4 + 4 + 8  # sharded fp32 parameter, gradient, moments


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per device by term; `capacity_bytes` is the device's HBM."""

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    workspace_bytes: float
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        """Everything resident at the peak."""
        return (self.weights_bytes + self.gradients_bytes + self.optimizer_bytes
                + self.activations_bytes + self.workspace_bytes)

    @property
    def headroom_bytes(self) -> float:
        """Capacity left (negative when the configuration does not fit)."""
        return self.capacity_bytes - self.total_bytes

    @property
    def fits(self) -> bool:
        """Whether the peak fits in the device's HBM."""
        return self.headroom_bytes >= 0

    def overflow(self) -> str:
        """One line naming the largest term and the overflow, or "" when it fits."""
        if self.fits:
            return ""
        terms = {"weights": self.weights_bytes, "gradients": self.gradients_bytes,
                 "optimizer state": self.optimizer_bytes,
                 "activations": self.activations_bytes, "workspace": self.workspace_bytes}
        big = max(terms, key=terms.__getitem__)
        return (f"needs {self.total_bytes / 2**30:.1f} GiB of {self.capacity_bytes / 2**30:.1f}"
                f" GiB per device ({-self.headroom_bytes / 2**30:.1f} GiB over; largest term:"
                f" {big} {terms[big] / 2**30:.1f} GiB)")


def saved_bytes(ops: tuple[BlockOp, ...], recompute: Recompute, input_bytes: int) -> int:
    """Bytes one block keeps for backward per micro-batch (tensors counted once)."""
    if recompute is Recompute.FULL:
        return input_bytes
    seen: dict[str, int] = {}
    for op in ops:
        for s in op.saves:
            if recompute is Recompute.SELECTIVE and s.recomputable:
                continue
            seen[s.name] = s.bytes
    return sum(seen.values())


def in_flight(cfg: ParallelConfig, micro_batches: int) -> float:
    """Micro-batches whose activations the first stage holds at once."""
    if cfg.pp == 1:
        return 1.0
    if cfg.schedule is PipelineSchedule.GPIPE:
        return float(micro_batches)
    if cfg.schedule in (PipelineSchedule.INTERLEAVED_1F1B, PipelineSchedule.INTERLEAVED_ZB):
        v = cfg.virtual_stages
        return cfg.pp * (1 + (cfg.pp - 1) / (cfg.pp * v))
    return float(min(cfg.pp, micro_batches))


def state_bytes(cfg: ParallelConfig, trainable: float, frozen: float,
                block_params: float) -> tuple[float, float, float]:
    """(weights, gradients, optimizer state) bytes per device for `trainable` and `frozen`
    local parameters (after tp/pp/ep); `block_params` is one block's local parameters."""
    dp = cfg.dp
    if cfg.dp_mode in (DataParallel.FSDP, DataParallel.HSDP):
        shard = cfg.dp_shard
        gathered = 2 * block_params * BYTES_BF16  # the block in use and the one prefetched
        weights = trainable * 4 / shard + frozen * BYTES_BF16 / shard + gathered
        return weights, trainable * 4 / shard, trainable * 8 / shard
    weights = (trainable + frozen) * BYTES_BF16
    grads = trainable * 4
    opt = trainable * BYTES_OPTIMIZER
    if cfg.dp_mode is DataParallel.ZERO1:
        opt /= dp
    return weights, grads, opt
