"""The RMSNorm + per-row FP8 quantisation example (examples/kernels/rmsnorm_fp8_quant.py):
bit-exact against its step-by-step float32 reference, and q * scale within fp8 rounding of
the float64 RMSNorm; edge rows (all zeros, one outlier) and the engines it runs on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Engine, Opcode

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "rmsnorm_fp8_quant.py"
KERNEL = "rmsnorm_fp8_quant"
FP8 = nl.float8_e4m3.storage


@pytest.fixture(scope="module")
def kfile():
    return load_kernel_file(EXAMPLE)


def _rmsnorm64(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    v = x.astype(np.float64)
    return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * gamma.astype(np.float64)


@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16], ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(256, 512), (130, 1000)])
def test_matches_the_reference_bit_for_bit(kfile, shape, dtype):
    x, gamma = kfile.module.example_inputs(shape=shape, dtype=dtype)
    res = nki.trace(kfile.kernel(KERNEL))(x, gamma)
    q, scale = res.outputs
    want_q, want_scale = kfile.reference((x, gamma))
    assert q.dtype == FP8 and q.shape == shape
    assert scale.dtype == np.float32 and scale.shape == (shape[0], 1)
    np.testing.assert_array_equal(q.view(np.uint8), want_q.view(np.uint8))
    np.testing.assert_array_equal(scale, want_scale)
    # each row's largest |value| lands on the format's largest finite value
    assert (np.max(np.abs(q.astype(np.float32)), axis=1) == 240.0).all()
    # dequantised: within half an fp8 step (3 mantissa bits) of the float64 RMSNorm, plus
    # the subnormal step (2^-9 of the scale) and float32 slack
    y = _rmsnorm64(x, gamma, kfile.module.EPS)
    err = np.abs(q.astype(np.float64) * scale - y)
    assert (err <= 2.0**-4 * np.abs(y) + 2.0**-10 * scale + 1e-5 * np.abs(y)).all()
    engines = {(i.opcode, i.engine) for i in res.instructions}
    assert {(Opcode.TENSOR_SCALAR_REDUCE, Engine.VECTOR), (Opcode.RECIPROCAL, Engine.VECTOR),
            (Opcode.ACTIVATION, Engine.SCALAR)} <= engines
    assert sim.schedule(res, "trn2").total_s > 0


def test_zero_and_outlier_rows(kfile):
    x, gamma = kfile.module.example_inputs(shape=(3, 64))
    x[0] = 0.0  # scale falls to the floor, codes stay 0
    x[1, 5] = 1e4  # one outlier: it takes 240, the rest of the row flushes towards 0
    q, scale = nki.simulate(kfile.kernel(KERNEL))(x, gamma)
    want_q, want_scale = kfile.reference((x, gamma))
    np.testing.assert_array_equal(q.view(np.uint8), want_q.view(np.uint8))
    np.testing.assert_array_equal(scale, want_scale)
    assert scale[0, 0] == np.float32(kfile.module.MIN_DEQUANT_SCALE) and not q[0].any()
    row = q[1].astype(np.float32)
    assert row[5] == 240.0 and np.abs(np.delete(row, 5)).max() < 1.0
