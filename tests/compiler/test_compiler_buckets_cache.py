"""Buckets (one graph per sequence length, calls padded) and the on-disk graph cache."""

from __future__ import annotations

import pytest
import torch

import tessera
from tessera.compiler import CompileError, graph_cache
from tessera.compiler.buckets import BucketedModel
from tessera.models import TINY_BERT, TINY_LLAMA, build_model


def test_a_call_runs_the_next_bucket_and_reports_the_padding() -> None:
    model = build_model(TINY_LLAMA)
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (1, 16),
                        generator=torch.Generator().manual_seed(0))
    bucketed = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline",
                               buckets=[16, 32, 64])
    assert isinstance(bucketed, BucketedModel) and bucketed.buckets == (16, 32, 64)
    short = ids[:, :20] if ids.shape[1] >= 20 else torch.cat([ids, ids[:, :4]], dim=1)
    with torch.no_grad():
        out, ref = bucketed(short), model(short)
    assert out.shape == ref.shape == (1, 20, TINY_LLAMA.vocab_size)
    assert (out - ref).abs().max().item() <= 1e-4  # causal: padding at the end is inert
    assert bucketed.bucket_for(20) == 32 and bucketed.padding_waste(20) == pytest.approx(0.375)
    assert bucketed.profile(20) is bucketed.models[32].profile
    times = [bucketed.models[b].profile.total_s for b in bucketed.buckets]
    assert times == sorted(times)  # longer buckets take longer
    with pytest.raises(CompileError, match="longer than the largest bucket \\(64\\)"):
        bucketed(torch.zeros(1, 65, dtype=torch.int64))


def test_an_encoder_with_its_mask_padded_matches_eager() -> None:
    model = build_model(TINY_BERT)
    ids = torch.randint(0, TINY_BERT.vocab_size, (2, 12),
                        generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 12, dtype=torch.int64)
    bucketed = tessera.compile(model, (ids, mask), chip="trn1", fidelity="roofline",
                               buckets=[16])
    with torch.no_grad():
        assert (bucketed(ids, mask) - model(ids, mask)).abs().max().item() <= 1e-4


def test_a_second_compile_of_the_same_model_reuses_the_priced_graph(monkeypatch) -> None:
    model = build_model(TINY_LLAMA)
    ids = torch.randint(0, TINY_LLAMA.vocab_size, (1, 24))
    first = tessera.compile(model, (ids,), chip="trn1", fidelity="roofline")
    stored = []
    monkeypatch.setattr(graph_cache, "store", lambda key, ops: stored.append(key))
    second = tessera.compile(model, (ids,), chip="trn1", fidelity="roofline")
    assert not stored  # found, not priced again
    assert second.profile.ops == first.profile.ops
    other_chip = tessera.compile(model, (ids,), chip="trn2", fidelity="roofline")
    assert stored  # another chip is another entry
    assert other_chip.profile.total_s != first.profile.total_s
