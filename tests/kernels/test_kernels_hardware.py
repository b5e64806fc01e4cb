"""Library kernels size their tiles from the hardware they are traced for, not constants."""

from __future__ import annotations

import numpy as np
import pytest

from tessera import hw, kernels, nki
from tessera.kernels.hardware import moving_fmax, pmax, psum_bank_bytes, stationary_fmax
from tessera.nki.dtypes import to_dtype

# a what-if NeuronCore with half the partitions (and a stationary operand to match)
HALF = hw.with_overrides(hw.load_chip("trn2"), {
    "core.tile.pmax": 64, "core.tile.stationary_fmax": 64,
    "core.access.partition_start_rules": [{"max_partitions": 32, "starts": [0, 32]},
                                          {"max_partitions": 64, "starts": [0]}]})
CASES = {
    "silu": {"rows": 256, "cols": 512},
    "rmsnorm": {"rows": 256, "cols": 512},
    "layernorm": {"rows": 130, "cols": 256},
    "softmax": {"rows": 200, "cols": 512},
    "matmul": {"M": 256, "K": 384, "N": 512},
    "transpose": {"rows": 192, "cols": 320},
    "embedding": {"tokens": 200, "vocab": 300, "dim": 64},
}


def test_helpers_read_the_preset_outside_a_kernel() -> None:
    core = hw.load_chip(nki.default_chip()).core
    assert pmax() == core.tile.pmax and stationary_fmax() == core.tile.stationary_fmax
    assert moving_fmax() == core.tile.moving_fmax
    assert psum_bank_bytes() == core.psum.bank_bytes_per_partition


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_fit_a_core_with_64_partitions(name: str) -> None:
    defn = kernels.get(name)
    inputs = defn.make_inputs(CASES[name], to_dtype("float32"), np.random.default_rng(0))
    out = nki.simulate(defn.kernel, chip=HALF)(*inputs)
    np.testing.assert_allclose(np.asarray(out, np.float32), defn.reference(*inputs),
                               rtol=1e-4, atol=1e-4)
    trace = nki.trace(defn.kernel, symbolic=True, chip=HALF)(
        *(nki.TensorSpec(a.shape, a.dtype) for a in inputs))
    assert max(i.partitions for i in trace.instructions) == 64
