"""Parallel configurations: the degrees at the top, as TorchTitan names them, and the space
the planner enumerates.

Rank layout follows TorchTitan's device mesh ["pp", "dp_replicate", "dp_shard", "cp",
"tp"]: tensor parallelism innermost and contiguous inside an instance, pipeline stages
outermost [TT]; expert parallelism borrows its ranks from dp_shard x cp, as TorchTitan's
MoE support does.

[TT] TorchTitan, torchtitan/distributed/parallel_dims.py (mesh dimension order) and
docs/composability.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tessera.plan.errors import PlanError


class DataParallel(Enum):
    """How the data-parallel ranks hold weights, gradients and optimizer state."""

    REPLICATE = "replicate"  # DDP: full copies, gradients all-reduced
    ZERO1 = "zero1"  # optimizer state sharded; gradients reduce-scattered, weights gathered
    FSDP = "fsdp"  # FSDP2 fully_shard: weights, gradients and state sharded
    HSDP = "hsdp"  # FSDP2 sharded inside an instance, replicated across instances


class Recompute(Enum):
    """Activation recomputation (TorchTitan's activation_checkpoint.mode)."""

    NONE = "none"
    SELECTIVE = "selective"  # the attention core (Megatron-LM / NxD selective checkpointing)
    FULL = "full"  # every block recomputed from its input


class PipelineSchedule(Enum):
    """The schedules of torch.distributed.pipelining, by their class names' meaning."""

    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED_1F1B = "interleaved_1f1b"
    INTERLEAVED_ZB = "interleaved_zb"  # ScheduleInterleavedZeroBubble
    ZBV = "zbv"  # ScheduleZBVZeroBubble (two stages per rank in a V)

    @property
    def torchtitan_name(self) -> str:
        """The name TorchTitan's `parallelism.pipeline_parallel_schedule` takes."""
        return {"gpipe": "GPipe", "1f1b": "1F1B", "interleaved_1f1b": "Interleaved1F1B",
                "interleaved_zb": "InterleavedZeroBubble", "zbv": "ZBVZeroBubble"}[self.value]

    @property
    def multi_stage(self) -> bool:
        """Whether each rank holds several (virtual) stages."""
        return self in (PipelineSchedule.INTERLEAVED_1F1B, PipelineSchedule.INTERLEAVED_ZB,
                        PipelineSchedule.ZBV)


@dataclass(frozen=True)
class ParallelConfig:
    """One point of the space; `dp` counts every data-parallel rank (replicas x shards)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    sequence_parallel: bool = False
    dp_mode: DataParallel = DataParallel.REPLICATE
    reshard_after_forward: bool = True  # FSDP2: free gathered weights after forward
    dp_shard: int = 1  # ranks one FSDP/HSDP shard group spans (dp for FSDP, 1 otherwise)
    micro_batch: int = 1
    recompute: Recompute = Recompute.NONE
    schedule: PipelineSchedule = PipelineSchedule.ONE_F_ONE_B
    virtual_stages: int = 1  # stages per rank (interleaved schedules, ZBV: 2)
    lnc: int = 1  # physical NeuronCores per rank (trn2/trn3: 1 or 2)

    @property
    def world(self) -> int:
        """Ranks the configuration uses."""
        return self.tp * self.pp * self.dp * self.cp

    @property
    def dp_replicate(self) -> int:
        """Data-parallel replicas (TorchTitan's data_parallel_replicate_degree)."""
        return self.dp // self.dp_shard

    def micro_batches(self, global_batch: int) -> int:
        """Micro-batches per step on each pipeline (gradient accumulation steps x ...)."""
        return global_batch // (self.dp * self.micro_batch)

    def label(self) -> str:
        """A short human-readable name: `tp8 sp pp4 1f1b dp4 fsdp mb1 rc=selective`."""
        parts = [f"tp{self.tp}" + (" sp" if self.sequence_parallel else "")]
        if self.pp > 1:
            v = f" v{self.virtual_stages}" if self.virtual_stages > 1 else ""
            parts.append(f"pp{self.pp} {self.schedule.value}{v}")
        if self.cp > 1:
            parts.append(f"cp{self.cp}")
        if self.ep > 1:
            parts.append(f"ep{self.ep}")
        dp = f"dp{self.dp} {self.dp_mode.value}"
        if self.dp_mode is DataParallel.HSDP:
            dp += f" {self.dp_replicate}x{self.dp_shard}"
        if self.dp_mode in (DataParallel.FSDP, DataParallel.HSDP) \
                and not self.reshard_after_forward:
            dp += " no-reshard"
        parts += [dp, f"mb{self.micro_batch}", f"rc={self.recompute.value}"]
        if self.lnc > 1:
            parts.append(f"lnc{self.lnc}")
        return " ".join(parts)


def check(cfg: ParallelConfig, *, world: int, per_instance: int, layers: int,
          global_batch: int, seq_len: int, experts: int = 0) -> str:
    """Why `cfg` cannot run (one line), or "" when it can."""
    if cfg.world != world:
        return f"tp x pp x dp x cp = {cfg.world}, not the {world} devices"
    if per_instance % cfg.tp and cfg.tp % per_instance:
        return f"--tp {cfg.tp} must divide the {per_instance} devices of an instance"
    if cfg.pp > layers or cfg.pp * cfg.virtual_stages > layers:
        return f"{cfg.pp * cfg.virtual_stages} pipeline stages for {layers} layers"
    if global_batch % (cfg.dp * cfg.micro_batch):
        return (f"--global-batch {global_batch} is not a multiple of dp {cfg.dp} x "
                f"micro-batch {cfg.micro_batch}")
    m = cfg.micro_batches(global_batch)
    if cfg.pp > 1 and m < cfg.pp:
        return f"{m} micro-batches cannot fill {cfg.pp} pipeline stages"
    if cfg.schedule.multi_stage and cfg.pp > 1 and m % cfg.pp:
        return f"{cfg.schedule.value} needs micro-batches ({m}) a multiple of pp {cfg.pp}"
    if seq_len % (cfg.cp * (2 if cfg.cp > 1 else 1)):
        return f"--cp {cfg.cp}: sequence {seq_len} is not divisible by 2 x cp (load balance)"
    if cfg.sequence_parallel and cfg.tp == 1:
        return "sequence parallelism needs tp > 1"
    if cfg.ep > 1:
        if not experts:
            return "--ep needs a mixture-of-experts model"
        if experts % cfg.ep or (cfg.dp * cfg.cp) % cfg.ep:
            return f"--ep {cfg.ep} must divide the {experts} experts and dp x cp"
    if cfg.dp % cfg.dp_shard:
        return f"dp_shard {cfg.dp_shard} does not divide dp {cfg.dp}"
    return ""


def require(cfg: ParallelConfig, **kw: int) -> None:
    """Raise PlanError when `check` finds a problem."""
    why = check(cfg, **kw)
    if why:
        raise PlanError(f"{cfg.label()}: {why}")
