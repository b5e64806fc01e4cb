"""The static-KV-cache prefill and decode modules against full recomputation, and the
GGUF helpers of the pretrained loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tessera
from tessera.compiler.graph import NodeKind
from tessera.models import TINY_LLAMA, build_model
from tessera.models.llama_cache import LlamaDecode, LlamaPrefill, greedy_generate
from tessera.models.pretrained import PretrainedModelError, gguf_to_hf_name, unpermute_qk


@pytest.fixture(scope="module")
def model():
    return build_model(TINY_LLAMA, seed=3)


def _ids(n: int) -> torch.Tensor:
    return torch.randint(0, TINY_LLAMA.vocab_size, (2, n),
                         generator=torch.Generator().manual_seed(n))


def test_greedy_with_the_cache_equals_recomputing_the_whole_sequence(model) -> None:
    ids = _ids(6)
    got = greedy_generate(LlamaPrefill(model, 16), LlamaDecode(model, 16), ids, 10)
    seq = ids
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat((seq, model(seq)[:, -1:].argmax(dim=-1)), dim=1)
    assert torch.equal(got, seq[:, 6:])


def test_prefill_fills_the_prompt_slots_only_and_decode_one_more(model) -> None:
    ids = _ids(5)
    prefill, decode = LlamaPrefill(model, 8), LlamaDecode(model, 8)
    with torch.no_grad():
        logits, *caches = prefill(ids)
        assert torch.allclose(logits, model(ids), atol=1e-5)
        layers = TINY_LLAMA.num_layers
        assert len(caches) == 2 * layers
        for cache in caches:
            assert cache.shape == (2, TINY_LLAMA.num_kv_heads, 8, TINY_LLAMA.head_dim)
            assert cache[:, :, 5:].abs().max() == 0 and cache[:, :, :5].abs().max() > 0
        step, *after = decode(ids[:, :1], torch.tensor([5]), *caches)
        for before, now in zip(caches, after, strict=True):
            assert torch.equal(before[:, :, :5], now[:, :, :5])
            assert now[:, :, 5].abs().max() > 0 and now[:, :, 6:].abs().max() == 0
        # the new token at position 5 sees what a full forward over 6 tokens sees
        full = model(torch.cat((ids, ids[:, :1]), dim=1))[:, -1:]
        assert torch.allclose(step, full, atol=1e-5)


def test_bad_cache_counts_and_lengths_are_named(model) -> None:
    with pytest.raises(ValueError, match="max_len: 0"):
        LlamaPrefill(model, 0)
    with pytest.raises(ValueError, match="exceed max_len 4"):
        LlamaPrefill(model, 4)(_ids(5))
    with pytest.raises(ValueError, match=r"expected 4 caches .* got 1"):
        LlamaDecode(model, 8)(_ids(1), torch.tensor([0]), torch.zeros(1))


def test_the_compiled_decode_graph_writes_one_slot_per_cache(model) -> None:
    ids = _ids(5)
    prefill, decode = LlamaPrefill(model, 64), LlamaDecode(model, 64)
    with torch.no_grad():
        caches = prefill(ids)[1:]
    args = (ids[:, :1], torch.tensor([5]), *caches)
    compiled = tessera.compile(decode, args, chip="trn2", fidelity="roofline")
    want = decode(*args)
    got = compiled(*args)
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want, strict=True))
    scatters = [n for n in compiled.graph.nodes if n.kind is NodeKind.SCATTER]
    assert len(scatters) == 2 * TINY_LLAMA.num_layers
    cache_bytes = caches[0].numel() * 4
    slot_bytes = cache_bytes // 64
    for node in scatters:
        cost = next(op for op in compiled.profile.ops if op.node == node.name)
        # the update and its index, read and written: about two slots, not the cache
        assert 2 * slot_bytes <= cost.hbm_bytes < 3 * slot_bytes


def test_gguf_names_and_the_qk_permutation() -> None:
    assert gguf_to_hf_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert gguf_to_hf_name("token_embd.weight") == "model.embed_tokens.weight"
    with pytest.raises(PretrainedModelError, match="blk.0.nope.weight"):
        gguf_to_hf_name("blk.0.nope.weight")
    heads, head_dim, hidden = 3, 8, 5
    weight = np.arange(heads * head_dim * hidden, dtype=np.float32).reshape(-1, hidden)
    # llama.cpp's converter: per head, rows [half0, half1] interleaved as pairs
    permuted = (weight.reshape(heads, 2, head_dim // 2, hidden).swapaxes(1, 2)
                .reshape(weight.shape))
    assert not np.array_equal(permuted, weight)
    assert np.array_equal(unpermute_qk(permuted, heads), weight)
