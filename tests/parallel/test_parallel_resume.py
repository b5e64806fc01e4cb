"""Training resumes from a checkpoint with the losses of an uninterrupted run, in the same
layout or another one (the checkpoint reshards on load)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tessera.models import PRESETS
from tessera.parallel.config import ParallelismConfig
from tessera.parallel.launch import spawn
from tessera.parallel.train import TrainSettings, train

MODEL = dataclasses.replace(PRESETS["tiny-llama"], num_layers=4)


def _losses(rank: int, world: int, cfg: ParallelismConfig, settings: TrainSettings):
    return train(cfg, settings).losses


def _run(cfg: ParallelismConfig, settings: TrainSettings) -> tuple[float, ...]:
    return spawn(_losses, cfg.world_size, args=(cfg, settings), timeout_s=90)[0]


@pytest.mark.parametrize(("first", "then"), [
    (ParallelismConfig(tp=2), ParallelismConfig(tp=2)),
    (ParallelismConfig(tp=2, pp=2), ParallelismConfig(dp_shard=2)),
], ids=["tp2-tp2", "tp2pp2-fsdp2"])
def test_resume_continues_the_uninterrupted_losses(tmp_path: Path, first, then) -> None:
    base = TrainSettings(model=MODEL, steps=4, batch=4, seq_len=16)
    whole = _run(first, base)
    ckpt = tmp_path / "ckpt"
    part = _run(first, dataclasses.replace(base, steps=2, checkpoint_dir=ckpt,
                                           checkpoint_every=1))
    assert part == pytest.approx(whole[:2], rel=1e-6)
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000000", "step-00000001"]
    rest = _run(then, dataclasses.replace(base, checkpoint_dir=ckpt))
    assert len(rest) == 2  # steps 2 and 3 only
    assert rest == pytest.approx(whole[2:], rel=1e-5)
