"""The training loop every parallel layout shares: seeded model, seeded data, one step each.

    result = train(ParallelismConfig(tp=2, pp=2), TrainSettings(steps=3))   # in each rank

Every rank builds the whole reference model from the same seed, then keeps and shards its
part (`pipeline.split_stages`, `parallelize.parallelize`), so any layout starts from the
same weights as one process. Step k's global batch is drawn from a generator seeded with
(seed, k) and each data-parallel rank takes its rows, so every layout sees the same tokens.
The loss is the mean next-token cross-entropy; the logged value is averaged over the
data-parallel group (the ranks holding a loss), not the world.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import DTensor, Replicate
from torch.distributed.tensor.parallel import loss_parallel

from tessera.compiler.eager import eager_profile
from tessera.models import PRESETS
from tessera.models.config import ModelConfig
from tessera.models.llama import LlamaModel
from tessera.parallel.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tessera.parallel.config import ParallelismConfig
from tessera.parallel.parallelize import WRAPPED, parallelize
from tessera.parallel.pipeline import build_schedule, one_module, split_stages
from tessera.parallel.record import CollectiveCall, CollectiveRecorder


class Optimizer(Enum):
    """Optimizers of the reference runs."""

    SGD = "sgd"
    ADAMW = "adamw"


@dataclass(frozen=True)
class TrainSettings:
    """What to train and for how long."""

    model: ModelConfig = PRESETS["tiny-llama"]
    steps: int = 3
    batch: int = 4  # global batch (sequences per step)
    seq_len: int = 16
    optimizer: Optimizer = Optimizer.ADAMW
    lr: float = 1e-2
    seed: int = 0
    record: bool = False  # record the collectives of the last step
    checkpoint_dir: Path | None = None  # resume from its latest checkpoint, save into it
    checkpoint_every: int = 0  # save every N steps (and after the last); 0: never
    profile_chip: str | None = None  # and price its ops on this chip (eager profiling)


@dataclass(frozen=True)
class TrainResult:
    """One rank's view of a run: the logged losses and its full (unsharded) parameters."""

    losses: tuple[float, ...]
    params: dict[str, torch.Tensor]  # names as in the unsharded model; this rank's stages
    collectives: tuple[CollectiveCall, ...] = ()  # the last step's, when recorded
    compute_s: float | None = None  # its ops priced on `profile_chip` (ROOFLINE)
    ops: int = 0  # ATen ops the last step ran, when profiled


def batch_of(settings: TrainSettings, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) [batch, seq_len] of step `step`: the same in every layout."""
    g = torch.Generator().manual_seed(settings.seed * 100_003 + step)
    tokens = torch.randint(settings.model.vocab_size, (settings.batch, settings.seq_len + 1),
                           generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


def build(cfg: ParallelismConfig, settings: TrainSettings, mesh) -> list[nn.Module]:  # noqa: ANN001
    """This rank's model parts (one module, or its pipeline stages), parallelized."""
    torch.manual_seed(settings.seed)
    model = LlamaModel(settings.model)
    model.init_weights(settings.seed)
    parts = split_stages(model, cfg, mesh["pp"].get_local_rank()) if cfg.pp > 1 else [model]
    return [parallelize(p, cfg, mesh) for p in parts]


def make_optimizer(params, settings: TrainSettings) -> torch.optim.Optimizer:  # noqa: ANN001
    """SGD or AdamW (foreach off: the same arithmetic for DTensor and plain tensors)."""
    if settings.optimizer is Optimizer.SGD:
        return torch.optim.SGD(params, lr=settings.lr, foreach=False)
    return torch.optim.AdamW(params, lr=settings.lr, foreach=False)


