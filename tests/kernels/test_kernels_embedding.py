"""Embedding gather kernel against numpy indexing."""

from __future__ import annotations

import numpy as np
import pytest

from tessera import nki, sim
from tessera.kernels import Op, get
from tessera.nki import language as nl

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("tokens", [1, 127, 129, 300])
@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16])
def test_embedding_matches_numpy(tokens: int, dtype) -> None:
    defn = get(Op.EMBEDDING)
    ids, table = defn.make_inputs({"tokens": tokens, "vocab": 97, "dim": 40}, dtype, RNG)
    out = nki.simulate(defn.kernel, chip="trn1")(ids, table)
    # a gather moves bits: exact in every dtype
    np.testing.assert_array_equal(out, table[ids[:, 0]])
    assert out.dtype == table.dtype


def test_embedding_rows_per_tile_and_profile() -> None:
    defn = get(Op.EMBEDDING)
    ids, table = defn.make_inputs({"tokens": 200, "vocab": 64, "dim": 16}, nl.float32, RNG)
    out = nki.simulate(defn.kernel)(ids, table, rows_per_tile=64)
    np.testing.assert_array_equal(out, table[ids[:, 0]])
    profile = sim.profile(defn.kernel, nki.TensorSpec((4096, 1), nl.int32),
                          nki.TensorSpec((32000, 2048), nl.bfloat16), chip="trn1",
                          symbolic=True)
    assert profile.total_s > 0
    assert profile.hbm_read_bytes >= 4096 * 2048 * 2
