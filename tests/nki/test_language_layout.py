"""nl tile-movement helpers (tessera/nki/language_layout.py): expand_dims, broadcast_to,
transpose, matmul and load_transpose2d against numpy, the instructions each records, and
one error per documented constraint at the caller's line."""

from __future__ import annotations

import numpy as np
import pytest
from compose_harness import BF16, Op, body_ops, evaluate, expect_error, randn

import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import (
    BufferKindError,
    KernelUsageError,
    MatmulShapeError,
    PartitionError,
    ShapeMismatchError,
)


def test_expand_dims_is_a_view_without_instructions() -> None:
    def body(t):
        v = nl.expand_dims(t, 1)
        assert v.shape == (8, 1, 6)
        assert nl.expand_dims(t, (1, -1)).shape == (8, 1, 6, 1)
        assert nl.expand_dims(t, -1).shape == (8, 6, 1)
        return nl.copy(v)
    x = randn(8, 6)
    got, trace = evaluate(body, x)
    np.testing.assert_array_equal(got, x[:, None, :])
    assert body_ops(trace, body) == [Op.ACTIVATION]  # the copy only


@pytest.mark.parametrize("src, shape, ops", [
    ((16, 1), (16, 24), [Op.TENSOR_COPY]),
    ((1, 24), (16, 24), [Op.DMA_COPY]),
    ((1, 1, 3), (16, 5, 3), [Op.DMA_COPY]),
    ((16, 24), (16, 24), []),
])
def test_broadcast_to(src, shape, ops) -> None:
    def body(t):
        return nl.broadcast_to(t, shape)
    x = randn(*src)
    got, trace = evaluate(body, x)
    np.testing.assert_array_equal(got, np.broadcast_to(x, shape))
    assert body_ops(trace, body) == ops


def test_broadcast_to_same_shape_returns_x_or_a_cast_copy_and_reads_psum() -> None:
    def body(t):
        assert nl.broadcast_to(t, t.shape) is t
        return nl.broadcast_to(t, (8, 4), dtype=nl.bfloat16)
    x = randn(8, 4)
    got, _ = evaluate(body, x)
    np.testing.assert_array_equal(got, x.astype(BF16))
    got, _ = evaluate(lambda t: nl.broadcast_to(t, (32, 4)), randn(1, 4), psum=(0,))
    assert got.shape == (32, 4)


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_transpose_into_psum(dtype) -> None:
    def body(t):
        r = nl.transpose(t)
        assert r.buffer is nl.psum and r.dtype == t.dtype
        return r
    x = randn(96, 128, dtype=dtype)
    got, trace = evaluate(body, x)
    np.testing.assert_array_equal(got, x.T)
    assert body_ops(trace, body) == [Op.NC_TRANSPOSE]
    assert [i.engine for i in trace.instructions if i.opcode is Op.NC_TRANSPOSE] == [
        nki.Engine.TENSOR]


def test_transpose_dtype_and_psum_input() -> None:
    x = randn(8, 16)
    got, _ = evaluate(lambda t: nl.transpose(t, dtype=nl.bfloat16), x, psum=(0,))
    np.testing.assert_array_equal(got, x.T.astype(BF16))


def test_matmul_page_example_identity_t_at_ones() -> None:
    def body(y):
        x = nl.shared_identity_matrix(n=128, dtype=nl.float32)
        return nl.matmul(x, y, transpose_x=True)
    got, trace = evaluate(body, np.ones((128, 128), np.float32))
    np.testing.assert_array_equal(got, np.ones((128, 128)))
    assert body_ops(trace, body)[-1:] == [Op.NC_MATMUL]


@pytest.mark.parametrize("transpose_x", [False, True])
def test_matmul_matches_numpy(transpose_x) -> None:
    def body(a, b):
        r = nl.matmul(a, b, transpose_x=transpose_x)
        assert r.buffer is nl.psum and r.dtype == nl.float32
        return r
    x, y = randn(64, 96, dtype=BF16), randn(96 if not transpose_x else 64, 200, dtype=BF16)
    got, trace = evaluate(body, x, y)
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    np.testing.assert_allclose(got, (xf.T if transpose_x else xf) @ yf, rtol=1e-5, atol=1e-4)
    want = [Op.NC_MATMUL] if transpose_x else [Op.NC_TRANSPOSE, Op.TENSOR_COPY, Op.NC_MATMUL]
    assert body_ops(trace, body) == want


