"""The passes: each keeps the graph valid and does its one job."""

from __future__ import annotations

import pytest
import torch

from tessera.compiler.export import export
from tessera.compiler.frontend import to_graph
from tessera.compiler.graph import ValueRole
from tessera.compiler.passes.constants import fold_constants
from tessera.compiler.passes.dead_code import dead_code
from tessera.compiler.passes.fusion import fuse_matmul_activation, fuse_residual_norm, fuse_swiglu
from tessera.compiler.pipeline import PASSES, optimise
from tessera.models import TINY_GPT2, TINY_LLAMA, build_model


def _graph(cfg):
    model = build_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, 8))
    return to_graph(export(model, (ids,)))


def _ops(graph) -> set[str]:
    return {n.op for n in graph.nodes}


def test_export_keeps_library_ops_whole_and_records_module_paths() -> None:
    g = _graph(TINY_LLAMA)
    ops = _ops(g)
    assert {"aten.linear.default", "aten.rms_norm.default",
            "aten.scaled_dot_product_attention.default"} <= ops
    assert not ops & {"aten.bmm.default", "aten._softmax.default", "aten.rsqrt.default"}
    modules = {n.module for n in g.nodes}
    assert "layers.0.self_attn.q_proj" in modules
    params = [v for v in g.inputs if v.role is ValueRole.PARAMETER]
    assert params and all(v.name in g.constants for v in params)


def test_every_pass_keeps_the_graph_valid() -> None:
    for cfg in (TINY_LLAMA, TINY_GPT2):
        graph = _graph(cfg)
        for name, fn in PASSES:
            graph = fn(graph)
            graph.verify()
            assert name


def test_constant_folding_computes_the_rope_tables_once() -> None:
    g = _graph(TINY_LLAMA)
    assert {"aten.cos.default", "aten.sin.default"} <= _ops(g)
    folded = dead_code(fold_constants(g))
    assert not {"aten.cos.default", "aten.sin.default"} & _ops(folded)
    consts = [v for v in folded.inputs if v.role is ValueRole.CONSTANT]
    assert any(v.name in folded.constants for v in consts)


def test_dead_code_drops_unread_nodes() -> None:
    g = _graph(TINY_LLAMA)
    extra = g.nodes[0].__class__("unused", g.nodes[-1].kind, g.nodes[-1].op,
                                 g.nodes[-1].inputs, g.nodes[-1].shape, g.nodes[-1].dtype,
                                 g.nodes[-1].attrs)
    g2 = g.replace_nodes([*g.nodes, extra])
    assert "unused" in {n.name for n in g2.nodes}
    assert "unused" not in {n.name for n in dead_code(g2).nodes}


def test_swiglu_and_epilogue_fusion() -> None:
    llama = fuse_swiglu(dead_code(fold_constants(_graph(TINY_LLAMA))))
    assert "swiglu" in _ops(llama) and "aten.silu.default" not in _ops(llama)
    gpt2 = fuse_matmul_activation(_graph(TINY_GPT2))
    assert "aten.gelu.default" not in _ops(gpt2)
    acts = {n.attr("activation") for n in gpt2.nodes if n.op == "aten.linear.default"}
    assert "gelu_tanh" in acts
    assert len(optimise(_graph(TINY_GPT2), verify=True).nodes) < len(_graph(TINY_GPT2).nodes)


def test_residual_adds_fuse_into_the_norms_that_read_them() -> None:
    import tessera
    from tessera.compiler.graph import NodeKind

    graph = dead_code(fold_constants(_graph(TINY_LLAMA)))
    fused = fuse_residual_norm(graph)
    fused.verify()
    kernels = [n for n in fused.nodes if n.op == "add_rms_norm"]
    # per layer the post-attention norm, then the next layer's input norm and the final
    # norm; the first input norm reads the embedding, not an add
    assert len(kernels) == 2 * TINY_LLAMA.num_layers
    assert sum(n.op == "aten.rms_norm.default" for n in fused.nodes) == 1
    for node in kernels:
        views = [n for n in fused.nodes if n.inputs == (node.name,)]
        assert [v.attr("args")[1] for v in views] == [0, 1]  # the sum, then its norm
        assert all(v.kind is NodeKind.RESHAPE and v.module == node.module for v in views)
    # every name the unfused graph had still exists: readers need no renaming
    assert {n.name for n in graph.nodes} <= {n.name for n in fused.nodes}

    model = build_model(TINY_LLAMA)
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (2, 16))
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    assert (compiled(ids) - model(ids)).abs().max() < 1e-4
    ops = {op.node: op for op in compiled.profile.ops}
    assert sum("add_rmsnorm" in op.kernels for op in ops.values()) == 2 * TINY_LLAMA.num_layers


