"""`nki.tensor` trace-time tensors (identity/zeros/arange) feeding `nl.shared_constant`, and
`nl.static_cast` on host data, against numpy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import ntensor


def test_trace_time_tensors_match_numpy():
    np.testing.assert_array_equal(ntensor.identity(4, nl.int8), np.eye(4, dtype=np.int8))
    assert ntensor.identity(3, nl.bfloat16).dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(ntensor.zeros((2, 3), nl.float32), np.zeros((2, 3)))
    np.testing.assert_array_equal(ntensor.arange(2, 11, 3), [2, 5, 8])
    assert ntensor.arange(4).dtype == np.int32
    assert nki.tensor is ntensor  # `import nki; nki.tensor.identity(...)` as in kernels


@pytest.mark.parametrize(("call", "match"), [
    (lambda: ntensor.identity(-1), "n must be a non-negative int"),
    (lambda: ntensor.zeros((2, 1.5)), "each dimension"),
    (lambda: ntensor.arange(0, 4, 0), "step must not be 0"),
    (lambda: ntensor.identity(2, "complex64"), "unknown dtype"),
])
def test_trace_time_tensor_errors(call, match):
    with pytest.raises(nki.KernelUsageError, match=match):
        call()


def test_shared_constant_of_an_identity_feeds_a_transpose_matmul():
    """The shared_constant page's pattern: an int8 identity cast to the matmul dtype."""
    @nki.jit
    def transpose(x):
        ident = nl.shared_constant(ntensor.identity(64, dtype=nl.int8), dtype=nl.float32)
        eye = nl.ndarray((64, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=eye, src=ident)
        t = nl.ndarray((64, 32), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        ps = nl.ndarray((32, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, t, eye)  # t^T @ I
        res = nl.ndarray((32, 64), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(res, ps)
        out = nl.ndarray((32, 64), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=res)
        return out

    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(transpose)(x), x.T, rtol=1e-6)


def test_static_cast_rounds_host_data_to_the_dtype():
    x = np.array([1.0009765625, 2.5, -3.7], np.float64)
    np.testing.assert_array_equal(nl.static_cast(x, nl.bfloat16),
                                  x.astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(nl.static_cast(x, nl.int32), [1, 2, -4])  # nearest even
    assert nl.static_cast([1, 2], np.float32).dtype == np.float32


def test_static_cast_refuses_a_kernel_tile():
    @nki.jit
    def kernel(x):
        t = nl.ndarray((4, 4), nl.float32, buffer=nl.sbuf)
        nl.static_cast(t, nl.bfloat16)
        return x

    with pytest.raises(nki.KernelUsageError, match="casts host arrays"):
        nki.simulate(kernel)(np.zeros((4, 4), np.float32))
