"""The reference PyTorch models: parameter counts, causality, GQA, RoPE, padding, export."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tessera.models import (
    TINY_BERT,
    TINY_GPT2,
    TINY_LLAMA,
    Activation,
    ModelConfig,
    ModelConfigError,
    ModelFamily,
    build_model,
)
from tessera.models.bert import BertModel
from tessera.models.gpt2 import Gpt2Model
from tessera.models.llama import LlamaModel, apply_rope, rope_tables

TINY = {"tiny-llama": TINY_LLAMA, "tiny-gpt2": TINY_GPT2, "tiny-bert": TINY_BERT}
MID = {
    "mid-llama-tied": ModelConfig(
        family=ModelFamily.LLAMA, vocab_size=1000, hidden_size=256, num_layers=3, num_heads=8,
        num_kv_heads=2, intermediate_size=688, max_position_embeddings=512, norm_eps=1e-6,
        activation=Activation.SILU, rope_theta=500000.0, tie_word_embeddings=True),
    "mid-gpt2-untied": ModelConfig(
        family=ModelFamily.GPT2, vocab_size=1000, hidden_size=192, num_layers=3, num_heads=6,
        num_kv_heads=6, intermediate_size=500, max_position_embeddings=300, norm_eps=1e-5,
        activation=Activation.GELU, tie_word_embeddings=False),
    "mid-bert": ModelConfig(
        family=ModelFamily.BERT, vocab_size=1000, hidden_size=192, num_layers=3, num_heads=6,
        num_kv_heads=6, intermediate_size=500, max_position_embeddings=300, norm_eps=1e-12,
        activation=Activation.GELU_TANH, type_vocab_size=3),
}
DECODERS = {"tiny-llama": TINY_LLAMA, "tiny-gpt2": TINY_GPT2}


def _ids(config: ModelConfig, batch: int = 2, seq: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, seq), generator=generator)


@pytest.mark.parametrize("config", [*TINY.values(), *MID.values()], ids=[*TINY, *MID])
def test_num_parameters_is_exact(config: ModelConfig) -> None:
    model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters()


@pytest.mark.parametrize("name", list(TINY))
def test_output_shapes_and_classes(name: str) -> None:
    config = TINY[name]
    model = build_model(config)
    expected_class = {ModelFamily.LLAMA: LlamaModel, ModelFamily.GPT2: Gpt2Model,
                      ModelFamily.BERT: BertModel}[config.family]
    assert type(model) is expected_class and not model.training
    with torch.no_grad():
        out = model(_ids(config))
    width = config.hidden_size if config.family is ModelFamily.BERT else config.vocab_size
    assert out.shape == (2, 12, width) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_tied_lm_head_shares_the_embedding() -> None:
    gpt2 = build_model(TINY_GPT2)
    assert gpt2.lm_head.weight is gpt2.wte.weight
    llama = build_model(TINY_LLAMA)
    assert llama.lm_head.weight is not llama.embed_tokens.weight


def test_weights_depend_on_the_seed_only() -> None:
    torch.manual_seed(123)  # the global RNG must not matter
    a = build_model(TINY_LLAMA, seed=7).state_dict()
    torch.manual_seed(456)
    b = build_model(TINY_LLAMA, seed=7).state_dict()
    c = build_model(TINY_LLAMA, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.self_attn.q_proj.weight"],
                           c["layers.0.self_attn.q_proj.weight"])
    assert torch.equal(a["norm.weight"], torch.ones(TINY_LLAMA.hidden_size))
    assert a["embed_tokens.weight"].std().item() == pytest.approx(0.02, rel=0.1)


def test_build_model_dtype() -> None:
    model = build_model(TINY_LLAMA, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    with torch.no_grad():
        logits = model(_ids(TINY_LLAMA))
    assert logits.dtype == torch.bfloat16
    reference = build_model(TINY_LLAMA)(_ids(TINY_LLAMA)).detach()
    assert torch.allclose(logits.float(), reference, atol=0.05)


@pytest.mark.parametrize("model_class", [LlamaModel, Gpt2Model, BertModel])
def test_models_refuse_another_family(model_class: type) -> None:
    other = TINY_BERT if model_class is not BertModel else TINY_GPT2
    with pytest.raises(ModelConfigError, match="^family:"):
        model_class(other)


@pytest.mark.parametrize("name", list(TINY))
def test_sequences_longer_than_max_positions_are_refused(name: str) -> None:
    config = TINY[name]
    with pytest.raises(ValueError, match="max_position_embeddings"):
        build_model(config)(_ids(config, batch=1, seq=config.max_position_embeddings + 1))


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoders_are_causal(name: str) -> None:
    config = DECODERS[name]
    model = build_model(config)
    ids = _ids(config)
    changed = ids.clone()
    t = 5
    changed[:, t + 1:] = (changed[:, t + 1:] + 1) % config.vocab_size
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert torch.equal(before[:, : t + 1], after[:, : t + 1])
    assert not torch.allclose(before[:, t + 1:], after[:, t + 1:])


def _repeat_kv_heads(weight: torch.Tensor, config: ModelConfig, interleave: bool) -> torch.Tensor:
    """[nkv * hd, H] -> [nh * hd, H]: each key/value head copied for its query heads."""
    group = config.num_heads // config.num_kv_heads
    heads = weight.view(config.num_kv_heads, config.head_dim, config.hidden_size)
    repeated = (heads.repeat_interleave(group, dim=0) if interleave
                else heads.repeat(group, 1, 1))
    return repeated.reshape(config.num_heads * config.head_dim, config.hidden_size)


def test_gqa_equals_mha_with_repeated_kv_heads() -> None:
    assert TINY_LLAMA.num_kv_heads < TINY_LLAMA.num_heads
    gqa = build_model(TINY_LLAMA)
    mha_config = dataclasses.replace(TINY_LLAMA, num_kv_heads=TINY_LLAMA.num_heads)
    ids = _ids(TINY_LLAMA)
    with torch.no_grad():
        expected = gqa(ids)
        results = {}
        for interleave in (True, False):
            state = {k: (_repeat_kv_heads(v, TINY_LLAMA, interleave)
                         if k.endswith(("k_proj.weight", "v_proj.weight")) else v)
                     for k, v in gqa.state_dict().items()}
            mha = build_model(mha_config)
            mha.load_state_dict(state)
            results[interleave] = mha(ids)
    # query head i reads key/value head i // group; the other grouping must differ
    torch.testing.assert_close(results[True], expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(results[False], expected, atol=1e-3)


def test_rope_scores_depend_on_relative_position_only() -> None:
    head_dim, theta = 16, 10000.0
    cos, sin = rope_tables(40, head_dim, theta)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, head_dim, generator=generator)
    q_all = apply_rope(q.expand(40, head_dim), cos, sin)  # q placed at every position
    k_all = apply_rope(k.expand(40, head_dim), cos, sin)
    offset = 7
    scores = (q_all[offset:] * k_all[:-offset]).sum(-1)  # query at p + 7, key at p
    torch.testing.assert_close(scores, scores[0].expand_as(scores), rtol=1e-4, atol=1e-4)
    assert torch.allclose(q_all.norm(dim=-1), q.norm().expand(40))  # a rotation
    assert torch.equal(q_all[0], q)  # position 0 is not rotated


def test_bert_padding_does_not_reach_real_tokens() -> None:
    model = build_model(TINY_BERT)
    ids = _ids(TINY_BERT, seq=10)
    mask = torch.ones_like(ids)
    mask[:, 6:] = 0  # positions 6.. are padding
    padded_differently = ids.clone()
    padded_differently[:, 6:] = (ids[:, 6:] + 3) % TINY_BERT.vocab_size
    with torch.no_grad():
        a = model(ids, attention_mask=mask)
        b = model(padded_differently, attention_mask=mask)
        unmasked_a, unmasked_b = model(ids), model(padded_differently)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(unmasked_a[:, :6], unmasked_b[:, :6], atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, attention_mask=torch.ones_like(ids)), unmasked_a)


def test_bert_token_types_and_pool() -> None:
    model = build_model(TINY_BERT)
    ids = _ids(TINY_BERT)
    with torch.no_grad():
        one_segment = model(ids)
        two_segments = model(ids, token_type_ids=(torch.arange(12) >= 6).long().expand(2, 12))
        pooled = model.pool(one_segment)
    assert torch.equal(one_segment, model(ids, token_type_ids=torch.zeros_like(ids)).detach())
    assert not torch.allclose(one_segment, two_segments)
    assert pooled.shape == (2, TINY_BERT.hidden_size) and pooled.abs().max() < 1


@pytest.mark.parametrize("name", list(TINY))
def test_export_matches_eager(name: str) -> None:
    config = TINY[name]
    model = build_model(config)
    ids = _ids(config, seq=8)
    exported = torch.export.export(model, (ids,), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(ids), model(ids), rtol=0, atol=0)
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert "aten.scaled_dot_product_attention.default" in targets
    norm = "aten.rms_norm.default" if name == "tiny-llama" else "aten.layer_norm.default"
    assert norm in targets


def test_export_bert_with_a_padding_mask() -> None:
    model = build_model(TINY_BERT)
    ids = _ids(TINY_BERT, seq=8)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    exported = torch.export.export(model, (ids,), {"attention_mask": mask}, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(ids, attention_mask=mask),
                                   model(ids, attention_mask=mask), rtol=0, atol=0)


def test_export_keeps_gqa_inside_sdpa() -> None:
    # planners read the grouped heads off the one SDPA node rather than a repeat of k/v
    exported = torch.export.export(build_model(TINY_LLAMA), (_ids(TINY_LLAMA, seq=8),),
                                   strict=False).run_decompositions({})
    sdpa = [n for n in exported.graph.nodes
            if n.target is torch.ops.aten.scaled_dot_product_attention.default]
    assert len(sdpa) == TINY_LLAMA.num_layers
    assert all(n.kwargs.get("enable_gqa") for n in sdpa)
    q_shape = sdpa[0].args[0].meta["val"].shape
    k_shape = sdpa[0].args[1].meta["val"].shape
    assert q_shape[1] == TINY_LLAMA.num_heads and k_shape[1] == TINY_LLAMA.num_kv_heads


def test_build_model_on_the_meta_device_has_shapes_and_no_values() -> None:
    meta = build_model(TINY_LLAMA, meta=True, dtype=torch.bfloat16)
    real = build_model(TINY_LLAMA)
    assert all(p.is_meta and p.dtype == torch.bfloat16 for p in meta.parameters())
    assert [p.shape for p in meta.parameters()] == [p.shape for p in real.parameters()]