def test_a_sum_read_before_its_norm_is_not_fused() -> None:
    class Early(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.RMSNorm(16)

        def forward(self, x, r):
            h = x + r
            early = h * 2.0  # reads the sum before the norm
            return self.norm(h) + early

    x = torch.randn(4, 16)
    graph = to_graph(export(Early(), (x, x)))
    assert fuse_residual_norm(graph) is graph


def test_a_transpose_that_only_a_copy_reads_is_a_strided_view() -> None:
    import tessera
    from tessera.compiler.passes.layout import STRIDED, elide_transposes
    from tessera.compiler.price import PriceKind
    from tessera.models.llama import LlamaModel

    # on the meta device SDPA returns [B, H, S, D] contiguous, so the attention output's
    # permute is followed by a clone before the reshape (with real tensors the flash kernel
    # hands back a layout where the reshape is a view, and no clone is exported)
    with torch.device("meta"):
        meta = LlamaModel(TINY_LLAMA)
    ids = torch.zeros(1, 16, dtype=torch.int64)
    graph = dead_code(fold_constants(to_graph(export(meta, (ids,)))))
    laid_out = elide_transposes(graph)
    laid_out.verify()
    users = laid_out.users()
    by_name = {n.name: n for n in laid_out.nodes}
    strided = [n for n in laid_out.nodes if n.attr("layout") == STRIDED]
    assert len(strided) == TINY_LLAMA.num_layers
    for node in strided:
        assert [by_name[r].op for r in users[node.name]] == ["aten.clone.default"]
    # q, k and v permutes feed the rotary embedding's arithmetic: still materialised
    kept = [n for n in laid_out.nodes if n.op == "aten.permute.default"
            and n.attr("layout") is None]
    assert len(kept) == 3 * TINY_LLAMA.num_layers

    symbolic = tessera.compile(meta, (ids,), chip="trn2", fidelity="roofline", symbolic=True)
    ops = {op.node: op for op in symbolic.profile.ops}
    for node in strided:
        assert ops[node.name].priced_as == PriceKind.VIEW and ops[node.name].time_s == 0
        assert ops[users[node.name][0]].priced_as == PriceKind.COPY
    # so the symbolic prediction equals the one made with real tensors: one copy each way
    real = tessera.compile(build_model(TINY_LLAMA), (ids,), chip="trn2", fidelity="roofline")
    assert symbolic.profile.total_s == pytest.approx(real.profile.total_s, rel=1e-9)


class _HfLogits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hugging_face_rmsnorm_is_recognised_and_fused(dtype) -> None:
    import transformers

    import tessera
    from tessera.compiler.passes.patterns import recognise_rms_norm
    config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = _HfLogits(transformers.LlamaForCausalLM(config).to(dtype).eval())
    ids = torch.randint(0, 128, (1, 8))
    graph = dead_code(fold_constants(to_graph(export(model, (ids,)))))
    assert sum(n.op == "aten.rsqrt.default" for n in graph.nodes) == 2 * 2 + 1
    found = dead_code(recognise_rms_norm(graph))
    found.verify()
    assert sum(n.op == "aten.rms_norm.default" for n in found.nodes) == 2 * 2 + 1
    assert not any(n.op in ("aten.rsqrt.default", "aten.pow.Tensor_Scalar")
                   for n in found.nodes)
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    kernels = [k for op in compiled.profile.ops for k in op.kernels]
    # the first input norm reads the embedding; the other four follow a residual add
    assert kernels.count("rmsnorm") == 1 and kernels.count("add_rmsnorm") == 4
    # its rotary embedding (sliced halves, tables from a cat of the frequencies) too
    assert sum(op.kernels.count("rope") for op in compiled.profile.ops) == 2 * 2
    with torch.no_grad():
        want = model(ids).float()
    got = compiled(ids).float()
    tolerance = 1e-4 if dtype == torch.float32 else 0.1
    assert (got - want).abs().max().item() < tolerance


def test_rotary_embedding_is_recognised_in_every_form() -> None:
    import tessera
    from tessera.compiler.passes.patterns import recognise_rope
    from tessera.models.llama import LlamaModel
    from tessera.models.llama_cache import LlamaDecode, LlamaPrefill

    layers = TINY_LLAMA.num_layers
    model = build_model(TINY_LLAMA)
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (2, 16))
    graph = dead_code(to_graph(export(model, (ids,))))
    found = recognise_rope(graph)
    found.verify()
    assert sum(n.op == "rope" for n in found.nodes) == 2 * layers  # q and k per layer
    # real weights: values as eager; symbolic: the same price
    compiled = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    assert (compiled(ids) - model(ids)).abs().max() < 1e-4
    with torch.device("meta"):
        meta = LlamaModel(TINY_LLAMA)
    symbolic = tessera.compile(meta, (ids,), chip="trn2", fidelity="roofline", symbolic=True)
    assert sum(n.op == "rope" for n in symbolic.graph.nodes) == 2 * layers
    assert symbolic.profile.total_s == pytest.approx(compiled.profile.total_s, rel=1e-9)
    # the decode graph: one position, angles computed in the graph from it
    prefill, decode = LlamaPrefill(model, 24), LlamaDecode(model, 24)
    with torch.no_grad():
        caches = prefill(ids)[1:]
    args = (ids[:, :1], torch.tensor([16]), *caches)
    step = tessera.compile(decode, args, chip="trn2", fidelity="roofline")
    assert sum(n.op == "rope" for n in step.graph.nodes) == 2 * layers
    got, want = step(*args), decode(*args)
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want, strict=True))


def test_a_rotation_with_other_tables_is_not_taken_for_rope() -> None:
    from tessera.compiler.passes.patterns import recognise_rope

    class NotRope(torch.nn.Module):
        def forward(self, x, cos, sin):  # tables are inputs: their halves are unknown
            x1, x2 = x.chunk(2, dim=-1)
            return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    x = torch.randn(1, 2, 8, 16)
    table = torch.randn(8, 16)
    graph = dead_code(to_graph(export(NotRope(), (x, table, table))))
    assert recognise_rope(graph) is graph
