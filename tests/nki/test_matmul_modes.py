"""nc_matmul performance modes and hints: fp8 double_row (NC-v3+), flags in the stream."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki

RNG = np.random.default_rng(5)
E4M3 = ml_dtypes.float8_e4m3


def double_row_kernel(stat, mov):
    k, _, m = stat.shape
    n = mov.shape[2]
    out = nl.ndarray((m, n), nl.float32, buffer=nl.shared_hbm)
    s = nl.ndarray(stat.shape, stat.dtype, buffer=nl.sbuf)
    v = nl.ndarray(mov.shape, mov.dtype, buffer=nl.sbuf)
    nisa.dma_copy(s, stat)
    nisa.dma_copy(v, mov)
    ps = nl.ndarray((m, n), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, s, v, perf_mode=nisa.matmul_perf_mode.double_row)
    res = nl.ndarray((m, n), nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(res, ps)
    nisa.dma_copy(out, res)
    return out


def test_double_row_contracts_over_partitions_and_row_pairs() -> None:
    stat = RNG.uniform(-2, 2, (128, 2, 64)).astype(E4M3)
    mov = RNG.uniform(-2, 2, (128, 2, 256)).astype(E4M3)
    result = nki.trace(double_row_kernel, chip="trn2")(stat, mov)
    expected = np.einsum("prm,prn->mn", stat.astype(np.float64), mov.astype(np.float64))
    np.testing.assert_allclose(result.outputs, expected, rtol=1e-5, atol=1e-4)
    mm = next(i for i in result.instructions if i.opcode is nki.Opcode.NC_MATMUL)
    assert mm.attrs.contraction_rows == 2
    assert mm.attrs.stationary_free == 64 and mm.attrs.moving_free == 256
    assert mm.attrs.perf_mode == "double_row"


def test_double_row_rules() -> None:
    stat = RNG.uniform(-2, 2, (128, 2, 64)).astype(E4M3)
    mov = RNG.uniform(-2, 2, (128, 2, 256)).astype(E4M3)
    with pytest.raises(nki.EngineAccessError, match="NeuronCore-v3"):
        nki.simulate(double_row_kernel, chip="trn1")(stat, mov)
    with pytest.raises(nki.DTypeError, match="fp8"):
        nki.simulate(double_row_kernel, chip="trn2")(stat.astype(ml_dtypes.bfloat16),
                                                      mov.astype(ml_dtypes.bfloat16))
    with pytest.raises(nki.MatmulShapeError, match=r"\[K, 2, free\]"):
        nki.simulate(double_row_kernel, chip="trn2")(stat.reshape(128, 1, 128), mov)


def test_matmul_hints_are_recorded() -> None:
    def kernel(a):
        s = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(s, a)
        ps = nl.ndarray((128, 128), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, s, s, is_stationary_onezero=True, tile_position=(0, 0),
                       tile_size=(128, 128))

    result = nki.trace(kernel, chip="trn1")(np.eye(128, dtype=np.float32))
    mm = result.instructions[-1]
    assert mm.attrs.is_stationary_onezero is True
    assert mm.attrs.is_moving_onezero is False
    assert mm.attrs.tile_position == (0, 0) and mm.attrs.tile_size == (128, 128)
    assert mm.attrs.contraction_rows == 1
