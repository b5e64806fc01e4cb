"""The rest of the Beta-1 nl surface (loop_reduce, where, softmax, rms_norm,
gather_flattened, dropout, rand, atomic_rmw, fp32/bfp16, finfo) and the ncc compiler
module, checked against numpy references written from the Beta-1 pages."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.nki.beta1 import allocators
from tessera.nki.beta1 import compiler as ncc
from tessera.nki.beta1 import top as nki
from tessera.nki.beta1.misc_indirect import indirect_view
from tessera.nki.errors import DTypeError, KernelUsageError
from tessera.nki.launch import trace
from tessera.nki.stream import Opcode

nl = nki.language
RNG = np.random.default_rng(1926)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _run(kernel, *arrays):
    return nki.simulate_kernel(kernel, *arrays)


# ------------------------------------------------------------------ loop_reduce
@nki.jit
def loop_sum(a):
    out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    b = nl.zeros((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    for k in nl.affine_range(a.shape[0] // 128):
        t = nl.load(a[k * 128:(k + 1) * 128, :])
        b = nl.loop_reduce(t, op=np.add, loop_indices=[k], dtype=nl.float32)
    nl.store(out, b)
    return out


def test_loop_reduce_accumulates_into_the_tile_it_is_assigned_to():
    a = _rand(384, 64)
    np.testing.assert_allclose(_run(loop_sum, a), a.reshape(3, 128, 64).sum(0), rtol=1e-6)
    ops = [i.opcode for i in trace(loop_sum, symbolic=True)(a).instructions]
    # one in-place tensor_tensor per iteration, no copy
    assert ops.count(Opcode.TENSOR_TENSOR) == 3 and Opcode.TENSOR_COPY not in ops


@nki.jit
def loop_max_forms(a):
    out = nl.ndarray((2, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.full((128, 64), -1e30, dtype=nl.float32)
    for k in nl.affine_range(a.shape[0] // 128):
        t = nl.load(a[k * 128:(k + 1) * 128, :])
        acc[:, :] = nl.loop_reduce(t, op=np.maximum, loop_indices=k)
        first = nl.loop_reduce(t, op=np.maximum, loop_indices=[k])
    nl.store(out[0], acc)
    nl.store(out[1], first)
    return out


def test_loop_reduce_into_a_subscript_and_into_a_name_bound_first_by_it():
    a = _rand(256, 64)
    got = _run(loop_max_forms, a)
    np.testing.assert_array_equal(got[0], np.maximum(a[:128], a[128:]))
    # `first` starts unbound: its first binding copies x (the op's identity as the
    # accumulator), the next one accumulates into that tile
    np.testing.assert_array_equal(got[1], np.maximum(a[:128], a[128:]))


@nki.jit
def loop_wrong_dtype(a):
    b = nl.zeros((128, 64), dtype=nl.float32)
    t = nl.load(a)
    b = nl.loop_reduce(t, op=np.add, loop_indices=[0], dtype=nl.bfloat16)  # noqa: F841
    return a


def test_loop_reduce_refuses_a_dtype_other_than_the_destinations():
    with pytest.raises(DTypeError, match="destination b is float32"):
        _run(loop_wrong_dtype, _rand(128, 64))


# ------------------------------------------------------------------ where / softmax / rms_norm
@nki.jit
def where_kernel(x, y):
    out = nl.ndarray((3, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    a, b = nl.load(x), nl.load(y)
    cond = nl.greater(a, 0.0)
    nl.store(out[0], nl.where(cond, a, b))
    nl.store(out[1], nl.where(cond, a, -1.0))
    i_p = nl.arange(128)[:, None]
    keep = nl.ndarray((128, 64), dtype=nl.float32)
    keep[:, :] = b
    keep[:, :] = nl.where(cond, a, 0.0, mask=(i_p < 64))
    nl.store(out[2], keep)
    return out


def test_where_with_a_tile_a_number_and_a_mask():
    x, y = _rand(128, 64), _rand(128, 64)
    got = _run(where_kernel, x, y)
    np.testing.assert_array_equal(got[0], np.where(x > 0, x, y))
    np.testing.assert_array_equal(got[1], np.where(x > 0, x, -1.0))
    masked = y.copy()
    masked[:64] = np.where(x[:64] > 0, x[:64], 0.0)
    np.testing.assert_array_equal(got[2], masked)


@nki.jit
def norm_kernel(x, w):
    out = nl.ndarray((2, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    t, wt = nl.load(x), nl.load(w)
    nl.store(out[0], nl.softmax(t, axis=1))
    nl.store(out[1], nl.rms_norm(t, wt, axis=1, n=64, epsilon=1e-5))
    return out


def test_softmax_and_rms_norm_match_numpy():
    x, w = _rand(128, 64), _rand(1, 64)
    got = _run(norm_kernel, x, w)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got[0], e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    rms = np.sqrt((x * x).sum(axis=1, keepdims=True) / 64 + 1e-5)
    np.testing.assert_allclose(got[1], x / rms * w, rtol=1e-4, atol=1e-6)


@nki.jit
def softmax_two_dtypes(x):
    t = nl.load(x)
    nl.softmax(t, axis=1, dtype=nl.float32, compute_dtype=nl.bfloat16)
    return x


def test_softmax_refuses_two_different_dtypes():
    with pytest.raises(KernelUsageError, match="dtype=float32 and compute_dtype=bfloat16"):
        _run(softmax_two_dtypes, _rand(128, 64))


# ------------------------------------------------------------------ gather / random
@nki.jit
def gather_kernel(data, idx):
    out = nl.ndarray(idx.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, nl.gather_flattened(nl.load(data), nl.load(idx)))
    return out


def test_gather_flattened_takes_per_partition_flat_indices():
    data = _rand(128, 4, 8)
    idx = RNG.integers(0, 32, size=(128, 16)).astype(np.uint32)
    want = np.take_along_axis(data.reshape(128, 32), idx.astype(np.int64), axis=1)
    np.testing.assert_array_equal(_run(gather_kernel, data, idx), want)


@nki.jit
def random_kernel(x):
    out = nl.ndarray((3, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x)
    nl.store(out[0], nl.dropout(t, 0.0))
    nl.store(out[1], nl.dropout(t, 1.0))
    nl.store(out[2], nl.rand((128, 64)))
    return out


def test_dropout_bounds_and_rand_range():
    x = _rand(128, 64)
    got = _run(random_kernel, x)
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_array_equal(got[1], np.zeros_like(x))
    assert got[2].min() >= 0.0 and got[2].max() < 1.0 and got[2].std() > 0.1


# ------------------------------------------------------------------ atomic_rmw
@nki.jit
def rmw_kernel(table, rows, vals):
    out = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.load(table))
    ids, v = nl.load(rows), nl.load(vals)
    i_f = nl.arange(table.shape[1])[None, :]
    nl.atomic_rmw(indirect_view(out, (ids, i_f)), value=v, op=np.add)
    return out


def test_atomic_rmw_adds_every_update_even_to_a_row_named_twice():
    table, vals = _rand(16, 8), _rand(4, 8)
    rows = np.array([[1], [3], [1], [0]], dtype=np.int32)
    want = table.copy()
    np.add.at(want, rows[:, 0], vals)
    np.testing.assert_allclose(_run(rmw_kernel, table, rows, vals), want, rtol=1e-6)


@nki.jit
def rmw_plain(table, vals):
    out = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.shared_hbm)
    nl.atomic_rmw(out, value=nl.load(vals), op=np.add)
    return out


def test_atomic_rmw_needs_a_runtime_indexed_destination():
    with pytest.raises(KernelUsageError, match="indirect dynamic indexing"):
        _run(rmw_plain, _rand(4, 8), _rand(4, 8))


# ------------------------------------------------------------------ constants / refusals
def test_fp32_bfp16_and_finfo():
    assert np.float32(nl.fp32.min).view(np.uint32) == 0xFF7FFFFF
    assert nl.bfp16.min == -np.inf  # the page's bit pattern 0xff80
    f32 = nl.finfo(nl.float32)
    assert (f32.bits, f32.eps, f32.max, f32.tiny) == (
        32, float(np.finfo(np.float32).eps), float(np.finfo(np.float32).max),
        float(np.finfo(np.float32).tiny))
    assert nl.finfo(nl.bfloat16).eps == 2.0 ** -7 and nl.finfo(nl.float16).max == 65504.0
    with pytest.raises(DTypeError, match="finfo describes float types"):
        nl.finfo(nl.int32)


def test_all_reduce_and_gemm_grids_are_refused_with_a_reason():
    with pytest.raises(KernelUsageError, match="one after"):
        nl.all_reduce(None, np.add, 0)
    with pytest.raises(KernelUsageError, match="no return value"):
        nl.gemm_grid()


# ------------------------------------------------------------------ ncc allocators
@nki.jit
def direct_alloc(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((2, nl.par_dim(128), 64), dtype=nl.float32,
                   buffer=ncc.sbuf.mod_alloc(base_addr=0, num_free_tiles=(2,)))
    ps = nl.zeros((128, 64), dtype=nl.float32, buffer=ncc.psum.mod_alloc(base_bank=0))
    t[0] = nl.load(x)
    ps[...] = t[0]
    nl.store(out, ps)
    return out


def test_direct_allocators_are_noted_not_modelled():
    x = _rand(128, 64)
    result = trace(direct_alloc)(x)
    np.testing.assert_array_equal(result.outputs, x)
    assert [n.split(":")[0] for n in result.notes] == ["ncc.sbuf.mod_alloc",
                                                       "ncc.psum.mod_alloc"]


@nki.jit
def mixed_alloc(x):
    nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nl.ndarray((128, 64), dtype=nl.float32, buffer=ncc.sbuf.mod_alloc(base_addr=0))
    return x


def test_auto_and_direct_sbuf_allocation_cannot_be_mixed():
    with pytest.raises(KernelUsageError, match="all use automatic allocation"):
        _run(mixed_alloc, _rand(128, 64))


@nki.jit
def placed(x):
    place = ncc.sbuf.alloc(lambda idx, pdim_size, fdim_size: (32, 0))
    allocators.use_buffer(place, (2,), (128, 64), nl.float32)
    return x


@nki.jit
def big_psum(x):
    place = ncc.psum.alloc(lambda idx, pdim_size, fdim_size: (0, 0, 0))
    allocators.use_buffer(place, (), (128, 1024), nl.float32)
    return x


@pytest.mark.parametrize(("kernel", "match"), [
    (placed, "start_partition 32 is not allowed for a 128-partition tile"),
    (big_psum, "exceeds one PSUM bank"),
])
def test_direct_allocation_rules_are_checked_per_block(kernel, match):
    with pytest.raises(KernelUsageError, match=match):
        _run(kernel, _rand(128, 64))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: ncc.sbuf.mod_alloc(base_addr=0, base_partition=32), "base_partition=32"),
    (lambda: ncc.psum.mod_alloc(base_bank=0, base_addr=64), "base_addr=64"),
    (lambda: ncc.psum.mod_alloc(base_bank=0, num_par_tiles=(2,)), r"all ones"),
    (lambda: ncc.sbuf.mod_alloc(0), "keyword arguments only"),
    (lambda: ncc.multi_buffer(0), "positive int"),
])
def test_allocator_and_directive_arguments_are_checked(make, match):
    with pytest.raises(KernelUsageError, match=match):
        make()


# ------------------------------------------------------------------ ncc decorators / guards
def _copy_body(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.load(x))
    return out


def test_decorators_work_bare_and_called_and_list_their_notes():
    kernel = ncc.enable_stack_allocator(log_level=10)(
        ncc.skip_middle_end_transformations(nki.jit(ncc.force_auto_alloc(_copy_body))))
    notes = trace(kernel)(_rand(128, 8)).notes
    assert sorted(n.split(":")[0] for n in notes) == [
        "ncc.enable_stack_allocator", "ncc.force_auto_alloc",
        "ncc.skip_middle_end_transformations"]


def test_stack_allocator_needs_skip_middle_end():

    @ncc.enable_stack_allocator
    @nki.jit
    def kernel(x):
        return _copy_body(x)

    with pytest.raises(KernelUsageError, match="together with"):
        _run(kernel, _rand(128, 8))


@nki.jit
def ordered(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    with ncc.no_reorder():
        t = nl.load(x)
        nl.store(out, nl.exp(t))
    ncc.multi_buffer(4).note()
    return out


def test_no_reorder_orders_the_block_and_multi_buffer_is_noted():
    result = trace(ordered)(_rand(128, 8))
    assert len(result.edges) == 2  # load -> exp -> store
    assert result.notes == ("ncc.multi_buffer(factor=4): accepted, not modelled (Tessera's "
                            "allocator decides how many copies of a loop's tiles exist)",)
