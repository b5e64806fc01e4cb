"""Beta-1 `nki.isa` (tessera.nki.beta1.isa): one numpy-reference test per instruction family,
written from the Neuron 2.26 pages, plus the PSUM `+=` / `=` semantics of nc_matmul, masks,
dtypes, numpy ufuncs as `op=`, and errors located at the kernel's line."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.beta1.isa as nisa
import tessera.nki.beta1.language as nl
import tessera.nki.beta1.top as nki
from tessera.nki.errors import KernelUsageError, MatmulShapeError
from tessera.nki.launch import trace

RNG = np.random.default_rng(19)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def opcodes(kernel, *args) -> list[str]:
    return [i.opcode.value for i in trace(kernel, symbolic=True)(*args).instructions]


def out(shape, dtype=nl.float32):
    return nl.ndarray(shape, dtype=dtype, buffer=nl.shared_hbm)


# --------------------------------------------------------------------- nc_matmul
@nki.jit
def _matmul_acc(x, w):
    res = out((128, 256))
    ps = nl.zeros((128, 256), nl.float32, buffer=nl.psum)
    for k in nl.affine_range(2):
        ps += nisa.nc_matmul(nl.load(x[k * 128:(k + 1) * 128, :]),
                             nl.load(w[k * 128:(k + 1) * 128, :]))
    nl.store(res, nisa.tensor_copy(ps))
    return res


@nki.jit
def _matmul_assign(x, w):
    res = out((128, 256))
    ps = nl.zeros((128, 256), nl.float32, buffer=nl.psum)
    i_p = nl.arange(128)[:, None]
    for k in nl.affine_range(2):
        ps[...] = nisa.nc_matmul(nl.load(x[k * 128:(k + 1) * 128, :]),
                                 nl.load(w[k * 128:(k + 1) * 128, :]), mask=(i_p < 64))
    nl.store(res, nisa.tensor_copy(ps))
    return res


def test_nc_matmul_plus_equals_accumulates_and_assignment_overwrites():
    x, w = rand(256, 128), rand(256, 256)
    np.testing.assert_allclose(nki.simulate_kernel(_matmul_acc, x, w), x.T @ w, rtol=1e-4,
                               atol=1e-3)
    want = np.zeros((128, 256), np.float32)
    want[:64] = x[128:, :64].T @ w[128:]  # the last k overwrites; masked rows stay zero
    np.testing.assert_allclose(nki.simulate_kernel(_matmul_assign, x, w), want, rtol=1e-4,
                               atol=1e-3)
    # the result is issued into the PSUM tile: no copy besides the final evacuation
    ops = opcodes(_matmul_acc, x, w)
    assert ops.count("nc_matmul") == 2 and ops.count("tensor_copy") == 1
    assert opcodes(_matmul_assign, x, w).count("tensor_copy") == 1


@nki.jit
def _matmul_view_acc(x, w):
    res = out((128, 256))
    ps = nl.zeros((128, 256), nl.float32, buffer=nl.psum)
    for k in nl.affine_range(2):
        ps[...] += nisa.nc_matmul(nl.load(x[k * 128:(k + 1) * 128, :]),
                                  nl.load(w[k * 128:(k + 1) * 128, :]))
    nl.store(res, nisa.tensor_copy(ps))
    return res


def test_nc_matmul_plus_equals_into_a_view_accumulates():
    x, w = rand(256, 128), rand(256, 256)
    np.testing.assert_allclose(nki.simulate_kernel(_matmul_view_acc, x, w), x.T @ w,
                               rtol=1e-4, atol=1e-3)


def test_nc_matmul_plus_equals_into_a_view_issues_no_copy():
    ops = opcodes(_matmul_view_acc, rand(256, 128), rand(256, 256))
    assert ops.count("tensor_copy") == 1


@nki.jit
def _matmul_too_wide(x, w):
    ps = nisa.nc_matmul(nl.load(x), nl.load(w))
    return ps


def test_nc_matmul_stationary_wider_than_128_is_the_beta2_error_at_the_kernel_line():
    with pytest.raises(MatmulShapeError) as err:
        nki.simulate_kernel(_matmul_too_wide, rand(64, 256), rand(64, 32))
    assert "test_beta1_isa.py" in str(err.value) and "stationary" in str(err.value)


# --------------------------------------------------------------------- transpose, copies
@nki.jit
def _transposes(a, b):
    ra, rb = out((16, 32)), out((64, 128))
    ta = nisa.nc_transpose(nl.load(a))  # 32 x 16: Vector engine, SBUF
    tb = nisa.nc_transpose(nl.load(b))  # 128 x 64: Tensor engine, PSUM
    assert ta.buffer is nl.sbuf and tb.buffer is nl.psum
    nl.store(ra, ta)
    nl.store(rb, nisa.tensor_copy(tb, dtype=nl.bfloat16))
    return ra, rb


def test_nc_transpose_picks_the_engine_by_shape():
    a, b = rand(32, 16), rand(128, 64)
    ra, rb = nki.simulate_kernel(_transposes, a, b)
    np.testing.assert_array_equal(ra, a.T)
    np.testing.assert_allclose(rb, b.T, rtol=1e-2, atol=1e-2)  # through bf16


@nki.jit
def _moves(a):
    r1, r2, r3 = out((64, 32)), out((32, 64)), out((64, 32))
    t = nl.load(a)
    nl.store(r1, nisa.memset((64, 32), 2.5, nl.float32, mask=(nl.arange(64)[:, None] < 48)))
    nl.store(r2, nisa.dma_transpose(t))
    d = nisa.memset((64, 32), 0.0, nl.float32)
    nisa.dma_copy(dst=d, src=t)
    nisa.dma_copy(dst=d, src=t, dst_rmw_op=np.add)
    pred = nisa.memset((64, 32), 0, nl.uint8)
    pred[0:16, :] = nisa.memset((16, 32), 1, nl.uint8)
    nisa.tensor_copy_predicated(src=-1.0, dst=d, predicate=pred)
    nl.store(r3, d)
    return r1, r2, r3


def test_memset_dma_copy_rmw_dma_transpose_and_predicated_copy():
    a = rand(64, 32)
    r1, r2, r3 = nki.simulate_kernel(_moves, a)
    np.testing.assert_array_equal(r1[:48], 2.5)
    np.testing.assert_array_equal(r2, a.T)
    want = 2 * a
    want[:16] = -1.0
    np.testing.assert_allclose(r3, want, rtol=1e-6)


# --------------------------------------------------------------------- Scalar engine
@nki.jit
def _activations(a, bias):
    r1, r2, r3 = out((64, 32), nl.bfloat16), out((64, 1)), out((64, 1))
    t, b = nl.load(a), nl.load(bias)
    sums = nl.ndarray((64, 1), nl.float32)
    y = nl.ndarray((64, 32), nl.bfloat16)
    y[...] = nisa.activation(np.exp, t, bias=b, scale=0.5, reduce_op=np.add, reduce_res=sums,
                             reduce_cmd=nisa.reduce_cmd.reset_reduce, dtype=nl.bfloat16)
    more = nl.ndarray((64, 1), nl.float32)
    nisa.activation(nl.copy, t, reduce_op=nl.add, reduce_res=more,
                    reduce_cmd=nisa.reduce_cmd.reduce)
    row = nl.ndarray((64, 1), nl.float32)
    nisa.activation_reduce(nl.square, t, reduce_op=np.add, reduce_res=row)
    nl.store(r1, y)
    nl.store(r2, more)
    nl.store(r3, row)
    return r1, r2, r3


def test_activation_reduce_res_in_place_and_registers_kept_across_the_assignment():
    a, bias = rand(64, 32), rand(64, 1)
    r1, r2, r3 = nki.simulate_kernel(_activations, a, bias)
    e = np.exp(a * 0.5 + bias)
    np.testing.assert_allclose(r1.astype(np.float32), e, rtol=1e-2)
    # the second activation accumulates on the first one's registers, issued once
    np.testing.assert_allclose(r2[:, 0], e.sum(1) + a.sum(1), rtol=1e-4)
    np.testing.assert_allclose(r3[:, 0], (a * a).sum(1), rtol=1e-4)


# --------------------------------------------------------------------- Vector engine
@nki.jit
def _vector(a, b, col):
    rs = [out((64, 32)) for _ in range(5)] + [out((64, 1)), out((64, 1))]
    x, y, c = nl.load(a), nl.load(b), nl.load(col)
    i_f = nl.arange(32)[None, :]
    nl.store(rs[0], nisa.tensor_tensor(x, y, np.subtract, mask=(i_f < 16)))
    nl.store(rs[1], nisa.tensor_scalar(x, nl.multiply, c, op1=np.add, operand1=1.0))
    nl.store(rs[2], nisa.scalar_tensor_tensor(data=x, op0=np.multiply, operand0=2.0,
                                              op1=nl.add, operand1=y))
    nl.store(rs[3], nisa.tensor_tensor_scan(x, y, 0.0, np.multiply, np.add))
    red = nl.ndarray((64, 1), nl.float32)
    nl.store(rs[4], nisa.tensor_scalar_reduce(data=x, op0=np.add, operand0=1.0,
                                              reduce_op=np.add, reduce_res=red))
    nl.store(rs[5], red)
    nl.store(rs[6], nisa.tensor_reduce(np.max, x, axis=[1], keepdims=True, negate=True))
    return tuple(rs)


def test_vector_engine_element_wise_scan_and_reductions():
    a, b, col = rand(64, 32), rand(64, 32), rand(64, 1)
    r = nki.simulate_kernel(_vector, a, b, col)
    np.testing.assert_allclose(r[0][:, :16], (a - b)[:, :16], rtol=1e-6)
    np.testing.assert_allclose(r[1], a * col + 1.0, rtol=1e-5)
    np.testing.assert_allclose(r[2], a * 2.0 + b, rtol=1e-5)
    scan = np.zeros_like(a)
    state = np.zeros(64, np.float32)
    for i in range(32):
        state = a[:, i] * state + b[:, i]
        scan[:, i] = state
    np.testing.assert_allclose(r[3], scan, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r[4], a + 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[5][:, 0], (a + 1.0).sum(1), rtol=1e-4)
    np.testing.assert_allclose(r[6][:, 0], -a.max(1), rtol=1e-6)


@nki.jit
def _stats(a):
    r1, r2, r3, r4 = out((64, 2)), out((64, 32)), out((1, 32)), out((64, 32))
    t = nl.load(a)
    nl.store(r1, nisa.bn_aggr(nisa.bn_stats(t)))
    nl.store(r2, nisa.reciprocal(t))
    nl.store(r3, nisa.tensor_partition_reduce(np.add, t))
    nl.store(r4, nisa.dropout(t, 0.0))
    return r1, r2, r3, r4


def test_bn_stats_aggr_reciprocal_partition_reduce_dropout():
    a = rand(64, 32)
    r1, r2, r3, r4 = nki.simulate_kernel(_stats, a)
    np.testing.assert_allclose(r1, np.stack([a.mean(1), a.var(1)], 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r2, 1.0 / a, rtol=1e-5)
    np.testing.assert_allclose(r3[0], a.sum(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(r4, a)


@nki.jit
def _top8(a):
    r1, r2, r3, r4 = out((32, 8)), out((32, 8), nl.uint32), out((32, 64)), out((32, 8),
                                                                               nl.uint32)
    t = nl.load(a)
    m = nisa.max8(src=t)
    nl.store(r1, m)
    nl.store(r2, nisa.nc_find_index8(data=t, vals=m))
    idx = nl.ndarray((32, 8), nl.uint32)
    nl.store(r3, nisa.nc_match_replace8(data=t, vals=m, imm=-100.0, dst_idx=idx))
    nl.store(r4, idx)
    return r1, r2, r3, r4


def test_max8_find_index8_match_replace8():
    a = rand(32, 64)
    r1, r2, r3, r4 = nki.simulate_kernel(_top8, a)
    order = np.argsort(-a, axis=1)[:, :8]
    np.testing.assert_array_equal(r1, np.take_along_axis(a, order, 1))
    np.testing.assert_array_equal(r2, order)
    want = a.copy()
    np.put_along_axis(want, order, -100.0, 1)
    np.testing.assert_array_equal(r3, want)
    np.testing.assert_array_equal(np.sort(r4, 1), np.sort(order, 1))


# --------------------------------------------------------------------- GpSimd, selects
@nki.jit
def _patterns(a):
    r1, r2, r3, r4 = out((64, 32), nl.int32), out((64, 32)), out((64, 32)), out((64, 1))
    i_p, i_f = nl.mgrid[0:64, 0:32]
    nl.store(r1, nisa.iota(i_p * 100 + 3 * i_f + 7, dtype=nl.int32))
    t = nl.load(a)
    nl.store(r2, nisa.affine_select(i_p >= i_f, t, -9.0))
    bound0 = nisa.memset((64, 1), 4.0, nl.float32)
    bound1 = nisa.memset((64, 1), 10.0, nl.float32)
    mx = nl.ndarray((64, 1), nl.float32)
    nl.store(r3, nisa.range_select(on_true_tile=t, comp_op0=nl.greater_equal, comp_op1=np.less,
                                   bound0=bound0, bound1=bound1, reduce_res=mx,
                                   reduce_cmd=nisa.reduce_cmd.reset_reduce))
    nl.store(r4, mx)
    return r1, r2, r3, r4


def test_iota_affine_select_and_range_select():
    a = rand(64, 32)
    r1, r2, r3, r4 = nki.simulate_kernel(_patterns, a)
    p, f = np.mgrid[0:64, 0:32]
    np.testing.assert_array_equal(r1, p * 100 + 3 * f + 7)
    np.testing.assert_array_equal(r2, np.where(p >= f, a, -9.0))
    inside = (f >= 4) & (f < 10)
    np.testing.assert_array_equal(r3, np.where(inside, a, nisa.fp32.min))
    np.testing.assert_array_equal(r4[:, 0], a[:, 4:10].max(1))


@nki.jit
def _select_reduce(a, pred):
    r1, r2 = out((64, 32)), out((64, 1))
    d = nl.ndarray((64, 32), nl.float32)
    mx = nl.ndarray((64, 1), nl.float32)
    nisa.select_reduce(dst=d, predicate=nl.load(pred), on_true=nl.load(a), on_false=0.0,
                       reduce_res=mx, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    nl.store(r1, d)
    nl.store(r2, mx)
    return r1, r2


def test_select_reduce_writes_dst_and_the_row_maximum():
    a, pred = rand(64, 32), (RNG.random((64, 32)) < 0.5).astype(np.uint8)
    r1, r2 = nki.simulate_kernel(_select_reduce, a, pred)
    want = np.where(pred != 0, a, 0.0)
    np.testing.assert_array_equal(r1, want)
    np.testing.assert_array_equal(r2[:, 0], want.max(1))


@nki.jit
def _gpsimd_moves(a, ids, index):
    r1, r2, r3, r4 = out((64,)), out((1, 2, 8)), out((64, 32)), out((32, 32))
    t = nl.load(a)
    nl.store(r1, nisa.tensor_reduce(nl.add, t, axis=1))
    nl.store(r2, nisa.sequence_bounds(segment_ids=nl.load(ids)))
    d = nisa.memset((64, 32), 0.0, nl.float32)
    nisa.nc_stream_shuffle(t, d, [1, 0] + list(range(2, 32)))
    nl.store(r3, d)
    nl.store(r4, nisa.local_gather(nl.load(a[0:32, 0:4]), nl.load(index)))
    return r1, r2, r3, r4


def test_reduce_without_keepdims_sequence_bounds_shuffle_and_local_gather():
    a = rand(64, 32)
    ids = np.array([[1, 1, 2, 0, 3, 3, 3, 1]], np.float32)
    index = np.zeros((32, 2), np.uint16)
    index[:, 1] = 3  # per 16-partition core: indices [0, 3] x 16 partitions, partition first
    r1, r2, r3, r4 = nki.simulate_kernel(_gpsimd_moves, a, ids, index)
    np.testing.assert_allclose(r1, a.sum(1), rtol=1e-5)
    np.testing.assert_array_equal(r2[0], [[0, 0, 2, 8, 4, 4, 4, 7], [2, 2, 3, -1, 7, 7, 7, 8]])
    want = a.copy()
    want[[0, 1, 32, 33]] = a[[1, 0, 33, 32]]
    np.testing.assert_array_equal(r3, want)
    # each partition reads its own row at the core's 32 indices: 16 x 0, then 16 x 3
    np.testing.assert_array_equal(r4, np.concatenate(
        [np.repeat(a[:32, 0:1], 16, 1), np.repeat(a[:32, 3:4], 16, 1)], 1))


# --------------------------------------------------------------------- errors, constants
@nki.jit
def _compound_pred(a):
    i_p, i_f = nl.mgrid[0:64, 0:32]
    return nisa.affine_select((i_p >= i_f) & (i_f < 8), nl.load(a), 0.0)


@nki.jit
def _custom_op(a):
    return nisa.builtin_custom_op("f", "lib.so", 1, 1, [a], [a])


def test_refusals_name_the_rule_at_the_kernel_line():
    with pytest.raises(KernelUsageError, match="ONE comparison") as err:
        nki.simulate_kernel(_compound_pred, rand(64, 32))
    assert "test_beta1_isa.py" in str(err.value)
    with pytest.raises(KernelUsageError, match="builtin_custom_op"):
        nki.simulate_kernel(_custom_op, rand(4, 4))


def test_enums_and_constants_hold_the_beta1_members():
    for name in ("unknown", "tensor", "scalar", "gpsimd", "vector", "sync"):
        assert getattr(nisa.engine, name) is not None
    assert {m.name for m in nisa.reduce_cmd} >= {"idle", "reset", "reduce", "reset_reduce"}
    assert {m.name for m in nisa.dge_mode} == {"none", "swdge", "hwdge", "unknown"}
    assert int(nisa.nc_version.gen2) == 2 and int(nisa.nc_version.gen3) == 3
    assert nisa.fp32.min == float(np.finfo(np.float32).min)
    assert nisa.vector_engine is nisa.engine.vector
