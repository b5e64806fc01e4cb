"""The top-k router example kernels (examples/kernels/topk_router.py: max8 and
nc_find_index8 per 128-token tile) against their numpy references, ties, and the kernel's
own argument checks. The instructions themselves: tests/nki/test_isa_topk.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import NkiError
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Engine, Opcode

RNG = np.random.default_rng(18)
ROUTER = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "topk_router.py"


@pytest.fixture(scope="module")
def router():
    return load_kernel_file(ROUTER)


@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16], ids=lambda d: d.name)
@pytest.mark.parametrize(("tokens", "experts", "k"), [(200, 64, 8), (128, 16, 3), (5, 8, 8)])
def test_topk_router_matches_numpy(router, dtype, tokens, experts, k):
    (logits,) = router.module.example_inputs(tokens=tokens, experts=experts, dtype=dtype)
    for name in router.kernels:
        res = nki.trace(router.kernel(name))(logits, k=k)
        values, indices = res.outputs
        want_values, want_indices = router.reference((logits, k), name)
        assert indices.dtype == np.uint32 and values.dtype == dtype.storage
        np.testing.assert_array_equal(indices, want_indices)
        tol = 1e-6 if dtype is nl.float32 else 1e-2
        np.testing.assert_allclose(values.astype(np.float64), want_values, atol=tol)
        ops = {(i.opcode, i.engine) for i in res.instructions}
        assert {(Opcode.MAX8, Engine.VECTOR), (Opcode.NC_FIND_INDEX8, Engine.VECTOR)} <= ops
        assert sim.schedule(res, "trn2").total_s > 0


def test_topk_router_breaks_ties_by_lowest_expert(router):
    logits = RNG.integers(-3, 4, (130, 32)).astype(np.float32)  # many equal logits per row
    res = nki.trace(router.kernel("topk_router"))(logits)
    want_values, want_indices = router.reference((logits,))
    np.testing.assert_array_equal(res.outputs[1], want_indices)
    np.testing.assert_array_equal(res.outputs[0], want_values)


def test_topk_router_rejects_k_above_8(router):
    (logits,) = router.module.example_inputs(tokens=8, experts=16)
    with pytest.raises(AssertionError, match="k must be"):
        nki.simulate(router.kernel("topk_router"))(logits, k=9)


def test_topk_router_needs_at_least_8_experts(router):
    logits = np.zeros((4, 6), np.float32)
    with pytest.raises(NkiError, match="between 8 and 16384"):
        nki.simulate(router.kernel("topk_router"))(logits)
