"""Beta-1 tile movement (tessera/nki/beta1/layout.py): nl.matmul, transpose,
load_transpose2d, copy, broadcast_to, expand_dims against numpy, with masks, and the
instruction stream `psum += nl.matmul(...)` records (one matmul per call, no add)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from tessera.nki import ops
from tessera.nki.beta1 import language as nl
from tessera.nki.beta1 import top as nki
from tessera.nki.errors import NkiError
from tessera.nki.launch import trace
from tessera.nki.stream import Opcode

RNG = np.random.default_rng(7)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _opcodes(result: object) -> list[Opcode]:
    return [i.opcode for i in result.instructions]  # type: ignore[attr-defined]


def _line_of(fn: object, text: str) -> str:
    """`file:line` of the first source line of `fn` containing `text`."""
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        if text in line:
            return f"{inspect.getsourcefile(fn)}:{start + k}"
    raise AssertionError(text)


# ------------------------------------------------------------------ matmul
def test_matmul_both_layouts_match_numpy():
    @nki.jit
    def kernel(xt, x, y):
        out = nl.ndarray((2, 32, 48), dtype=nl.float32, buffer=nl.shared_hbm)
        a = nl.matmul(nl.load(xt), nl.load(y), transpose_x=True)  # xt is [K, M]
        b = nl.matmul(nl.load(x), nl.load(y))  # x is [M, K]: transposed first
        nl.store(out[0], nl.copy(a))
        nl.store(out[1], nl.copy(b))
        return out

    x, y = _f32(32, 64), _f32(64, 48)
    res = trace(kernel)(np.ascontiguousarray(x.T), x, y)
    np.testing.assert_allclose(res.outputs[0], x @ y, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res.outputs[1], x @ y, rtol=1e-5, atol=1e-4)
    ops_ = _opcodes(res)
    assert ops_.count(Opcode.NC_MATMUL) == 2 and ops_.count(Opcode.NC_TRANSPOSE) == 1


def test_psum_accumulation_is_one_matmul_per_call_and_no_add():
    @nki.jit
    def kernel(x, w):
        out = nl.ndarray((64, 96), dtype=nl.float32, buffer=nl.shared_hbm)
        ps = nl.zeros((64, 96), nl.float32, buffer=nl.psum)
        for k in nl.affine_range(3):
            xt = nl.load(x[k * 32:(k + 1) * 32, :])
            wt = nl.load(w[k * 32:(k + 1) * 32, :])
            ps += nl.matmul(xt, wt, transpose_x=True)
        nl.store(out, nl.copy(ps))
        return out

    x, w = _f32(96, 64), _f32(96, 96)
    res = trace(kernel)(x, w)
    np.testing.assert_allclose(res.outputs, x.T @ w, rtol=1e-5, atol=1e-4)
    ops_ = _opcodes(res)
    assert ops_.count(Opcode.NC_MATMUL) == 3
    assert Opcode.TENSOR_TENSOR not in ops_
    mm = [i for i in res.instructions if i.opcode is Opcode.NC_MATMUL]
    # `+=` joins the accumulation group (the first matmul of a group overwrites)
    assert all(i.attrs.accumulate is None for i in mm)


def test_assigned_matmul_overwrites_and_operand_and_output_masks():
    @nki.jit
    def kernel(x, y):
        out = nl.ndarray((3, 64, 32), dtype=nl.float32, buffer=nl.shared_hbm)
        xt, yt = nl.load(x), nl.load(y)  # x [K=16, M=64], y [K, N=32]
        i_m = nl.arange(64)[:, None]
        i_f = nl.arange(64)[None, :]
        ps = nl.zeros((64, 32), nl.float32, buffer=nl.psum)
        ps[...] = nl.matmul(xt, yt, transpose_x=True, mask=(i_m < 40))
        nl.store(out[0], nl.copy(ps))
        ps[...] = nl.matmul(xt, yt, transpose_x=True)  # `=` overwrites the old result
        nl.store(out[1], nl.copy(ps))
        part = nl.matmul(xt[i_f < 24], yt, transpose_x=True)  # operand mask: M = 24
        res = nl.zeros((64, 32), nl.float32)
        res[0:24, :] = part
        nl.store(out[2], res)
        return out

    x, y = _f32(16, 64), _f32(16, 32)
    got = nki.simulate_kernel(kernel, x, y)
    full = x.T @ y
    want0 = np.where(np.arange(64)[:, None] < 40, full, 0)
    np.testing.assert_allclose(got[0], want0, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[1], full, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[2][:24], full[:24], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got[2][24:], 0)


def test_matmul_errors_name_the_kernel_line():
    @nki.jit
    def kernel(x):
        a = nl.load(x)
        b = nl.matmul(a, nl.load(x[0:8, :]), transpose_x=True)  # K 16 vs 8
        return b

    with pytest.raises(NkiError, match="contracts K=16") as err:
        nki.simulate_kernel(kernel, _f32(16, 8))
    assert _line_of(kernel.fn, "nl.matmul(") in str(err.value)


# ------------------------------------------------------------------ transposes
def test_transpose_dtype_and_mask():
    @nki.jit
    def kernel(x):
        out = nl.ndarray((3, 24, 40), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        i_p = nl.arange(40)[:, None]
        i_f = nl.arange(24)[None, :]
        a = nl.transpose(t, dtype=nl.bfloat16)
        nl.store(out[0], nl.copy(a, dtype=nl.float32))
        b = nl.zeros((24, 40), nl.float32, buffer=nl.psum)
        b[...] = nl.transpose(t, mask=(i_p < 30) & (i_f < 16))  # over x's [40, 24] indices
        nl.store(out[1], nl.copy(b))
        b[...] = nl.transpose(t, mask=(i_p >= i_f))  # not a box: the rest keeps b's values
        nl.store(out[2], nl.copy(b))
        return out

    x = _f32(40, 24)
    got = nki.simulate_kernel(kernel, x)
    bf = x.T.astype(np.float32)
    np.testing.assert_allclose(got[0], bf, rtol=1e-2)
    want = np.zeros((24, 40), np.float32)
    want[:16, :30] = x.T[:16, :30]
    np.testing.assert_array_equal(got[1], want)
    lower = np.arange(40)[None, :] >= np.arange(24)[:, None]  # [f, p]: p >= f
    np.testing.assert_array_equal(got[2], np.where(lower, x.T, want))


def test_load_transpose2d_ragged_and_cast():
    @nki.jit
    def kernel(a):
        out = nl.ndarray((2, 64, 128), dtype=nl.float32, buffer=nl.shared_hbm)
        i_f = nl.arange(128)[:, None]  # rows of a [F, P]: past its 100 rows under the mask
        i_p = nl.arange(64)[None, :]
        t = nl.zeros((64, 128), nl.float32)
        t[...] = nl.load_transpose2d(a[i_f, i_p], mask=(i_f < 100))
        nl.store(out[0], t)
        u = nl.load_transpose2d(a[0:100, :], dtype=nl.bfloat16)
        v = nl.zeros((64, 128), nl.float32)
        v[:, 0:100] = u
        nl.store(out[1], v)
        return out

    a = _f32(100, 64)
    res = trace(kernel)(a)
    want = np.zeros((64, 128), np.float32)
    want[:, :100] = a.T
    np.testing.assert_array_equal(res.outputs[0], want)
    np.testing.assert_allclose(res.outputs[1], want, rtol=1e-2)
    assert _opcodes(res).count(Opcode.DMA_TRANSPOSE) == 2


# ------------------------------------------------------------------ copy, broadcast, views
def test_copy_mask_dtype_and_operator():
    @nki.jit
    def kernel(x):
        out = nl.ndarray((2, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        i_p = nl.arange(32)[:, None]
        c = nl.zeros((32, 16), nl.float32)
        c[...] = nl.copy(t, mask=(i_p < 20))  # replayed into c: no second copy
        nl.store(out[0], c)
        nl.store(out[1], nl.copy(nl.copy(t, dtype=nl.int32), dtype=nl.float32))
        return out

    x = (_f32(32, 16) * 8).round()
    res = trace(kernel)(x)
    np.testing.assert_array_equal(res.outputs[0], np.where(np.arange(32)[:, None] < 20, x, 0))
    np.testing.assert_array_equal(res.outputs[1], x)
    assert _opcodes(res).count(Opcode.TENSOR_COPY) == 3
    assert ops.to_op(nl.copy) is ops.ALL_OPS["copy"]
    np.testing.assert_array_equal(nl.copy(np.ones(3)), np.ones(3))


def test_broadcast_to_partitions_and_free_axes():
    @nki.jit
    def kernel(row, col):
        out = nl.ndarray((2, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        r, c = nl.load(row), nl.load(col)  # [1, 16], [32, 1]
        assert nl.broadcast_to(r, shape=(1, 16)) is r
        nl.store(out[0], nl.broadcast_to(r, shape=(32, 16)))
        nl.store(out[1], nl.broadcast_to(c, shape=(32, 16)))
        return out

    row, col = _f32(1, 16), _f32(32, 1)
    res = trace(kernel)(row, col)
    np.testing.assert_array_equal(res.outputs[0], np.broadcast_to(row, (32, 16)))
    np.testing.assert_array_equal(res.outputs[1], np.broadcast_to(col, (32, 16)))


def test_expand_dims_view_and_errors():
    @nki.jit
    def kernel(x):
        t = nl.load(x)
        v = nl.expand_dims(t, 2)
        assert v.shape == (8, 4, 1)
        assert nl.expand_dims(t, (2, 3)).shape == (8, 4, 1, 1)
        nl.expand_dims(t, 1)  # before the last axis: refused
        return x

    with pytest.raises(NkiError, match="after the last axis"):
        nki.simulate_kernel(kernel, _f32(8, 4))
