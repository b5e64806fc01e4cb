"""Pipeline parallelism: the model split by layers into stages, run by PyTorch's schedules.

TorchTitan's manual split: every rank builds the whole model (seeded, so all agree), keeps
the layers of its stage(s) and drops the rest; the first stage keeps the embedding, the last
the final norm and the LM head. Layer names keep their index (`layers.3.mlp...`), so a
stage's parameter names are the full model's and checkpoints reshard across layouts.
Stages run under `torch.distributed.pipelining` (`ScheduleGPipe`, `Schedule1F1B`,
`ScheduleInterleaved1F1B`) over the mesh's `pp` dimension; rank r of the pipeline holds
stage r (and r + pp, r + 2 pp, ... when interleaved, as the looped schedules expect).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.pipelining import (
    PipelineStage,
    Schedule1F1B,
    ScheduleGPipe,
    ScheduleInterleaved1F1B,
)

from tessera.models.config import ModelFamily
from tessera.models.llama import LlamaModel, rope_tables
from tessera.parallel.config import ConfigError, ParallelismConfig, PpSchedule


class LlamaStage(nn.Module):
    """Layers [first, last) of a Llama model, with the embedding on the first stage and the
    norm and LM head on the last. Input: token ids (first stage) or hidden states [B, S, H]."""

    def __init__(self, model: LlamaModel, first: int, last: int, seq_shards: int = 1) -> None:
        super().__init__()
        n = model.config.num_layers
        self.config = model.config
        # under sequence parallel a later stage receives its rank's share of the sequence
        self.seq_shards = seq_shards
        self.embed_tokens = model.embed_tokens if first == 0 else None
        self.layers = nn.ModuleDict({str(i): model.layers[i] for i in range(first, last)})
        self.norm = model.norm if last == n else None
        self.lm_head = model.lm_head if last == n else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        if self.embed_tokens is not None:
            x = self.embed_tokens(x)  # [B, S] ids -> [B, S, H]
        else:
            seq *= self.seq_shards
        cos, sin = rope_tables(seq, self.config.head_dim, self.config.rope_theta)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for layer in self.layers.values():
            x = layer(x, cos, sin)
        if self.lm_head is not None:
            x = self.lm_head(self.norm(x))  # [B, S, V]
        return x


def split_stages(model: nn.Module, cfg: ParallelismConfig, pp_rank: int) -> list[LlamaStage]:
    """This pipeline rank's stage modules (deep copies of their parts of `model`)."""
    config = getattr(model, "config", None)
    if config is None or config.family is not ModelFamily.LLAMA:
        raise ConfigError("pipeline_parallel_degree > 1: the stage split covers the Llama "
                          "reference model")
    if config.tie_word_embeddings:
        raise ConfigError("pipeline_parallel_degree > 1 with tied embeddings: the first "
                          "and last stages would share one weight across ranks")
    per = config.num_layers // cfg.stages
    shards = cfg.tp if cfg.sequence_parallel else 1
    return [copy.deepcopy(LlamaStage(model, i * per, (i + 1) * per, shards))
            for i in stage_ids(cfg, pp_rank)]


def stage_ids(cfg: ParallelismConfig, pp_rank: int) -> list[int]:
    """The global stage indices held by pipeline rank `pp_rank`."""
    return [pp_rank + k * cfg.pp for k in range(cfg.stages // cfg.pp)]


def build_schedule(stages: list[nn.Module], cfg: ParallelismConfig, pp_rank: int, pp_group,  # noqa: ANN001
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):  # noqa: ANN201
    """The `torch.distributed.pipelining` schedule running `stages` on this rank."""
    wrapped = [PipelineStage(m, i, cfg.stages, torch.device("cpu"), group=pp_group)
               for m, i in zip(stages, stage_ids(cfg, pp_rank), strict=True)]
    if cfg.schedule is PpSchedule.INTERLEAVED_1F1B:
        return ScheduleInterleaved1F1B(wrapped, cfg.microbatches, loss_fn=loss_fn)
    kind = ScheduleGPipe if cfg.schedule is PpSchedule.GPIPE else Schedule1F1B
    return kind(wrapped[0], cfg.microbatches, loss_fn=loss_fn)


def one_module(parts: list[nn.Module]) -> nn.Module:
    """`parts` as one module with the whole model's parameter names (for checkpoints): the
    module itself when there is one, else the stages' layers and ends side by side."""
    if len(parts) == 1:
        return parts[0]
    merged = nn.Module()
    merged.layers = nn.ModuleDict({k: v for p in parts for k, v in p.layers.items()})
    for end in ("embed_tokens", "norm", "lm_head"):
        found = [getattr(p, end) for p in parts if getattr(p, end, None) is not None]
        if found:
            setattr(merged, end, found[0])
    return merged
