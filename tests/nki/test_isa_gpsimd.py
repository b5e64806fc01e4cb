"""nisa.iota / affine_select (GpSimd engine) against numpy, plus a functional-vs-symbolic
stream check for a kernel mixing GpSimd, Scalar and DMA-transpose instructions."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from nki_harness import trace_tiles as run_tiles  # noqa: E402

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import (
    BufferKindError,
    EngineAccessError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

RNG = np.random.default_rng(11)
BF16 = ml_dtypes.bfloat16



def iota_ref(p, pattern, offset, mult):
    """Direct loop form of the documented pseudo code."""
    nums = [n for _, n in pattern]
    out = np.zeros((p, int(np.prod(nums))), dtype=np.int64)
    for c in range(p):
        for flat, idx in enumerate(np.ndindex(*nums)):
            steps = (s for s, _ in pattern)
            out[c, flat] = offset + c * mult + sum(i * s for i, s in zip(idx, steps, strict=True))
    return out


def test_iota_row_and_column_indices_int32():
    res = run_tiles(lambda o, i: (nisa.iota(o[0], [[1, 64]], offset=5, channel_multiplier=64),
                                  nisa.iota(o[1], [[0, 1]], channel_multiplier=1)),
                    out=[((128, 64), nl.int32), ((128, 1), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0], np.arange(128 * 64).reshape(128, 64) + 5)
    np.testing.assert_array_equal(res.outputs[1], np.arange(128).reshape(128, 1))
    insts = [i for i in res.instructions if i.opcode is Opcode.IOTA]
    assert [i.engine for i in insts] == [Engine.GPSIMD, Engine.GPSIMD]
    assert insts[0].attrs.offset == 5 and insts[0].attrs.channel_multiplier == 64


@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16, nl.int16])
def test_iota_multi_dim_pattern_casts_to_dst_dtype(dtype):
    pattern = [[100, 3], [-7, 4], [1, 5]]
    res = run_tiles(lambda o, i: nisa.iota(o[0], pattern, offset=-20, channel_multiplier=3),
                    out=[((96, 3, 4, 5), dtype)])
    ref = iota_ref(96, pattern, -20, 3).reshape(96, 3, 4, 5)
    assert res.outputs[0].dtype == dtype.storage
    np.testing.assert_array_equal(res.outputs[0], ref.astype(np.float32).astype(dtype.storage))


def test_iota_wraps_like_int32_arithmetic():
    top = 2 ** 31 - 2
    res = run_tiles(lambda o, i: nisa.iota(o[0], [[1, 4]], offset=top),
                    out=[((2, 4), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0][0], (np.arange(4) + top).astype(np.int32))
    assert res.outputs[0][0, 2] < 0


def _dt(np_dtype):
    return nl.bfloat16 if np_dtype == BF16 else nl.float32


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_affine_select_causal_mask_matches_tril(dtype):
    n = 128
    x = RNG.standard_normal((n, n)).astype(np.float32).astype(dtype)
    # keep (p, i) when p - i >= 0
    res = run_tiles(lambda o, i: nisa.affine_select(o[0], [[-1, n]], 1, i[0], -np.inf,
                                                    cmp_op=nl.greater_equal),
                    x, out=[((n, n), _dt(dtype))])
    ref = np.where(np.tril(np.ones((n, n), bool)), x, np.array(-np.inf, dtype=dtype))
    out = res.outputs[0]
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.view(np.uint8), ref.view(np.uint8))
    inst = [i for i in res.instructions if i.opcode is Opcode.AFFINE_SELECT][0]
    assert inst.engine is Engine.GPSIMD and inst.attrs.cmp_op == "greater_equal"


def test_affine_select_offset_partial_partitions_and_cast():
    # A 100 x 70 tile at global rows 200.., columns 230..: keep where row - col >= 0,
    # i.e. offset (200 - 230) + p - i >= 0; output narrowed to bf16.
    p, f, r0, c0 = 100, 70, 200, 230
    x = RNG.standard_normal((p, f)).astype(np.float32)
    res = run_tiles(lambda o, i: nisa.affine_select(o[0], [[-1, f]], 1, i[0], -30000.0,
                                                    cmp_op=nl.greater_equal, offset=r0 - c0),
                    x, out=[((p, f), nl.bfloat16)])
    rows = np.arange(r0, r0 + p)[:, None]
    cols = np.arange(c0, c0 + f)[None, :]
    ref = np.where(rows - cols >= 0, x, np.float32(-30000.0)).astype(BF16)
    np.testing.assert_array_equal(res.outputs[0], ref)
    assert 0 < int((rows - cols >= 0).sum()) < p * f  # the mask cuts through the tile


def test_affine_select_equal_picks_a_diagonal_on_ints():
    x = np.arange(32 * 32, dtype=np.int32).reshape(32, 32)
    res = run_tiles(lambda o, i: nisa.affine_select(o[0], [[1, 32]], -1, i[0], 0.0),
                    x, out=[((32, 32), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0], np.where(np.eye(32, dtype=bool), x, 0))


@pytest.mark.parametrize(("call", "error"), [
    (lambda o, i, ps: nisa.iota(ps, [[1, 8]]), EngineAccessError),
    (lambda o, i, ps: nisa.affine_select(o[0], [[1, 8]], 1, ps, 0.0), EngineAccessError),
    (lambda o, i, ps: nisa.iota(o[0], [[1, 9]]), ShapeMismatchError),
    (lambda o, i, ps: nisa.iota(o[0], [[1, 1]] * 5 + [[1, 8]]), KernelUsageError),
    (lambda o, i, ps: nisa.iota(o[0], [[1.5, 8]]), KernelUsageError),
    (lambda o, i, ps: nisa.affine_select(o[0], [[1, 8]], 1, i[0], 0.0, cmp_op=nl.add),
     KernelUsageError),
    (lambda o, i, ps: nisa.affine_select(o[0], [[1, 8]], 1, i[0], i[0]), KernelUsageError),
    (lambda o, i, ps: nisa.affine_select(o[1], [[1, 4]], 1, i[0], 0.0), ShapeMismatchError),
])
def test_gpsimd_rejects_illegal_operands(call, error):
    def body(o, i):
        ps = nl.ndarray((16, 8), nl.float32, buffer=nl.psum)
        call(o, i, ps)

    with pytest.raises(error):
        run_tiles(body, RNG.standard_normal((16, 8)).astype(np.float32),
                  out=[((16, 8), nl.float32), ((16, 4), nl.float32)])


def test_iota_into_hbm_is_a_buffer_error():
    @nki.jit
    def kernel(x):
        nisa.iota(x, [[1, 4]])
        return x

    with pytest.raises(BufferKindError):
        nki.simulate(kernel)(np.zeros((4, 4), np.float32))


@nki.jit
def masked_softmax_numerator(scores):
    """exp(causal_mask(scores^T) - rowmax-ish shift) with iota-built column indices."""
    n = scores.shape[0]
    t = nl.ndarray((n, n), scores.dtype, buffer=nl.sbuf)
    nisa.dma_transpose(t, scores)
    masked = nl.ndarray((n, n), nl.float32, buffer=nl.sbuf)
    nisa.affine_select(masked, [[-1, n]], 1, t, -1e30, cmp_op=nl.greater_equal)
    cols = nl.ndarray((n, 1), nl.float32, buffer=nl.sbuf)
    nisa.iota(cols, [[0, 1]], channel_multiplier=1)
    num = nl.ndarray((n, n), nl.float32, buffer=nl.sbuf)
    sums = nl.ndarray((n, 1), nl.float32, buffer=nl.sbuf)
    nisa.activation(num, nl.exp, masked, bias=cols, scale=0.5, reduce_op=nl.add,
                    reduce_res=sums, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    out = nl.ndarray((n, n + 1), nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(out[:, 0:n], num)
    nisa.dma_copy(out[:, n:n + 1], sums)
    return out


def test_functional_and_symbolic_streams_are_identical():
    n = 64
    x = RNG.standard_normal((n, n)).astype(np.float32)
    fun = nki.trace(masked_softmax_numerator)(x)
    sym = nki.trace(masked_softmax_numerator, symbolic=True)(nki.TensorSpec((n, n)))
    assert fun.instructions == sym.instructions
    assert [i.opcode for i in fun.instructions] == [
        Opcode.DMA_TRANSPOSE, Opcode.AFFINE_SELECT, Opcode.IOTA, Opcode.ACTIVATION,
        Opcode.DMA_COPY, Opcode.DMA_COPY]
    masked = np.where(np.tril(np.ones((n, n), bool)), x.T, np.float32(-1e30))
    num = np.exp(masked * np.float32(0.5) + np.arange(n, dtype=np.float32)[:, None])
    np.testing.assert_allclose(fun.outputs[:, :n], num, rtol=1e-6)
    np.testing.assert_allclose(fun.outputs[:, n], num.sum(axis=1), rtol=1e-5)