def train(cfg: ParallelismConfig, settings: TrainSettings,
          log: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run `settings.steps` steps of `cfg` on the initialised default group."""
    m = settings.model
    cfg = cfg.check(dist.get_world_size(), m.num_heads, m.num_kv_heads, m.num_layers,
                    settings.batch)
    mesh = cfg.mesh()
    parts = build(cfg, settings, mesh)
    opt = make_optimizer([p for part in parts for p in part.parameters()], settings)
    dp = cfg.dp_replicate * cfg.dp_shard
    dp_rank = mesh["dp_replicate", "dp_shard"]._flatten().get_local_rank() if dp > 1 else 0
    rows = settings.batch // dp
    schedule = None
    if cfg.pp > 1:
        schedule = build_schedule(parts, cfg, mesh["pp"].get_local_rank(),
                                  mesh["pp"].get_group(), _loss)
    losses = []
    calls: tuple[CollectiveCall, ...] = ()
    run = None
    start = _resume(parts, opt, settings)
    for step in range(start, settings.steps):
        x, y = batch_of(settings, step)
        x, y = x[dp_rank * rows:(dp_rank + 1) * rows], y[dp_rank * rows:(dp_rank + 1) * rows]
        opt.zero_grad()
        watched = settings.record and step == settings.steps - 1
        with contextlib.ExitStack() as stack:
            if watched and settings.profile_chip:
                run = stack.enter_context(eager_profile(settings.profile_chip,
                                                        modules=cfg.pp == 1))
            recorder = (stack.enter_context(CollectiveRecorder(track_modules=cfg.pp == 1))
                        if watched else None)
            loss = _step(parts, schedule, cfg, mesh, x, y)
            _reduce_partial_grads(parts)
            opt.step()
        if recorder is not None:
            calls = tuple(recorder.records)
        value = _logged(loss, cfg)
        every = settings.checkpoint_every
        if settings.checkpoint_dir and every and ((step + 1) % every == 0
                                                 or step + 1 == settings.steps):
            save_checkpoint(settings.checkpoint_dir, step, one_module(parts), opt,
                            extra={"data_position": step + 1, "losses": [*losses, value]})
        losses.append(value)
        if log is not None:
            log(step, value)
    compute_s = run.profile.total_s if run is not None else None
    return TrainResult(tuple(losses), full_params(parts), calls, compute_s,
                       len(run.ops) if run is not None else 0)


def _step(parts, schedule, cfg: ParallelismConfig, mesh, x, y):  # noqa: ANN001, ANN202
    """Forward and backward of one step; the local mean loss (None off the last stage)."""
    if schedule is None:
        logits = parts[0](x)
        if cfg.loss_parallel and cfg.tp > 1:
            with loss_parallel():
                loss = _loss(logits, y)
                loss.backward()
        else:
            loss = _loss(logits, y)
            loss.backward()
        return loss.detach()
    first = mesh["pp"].get_local_rank() == 0
    last = parts[-1].lm_head is not None
    losses: list[torch.Tensor] = []
    parallel_loss = loss_parallel() if cfg.loss_parallel and cfg.tp > 1 \
        else contextlib.nullcontext()
    with parallel_loss:
        schedule.step(*((x,) if first else ()), target=y if last else None,
                      losses=losses if last else None)
    return torch.stack(losses).mean().detach() if last else None


def _resume(parts: list[nn.Module], opt: torch.optim.Optimizer,
            settings: TrainSettings) -> int:
    """The first step to run: 0, or the one after the latest checkpoint, whose model and
    optimizer state are loaded into this layout (whatever layout saved it)."""
    if settings.checkpoint_dir is None:
        return 0
    latest = latest_checkpoint(settings.checkpoint_dir)
    if latest is None:
        return 0
    meta = load_checkpoint(latest, one_module(parts), opt)
    return int(meta["extra"].get("data_position", meta["step"] + 1))


def _reduce_partial_grads(parts: list[nn.Module]) -> None:
    """Finish pending reductions of gradients once, before the optimizer reads them: a
    replicated weight used on sequence shards (a norm under sequence parallel) gets a
    partial-sum gradient, which DTensor would otherwise all-reduce again at each read."""
    for part in parts:
        for p in part.parameters():
            g = p.grad
            if isinstance(g, DTensor) and any(pl.is_partial() for pl in g.placements):
                p.grad = g.redistribute(placements=[Replicate() if pl.is_partial() else pl
                                                    for pl in g.placements])


def _logged(loss: torch.Tensor | None, cfg: ParallelismConfig) -> float:
    """The step's loss averaged over the data-parallel ranks, the same value on every rank
    (ranks without a loss, off the last pipeline stage, add nothing)."""
    if isinstance(loss, DTensor):
        loss = loss.full_tensor()
    holders = dist.get_world_size() // cfg.pp  # the last stage's ranks (tp copies agree)
    t = torch.zeros(1) if loss is None else loss.reshape(1).clone()
    dist.all_reduce(t)
    return float(t.item() / holders)


def full_params(parts: list[nn.Module]) -> dict[str, torch.Tensor]:
    """The unsharded parameters of this rank's parts, by their names in the whole model."""
    out = {}
    for part in parts:
        for name, p in part.named_parameters():
            t = p.full_tensor() if isinstance(p, DTensor) else p.detach()
            out[name.replace(WRAPPED, "")] = t.detach().clone()
    return out
