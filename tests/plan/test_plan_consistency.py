"""The planner and the graph compiler agree on each block's work (issue 15, section 7).

One `ModelConfig` feeds both: the compiler lowers the in-tree reference model built from it,
the planner lists the block's kernels from the same config. Their per-block FLOPs and HBM
bytes must agree within 1 %.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tessera
from tessera.kernels import registry
from tessera.models import PRESETS, build_model
from tessera.plan.layers import Shard, block_ops

BATCH, SEQ = 2, 64


def _planner_work(cfg, layer: int) -> tuple[float, float]:
    flops = hbm = 0.0
    for op in block_ops(cfg, layer, Shard(BATCH, SEQ)):
        if op.fused:
            continue
        shapes = dict(op.shapes)
        if op.kernel == "copy":
            hbm += shapes["bytes"] * op.calls
            continue
        defn = registry.get(op.kernel)
        flops += defn.flops(shapes) * op.calls
        hbm += defn.hbm_bytes(shapes, 2) * op.calls
    return flops, hbm


def _compiler_work(cfg, layer_name: str) -> tuple[float, float]:
    model = build_model(cfg, seed=0)
    ids = torch.zeros(BATCH, SEQ, dtype=torch.long)
    compiled = tessera.compile(model, (ids,), chip="trn1", symbolic=True,
                               fidelity="roofline", dtype="bfloat16")
    prof = compiled.profile
    ops = [op for op in prof.ops if prof.layer_of(op) == layer_name]
    assert ops, f"no ops in {layer_name}"
    return sum(op.flops for op in ops), sum(op.hbm_bytes for op in ops)


@pytest.mark.parametrize(("preset", "layer_name"), [("tiny-llama", "layers.1"),
                                                     ("tiny-gpt2", "h.1")])
def test_planner_block_matches_compiled_block(preset: str, layer_name: str) -> None:
    cfg = dataclasses.replace(PRESETS[preset], hidden_size=256, intermediate_size=512 + 256)
    plan_flops, plan_bytes = _planner_work(cfg, 1)
    comp_flops, comp_bytes = _compiler_work(cfg, layer_name)
    assert plan_flops == pytest.approx(comp_flops, rel=0.01)
    assert plan_bytes == pytest.approx(comp_bytes, rel=0.01)