@pytest.mark.parametrize("dtype, out, op", [(np.float32, None, Op.DMA_TRANSPOSE),
                                            (BF16, None, Op.DMA_TRANSPOSE),
                                            (np.int8, None, Op.DMA_COPY),
                                            (np.float32, nl.bfloat16, Op.DMA_TRANSPOSE)])
def test_load_transpose2d(dtype, out, op) -> None:
    def kernel(src):
        t = nl.load_transpose2d(src, dtype=out)
        assert t.buffer is nl.sbuf
        res = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        nl.store(res, t)
        return res
    x = (randn(200, 100) * 20).astype(dtype)
    trace = nki.trace(kernel)(x)
    want = x.T if out is None else x.T.astype(BF16)
    np.testing.assert_array_equal(np.asarray(trace.outputs), want)
    assert trace.instructions[0].opcode is op


# ------------------------------------------------------------------ constraints
X2 = randn(8, 16)


@pytest.mark.parametrize("body, arrays, match", [
    (lambda t: nl.expand_dims(t, 0), (X2,), "partition dimension"),
    (lambda t: nl.expand_dims(t, 4), (X2,), "out of range"),
    (lambda t: nl.expand_dims(t, (1, 1)), (X2,), "repeats"),
    (lambda t: nl.broadcast_to(t, 8), (X2,), "tuple of ints"),
])
def test_usage_errors(body, arrays, match) -> None:
    expect_error(KernelUsageError, body, *arrays, match=match)


@pytest.mark.parametrize("exc, body, arrays, match", [
    (ShapeMismatchError, lambda t: nl.broadcast_to(t, (8, 16)), (randn(8, 3),),
     "cannot broadcast"),
    (ShapeMismatchError, lambda t: nl.broadcast_to(t, (8, 16, 1)), (X2,), "rank"),
    (ShapeMismatchError, lambda t: nl.transpose(nl.expand_dims(t, 1)), (X2,), "2-D"),
    (ShapeMismatchError, lambda x, y: nl.matmul(x, y), (randn(8, 4, 2), X2), "2-D"),
    (MatmulShapeError, lambda x, y: nl.matmul(x, y), (randn(8, 16), randn(8, 4)), "contracts"),
    (MatmulShapeError, lambda x, y: nl.matmul(x, y, transpose_x=True),
     (randn(8, 129), randn(8, 4)), "free elements"),
    (MatmulShapeError, lambda x, y: nl.matmul(x, y, transpose_x=True),
     (randn(8, 16), randn(8, 513)), "513 free elements"),
    (MatmulShapeError, lambda x: nl.transpose(x), (randn(8, 200),), "at most 128x128"),
    (PartitionError, lambda x: nl.broadcast_to(x, (129, 16)), (randn(1, 16),), "pmax"),
])
def test_shape_and_engine_limit_errors(exc, body, arrays, match) -> None:
    expect_error(exc, body, *arrays, match=match)


def test_memory_errors() -> None:
    with pytest.raises(BufferKindError, match="nl.matmul: x .* must be in sbuf"):
        evaluate(lambda x, y: nl.matmul(x, y), randn(16, 16), randn(16, 8), psum=(0,))

    def sbuf_kernel(a):
        nl.load_transpose2d(nl.load(a))

    with pytest.raises(BufferKindError, match="must be an HBM tensor"):
        nki.simulate(sbuf_kernel)(X2)

    def hbm_kernel(a):
        nl.transpose(a)

    with pytest.raises(BufferKindError, match="nl.transpose: x .* must be in sbuf or psum"):
        nki.simulate(hbm_kernel)(X2)

    def tall_kernel(a):
        nl.load_transpose2d(a)

    with pytest.raises(PartitionError, match="pmax"):
        nki.simulate(tall_kernel)(randn(4, 200))
