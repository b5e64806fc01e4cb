"""tessera.eager_profile: a training step priced op by op as it runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tessera
from tessera.compiler import CompileError
from tessera.compiler.eager import ATTENTION_BACKWARD_FACTOR
from tessera.models import LLAMA3_8B, TINY_LLAMA, build_model


def _step(model, ids):
    loss = model(ids).float().logsumexp(-1).mean()
    loss.backward()
    return loss


def test_a_training_step_is_priced_forward_and_backward() -> None:
    model = build_model(TINY_LLAMA).train()
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (1, 16),
                        generator=torch.Generator().manual_seed(0))
    reference = _step(build_model(TINY_LLAMA).train(), ids)
    with tessera.eager_profile(chip="trn2") as run:
        loss = _step(model, ids)
    assert loss.item() == pytest.approx(reference.item())  # the code ran unchanged
    profile = run.profile
    phases = profile.by_phase()
    assert phases["forward"] > 0 and phases["backward"] > 0
    assert {"layers.0", "layers.1"} <= {layer.module for layer in profile.by_module(2)}
    kernels = [k for op in profile.ops for k in op.kernels]
    assert kernels.count("matmul") >= 3 * 7 * TINY_LLAMA.num_layers  # fwd + 2 grads each
    flash = {op.phase: op for op in profile.ops if "flash_attention" in op.kernels
             and op.module == "layers.0.self_attn"}
    assert flash["backward"].time_s == pytest.approx(
        ATTENTION_BACKWARD_FACTOR * flash["forward"].time_s)
    assert profile.total_s == pytest.approx(sum(op.time_s for op in profile.ops))


def test_fake_mode_prices_a_step_too_large_to_allocate() -> None:
    cfg = dataclasses.replace(LLAMA3_8B, num_layers=1)
    seq = 256
    with tessera.eager_profile(chip="trn2", fake=True) as run:
        from tessera.models.llama import LlamaModel

        model = LlamaModel(cfg)  # 1.5 G parameters: fake, nothing allocated
        ids = torch.zeros(1, seq, dtype=torch.int64)
        _step(model, ids)
    head = [op for op in run.profile.ops if op.module == "lm_head" and op.phase == "forward"
            and op.kernels == ("matmul",)]
    assert head and head[0].flops == pytest.approx(2 * seq * cfg.hidden_size * cfg.vocab_size)
    # every Linear's backward is two matmuls of its forward's size (input and weight grads)
    mm = {phase: sum(op.flops for op in run.profile.ops if op.phase == phase
                     and op.kernels == ("matmul",)) for phase in ("forward", "backward")}
    assert mm["backward"] == pytest.approx(2 * mm["forward"], rel=1e-6)


def test_a_bad_chip_is_refused_before_running() -> None:
    with pytest.raises(CompileError, match="chip 'trn0'"):
        with tessera.eager_profile(chip="trn0"):
            pass
