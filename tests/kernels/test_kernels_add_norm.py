"""The fused residual add + RMSNorm kernel against numpy, and against the two kernels it
replaces."""

from __future__ import annotations

import numpy as np
import pytest

from tessera import cost, nki
from tessera.kernels import get

RNG = np.random.default_rng(11)
TOL = {"float32": (1e-5, 1e-6), "bfloat16": (2e-2, 1e-2)}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rows, cols", [(1, 7), (129, 1000), (300, 256)])
def test_sum_and_norm_match_numpy(dtype: str, rows: int, cols: int) -> None:
    kd = get("add_rmsnorm")
    inputs = kd.make_inputs({"rows": rows, "cols": cols}, dtype, RNG)
    h, y = nki.simulate(kd.kernel)(*inputs)
    want_h, want_y = kd.reference(*inputs)
    # the sum is rounded to the dtype exactly as an add kernel rounds it
    assert np.array_equal(h.astype(np.float64), want_h)
    rtol, atol = TOL[dtype]
    assert np.allclose(y.astype(np.float64), want_y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_fused_is_faster_than_add_then_norm(chip: str) -> None:
    shapes = {"rows": 1024, "cols": 2048}
    fused = cost.estimate("add_rmsnorm", shapes, "bfloat16", chip, "simulated")
    apart = (cost.estimate("residual_add", shapes, "bfloat16", chip, "simulated").time_s
             + cost.estimate("rmsnorm", shapes, "bfloat16", chip, "simulated").time_s)
    # four row volumes of HBM traffic instead of five, and memory-bound
    assert fused.time_s < 0.9 * apart
    assert fused.hbm_bytes == pytest.approx((4 * 1024 + 1) * 2048 * 2)
