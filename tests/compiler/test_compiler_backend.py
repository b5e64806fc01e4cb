"""torch.compile(model, backend="tessera"): found by name, runs on the device model."""

from __future__ import annotations

import pytest
import torch

from tessera.compiler.backend import clear_compiled_graphs, compiled_graphs
from tessera.models import TINY_GPT2, build_model


def test_the_backend_is_registered_by_entry_point() -> None:
    from torch._dynamo.backends.registry import list_backends

    assert "tessera" in list_backends(exclude_tags=())


def test_torch_compile_runs_the_model_and_keeps_its_profile() -> None:
    torch._dynamo.reset()
    clear_compiled_graphs()
    model = build_model(TINY_GPT2)
    ids = torch.randint(0, TINY_GPT2.vocab_size, (2, 16),
                        generator=torch.Generator().manual_seed(0))
    fast = torch.compile(model, backend="tessera", dynamic=False,
                         options={"chip": "trn1", "fidelity": "roofline"})
    with torch.no_grad():
        out, ref = fast(ids), model(ids)
    assert (out - ref).abs().max().item() <= 1e-4
    (compiled,) = compiled_graphs()
    assert compiled.profile.chip == "trn1" and compiled.profile.total_s > 0
    assert {"h.0", "h.1"} <= {layer.module for layer in compiled.profile.by_module(2)}


def test_unknown_options_are_named() -> None:
    torch._dynamo.reset()
    model = torch.nn.Linear(4, 4)
    fast = torch.compile(model, backend="tessera", options={"chp": "trn1"})
    with pytest.raises(Exception, match="unknown tessera backend option"):
        fast(torch.randn(2, 4))
