"""Compiling the in-tree reference models: outputs as eager PyTorch, a profile that adds
up, the library kernels really run, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tessera
from tessera import cost
from tessera.compiler import CompileError, UnsupportedOpsError, lower_library
from tessera.compiler.price import PriceKind
from tessera.models import TINY_BERT, TINY_GPT2, TINY_LLAMA, build_model

MODELS = {"llama": TINY_LLAMA, "gpt2": TINY_GPT2, "bert": TINY_BERT}


def _ids(cfg, batch=2, seq=16, seed=0):
    return torch.randint(0, cfg.vocab_size, (batch, seq),
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_match_eager_fp32(name: str) -> None:
    cfg = MODELS[name]
    model = build_model(cfg)
    ids = _ids(cfg)
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    with torch.no_grad():
        ref = model(ids)
    out = compiled(ids)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 1e-4
    # another input of the same shape runs the same graph
    other = _ids(cfg, seed=1)
    with torch.no_grad():
        assert (compiled(other) - model(other)).abs().max().item() <= 1e-4


def test_bert_with_a_padding_mask_matches_eager() -> None:
    model = build_model(TINY_BERT)
    ids = _ids(TINY_BERT)
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 10:] = 0
    compiled = tessera.compile(model, (ids, mask), chip="trn1", fidelity="roofline")
    with torch.no_grad():
        ref = model(ids, mask)
    assert (compiled(ids, mask) - ref).abs().max().item() <= 1e-4
    kernels = {k for op in compiled.profile.ops for k in op.kernels}
    assert {"batched_matmul", "softmax"} <= kernels  # masked attention: matmuls + softmax


def test_bf16_logits_track_eager() -> None:
    model = build_model(TINY_LLAMA)
    ids = _ids(TINY_LLAMA, batch=1, seq=32)
    compiled = tessera.compile(model, (ids,), chip="trn2", dtype=torch.bfloat16,
                               fidelity="roofline")
    with torch.no_grad():
        ref = model.to(torch.bfloat16)(ids).float()
    out = compiled(ids).float()
    cosine = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert cosine.item() >= 0.999


def test_library_kernels_run_for_every_kernel_node(monkeypatch) -> None:
    ran: list[str] = []
    real = lower_library._sim

    def counting(op: str):
        kernel = real(op)

        def run(*args, **kwargs):
            ran.append(op)
            return kernel(*args, **kwargs)

        return run

    monkeypatch.setattr(lower_library, "_sim", counting)
    model = build_model(TINY_LLAMA)
    ids = _ids(TINY_LLAMA)
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    compiled(ids)
    expected = [c.kernel for n in compiled.graph.nodes
                for c in compiled.lowered[n.name].kernels for _ in range(c.calls)]
    assert sorted(ran) == sorted(expected)
    assert {"matmul", "rmsnorm", "flash_attention", "swiglu", "embedding"} <= set(ran)


def test_the_profile_is_the_sum_of_its_ops_estimates() -> None:
    model = build_model(TINY_GPT2)
    ids = _ids(TINY_GPT2)
    compiled = tessera.compile(model, (ids,), chip="trn1", fidelity="roofline")
    profile = compiled.profile
    expected = 0.0
    for node in compiled.graph.nodes:
        lowered = compiled.lowered[node.name]
        for call in lowered.kernels:
            e = cost.estimate(call.kernel, dict(call.shapes), call.dtype, "trn1", "roofline")
            expected += e.time_s * call.calls
    copies = sum(op.time_s for op in profile.ops if op.priced_as == PriceKind.COPY)
    assert profile.total_s == pytest.approx(expected + copies, rel=1e-12)
    layers = profile.by_module(depth=2)
    assert sum(layer.time_s for layer in layers) == pytest.approx(profile.total_s)
    assert {"h.0", "h.1"} <= {layer.module for layer in layers}
    assert all(op.time_s == 0 for op in profile.ops if op.priced_as == PriceKind.VIEW)
    assert profile.peak_hbm_bytes > sum(p.numel() * 4 for p in model.parameters())
    assert "per layer:" in profile.format()


def test_simulated_fidelity_profiles_the_kernels() -> None:
    model = build_model(TINY_LLAMA)
    ids = _ids(TINY_LLAMA, batch=1)
    simulated = tessera.compile(model, (ids,), chip="trn2").profile
    roofline = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline").profile
    assert simulated.fidelity == "simulated"
    assert simulated.total_s >= roofline.total_s  # ROOFLINE bounds every kernel from below
    assert simulated.peak_sbuf_bytes > 0
    assert "tensor" in simulated.busy_s() and 0 < simulated.utilisation()["tensor"] < 1


def test_symbolic_compile_of_a_large_layer_predicts_without_running() -> None:
    from tessera.models import LLAMA3_8B
    from tessera.models.llama import LlamaModel

    cfg = dataclasses.replace(LLAMA3_8B, num_layers=1)
    with torch.device("meta"):
        model = LlamaModel(cfg).to(torch.bfloat16)
    ids = torch.zeros(1, 512, dtype=torch.int64)
    compiled = tessera.compile(model, (ids,), chip="trn2", symbolic=True, fidelity="roofline")
    profile = compiled.profile
    assert profile.total_s > 0
    lm_head = [op for op in profile.ops if op.module == "lm_head"]
    assert lm_head and lm_head[0].kernels == ("matmul",)
    assert lm_head[0].flops == pytest.approx(2 * 512 * 4096 * 128256)
    with pytest.raises(CompileError, match="compiled symbolically"):
        compiled(ids)


class WithFlip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.flip(self.proj(x), dims=[-1])


def test_unsupported_ops_are_listed_with_their_module() -> None:
    x = torch.randn(4, 8)
    with pytest.raises(UnsupportedOpsError, match=r"aten.flip.default \(in the top module\)"):
        tessera.compile(WithFlip(), (x,), chip="trn1", fidelity="roofline")
    compiled = tessera.compile(WithFlip(), (x,), chip="trn1", fidelity="roofline",
                               fallback="host")
    host = [op for op in compiled.profile.ops if op.priced_as == PriceKind.HOST]
    assert len(host) == 1 and host[0].time_s > 0 and compiled.profile.host_s > 0
    model = WithFlip()
    compiled = tessera.compile(model, (x,), chip="trn1", fidelity="roofline", fallback="host")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"chip": "trn9"}, "chip 'trn9'"),
    ({"fallback": "cpu"}, "fallback must be"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message) -> None:
    args = {"chip": "trn1", "fidelity": "roofline", **kwargs}
    with pytest.raises(CompileError, match=message):
        tessera.compile(WithFlip(), (torch.randn(4, 8),), **args)


def test_calls_with_other_shapes_or_counts_are_refused() -> None:
    model = build_model(TINY_GPT2)
    compiled = tessera.compile(model, (_ids(TINY_GPT2),), chip="trn1", fidelity="roofline")
    with pytest.raises(CompileError, match="compiled for shape \\[2, 16\\], got \\[2, 8\\]"):
        compiled(_ids(TINY_GPT2, seq=8))
    with pytest.raises(CompileError, match="takes 1 input"):
        compiled(_ids(TINY_GPT2), _ids(TINY_GPT2))


def test_a_dtype_the_kernel_declares_lowers_to_it() -> None:
    # the library matmul runs float16 (KernelDef.dtypes), so a float16 Linear is a kernel
    # node, not a copy; rms_norm has no float16 kernel and falls back to the generic path
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.RMSNorm(96))
    x = torch.randn(8, 64)
    compiled = tessera.compile(model, (x,), chip="trn2", dtype=torch.float16,
                               fidelity="roofline")
    priced = {op.op: op for op in compiled.profile.ops}
    assert priced["aten.linear.default"].kernels == ("matmul",)
    assert priced["aten.rms_norm.default"].priced_as == PriceKind.COPY
    want = model.to(torch.float16)(x.to(torch.float16)).float()
    assert (compiled(x.to(torch.float16)).float() - want).abs().max() < 2e-2
