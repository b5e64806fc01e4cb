"""The degrees at the top: one parallel configuration, named as TorchTitan names it.

    cfg = ParallelismConfig(tp=2, pp=2)                      # or ParallelismConfig.from_toml(path)
    cfg.check(world_size=4, heads=4, kv_heads=2, layers=4)
    mesh = cfg.mesh()                                     # inside an initialised process group

A job TOML has TorchTitan's sections: `[parallelism]` (`data_parallel_replicate_degree`,
`data_parallel_shard_degree`, `tensor_parallel_degree`, `pipeline_parallel_degree`,
`context_parallel_degree`, `pipeline_parallel_schedule`, `pipeline_parallel_microbatch_size`,
`disable_loss_parallel`), `[activation_checkpoint]` (`mode`), `[training]`
(`local_batch_size`, `seq_len`, `steps`), `[optimizer]` (`name`, `lr`), and `[tessera]` for
what TorchTitan has no key for (`sequence_parallel`, `virtual_stages`); `tessera plan train
--emit` writes this file. The device mesh is ordered pp, dp_replicate, dp_shard, cp, tp:
tensor parallelism innermost, so a TP group is contiguous ranks (one instance's fast links).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path

from tessera.parallel.errors import ParallelError


class ConfigError(ParallelError, ValueError):
    """A parallel configuration that cannot run; the message names the numbers."""


class PpSchedule(Enum):
    """Pipeline schedules of `torch.distributed.pipelining`, by TorchTitan's names."""

    GPIPE = "GPipe"
    ONE_F_ONE_B = "1F1B"
    INTERLEAVED_1F1B = "Interleaved1F1B"

    @property
    def multi_stage(self) -> bool:
        """Whether each rank holds several (virtual) stages."""
        return self is PpSchedule.INTERLEAVED_1F1B


class Checkpointing(Enum):
    """Activation checkpointing: none, selective (every other block, TorchTitan's
    `selective_ac_option = "2"`) or full (every block)."""

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


MESH_DIMS = ("pp", "dp_replicate", "dp_shard", "cp", "tp")


@dataclass(frozen=True)
class ParallelismConfig:
    """Degrees and switches of one run (1 = that parallelism off)."""

    dp_replicate: int = 1
    dp_shard: int = 1  # FSDP2 degree; -1: whatever the world size leaves
    tp: int = 1
    pp: int = 1
    cp: int = 1
    schedule: PpSchedule = PpSchedule.ONE_F_ONE_B
    microbatches: int = 2  # per pipeline step
    virtual_stages: int = 2  # stages per rank under an interleaved schedule
    checkpointing: Checkpointing = Checkpointing.NONE
    sequence_parallel: bool = False
    loss_parallel: bool = True  # TorchTitan's default: logits stay sharded over TP

    def resolved(self, world_size: int) -> ParallelismConfig:
        """The config with `dp_shard = -1` filled in from the world size."""
        if self.dp_shard != -1:
            return self
        rest = self.dp_replicate * self.tp * self.pp * self.cp
        if rest <= 0 or world_size % rest:
            raise ConfigError(f"data_parallel_shard_degree -1: world size {world_size} is not "
                              f"a multiple of the other degrees' product {rest}")
        return replace(self, dp_shard=world_size // rest)

    @property
    def degrees(self) -> tuple[int, ...]:
        """The mesh's shape, in `MESH_DIMS` order."""
        return (self.pp, self.dp_replicate, self.dp_shard, self.cp, self.tp)

    @property
    def world_size(self) -> int:
        """Ranks the degrees need."""
        n = 1
        for d in self.degrees:
            n *= d
        return n

    @property
    def stages(self) -> int:
        """Pipeline stages in all (pp x virtual stages when interleaved)."""
        return self.pp * (self.virtual_stages if self.schedule.multi_stage else 1)

    def check(self, world_size: int, heads: int, kv_heads: int, layers: int,
              batch: int | None = None) -> ParallelismConfig:
        """The resolved config, or a ConfigError naming the numbers that do not divide."""
        cfg = self.resolved(world_size)
        for name, d in zip(MESH_DIMS, cfg.degrees, strict=True):
            if d < 1:
                raise ConfigError(f"{name} degree {d}: give 1 or more")
        if cfg.world_size != world_size:
            shape = " x ".join(f"{n} {d}" for n, d in zip(MESH_DIMS, cfg.degrees, strict=True))
            raise ConfigError(f"degrees {shape} make {cfg.world_size} ranks, but the world "
                              f"size is {world_size}")
        if heads % cfg.tp or kv_heads % cfg.tp:
            raise ConfigError(f"tensor_parallel_degree {cfg.tp} does not divide the model's "
                              f"{heads} attention heads and {kv_heads} key/value heads")
        if layers % cfg.stages:
            raise ConfigError(f"{cfg.stages} pipeline stages (pipeline_parallel_degree "
                              f"{cfg.pp}{' x virtual stages' if cfg.schedule.multi_stage else ''}"
                              f") do not divide the model's {layers} layers")
        if cfg.cp > 1:
            raise ConfigError("context_parallel_degree > 1: PyTorch has no context-parallel "
                              "sharding rule for attention on CPU (gloo); the planner still "
                              "prices it (tessera plan train --cp)")
        if cfg.pp > 1 and cfg.microbatches < cfg.pp and cfg.schedule is not PpSchedule.GPIPE:
            raise ConfigError(f"{cfg.microbatches} micro-batches for {cfg.pp} pipeline stages: "
                              f"{cfg.schedule.value} needs at least one per stage")
        dp = cfg.dp_replicate * cfg.dp_shard
        if batch is not None and (batch % dp or (batch // dp) % cfg.microbatches):
            raise ConfigError(f"batch {batch} does not split into {dp} data-parallel ranks x "
                              f"{cfg.microbatches} micro-batches")
        if cfg.sequence_parallel and cfg.tp == 1:
            raise ConfigError("sequence parallel needs tensor_parallel_degree > 1")
        return cfg

    def mesh(self):  # noqa: ANN201 - torch DeviceMesh
        """The device mesh over the initialised default group (dims in `MESH_DIMS`)."""
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh("cpu", self.degrees, mesh_dim_names=MESH_DIMS)

    @classmethod
    def from_toml(cls, path: str | Path) -> tuple[ParallelismConfig, dict]:
        """(config, the whole file as a dict) from a TorchTitan-style job TOML."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such job file") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{p}: not TOML ({err})") from None
        return cls.from_dict(data, str(p)), data

    @classmethod
    def from_dict(cls, data: dict, where: str = "job") -> ParallelismConfig:
        """The config from a parsed job file's sections."""
        par = data.get("parallelism", {})
        tess = data.get("tessera", {})
        ac = data.get("activation_checkpoint", {})
        known = {"data_parallel_replicate_degree", "data_parallel_shard_degree",
                 "tensor_parallel_degree", "pipeline_parallel_degree",
                 "context_parallel_degree", "pipeline_parallel_schedule",
                 "pipeline_parallel_microbatch_size", "pipeline_parallel_microbatches",
                 "disable_loss_parallel", "expert_parallel_degree",
                 "fsdp_reshard_after_forward", "enable_async_tensor_parallel"}
        unknown = sorted(set(par) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown [parallelism] keys {unknown}")
        try:
            if par.get("expert_parallel_degree", 1) != 1:
                raise ConfigError(f"{where}: expert_parallel_degree "
                                  f"{par['expert_parallel_degree']}: the reference models "
                                  "have no experts")
            return cls(
                dp_replicate=int(par.get("data_parallel_replicate_degree", 1)),
                dp_shard=int(par.get("data_parallel_shard_degree", 1)),
                tp=int(par.get("tensor_parallel_degree", 1)),
                pp=int(par.get("pipeline_parallel_degree", 1)),
                cp=int(par.get("context_parallel_degree", 1)),
                schedule=PpSchedule(par.get("pipeline_parallel_schedule", "1F1B")),
                microbatches=_microbatches(par, data.get("training", {}), tess),
                virtual_stages=int(tess.get("virtual_stages", 2)),
                checkpointing=Checkpointing(ac.get("mode", "none")),
                sequence_parallel=bool(tess.get("sequence_parallel", False)),
                loss_parallel=not bool(par.get("disable_loss_parallel", False)))
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{where}: {err}") from None

    def as_dict(self) -> dict[str, object]:
        """Plain values, for logs and JSON."""
        return {f.name: (v.value if isinstance(v := getattr(self, f.name), Enum) else v)
                for f in fields(self)}


def _microbatches(par: dict, training: dict, tess: dict) -> int:
    """Micro-batches per step: TorchTitan gives their size (`pipeline_parallel_microbatch_size`
    rows of the `local_batch_size` each data-parallel rank holds)."""
    if "pipeline_parallel_microbatches" in par:
        return int(par["pipeline_parallel_microbatches"])
    size, local = par.get("pipeline_parallel_microbatch_size"), training.get("local_batch_size")
    if size and local:
        return max(1, int(local) // int(size))
    return int(tess.get("microbatches", 2))
