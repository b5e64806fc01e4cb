"""nki.language: operators as calls (in kernels and on the host), tile_size, loops, launch ids."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from tessera import nki
from tessera.nki import isa as nisa
from tessera.nki import language as nl

RNG = np.random.default_rng(7)


def _unary_call_kernel(x, op):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    nl.store(out, op(t))
    return out


@pytest.mark.parametrize("op, ref", [
    (nl.exp, np.exp), (nl.tanh, np.tanh), (nl.square, np.square), (nl.abs, np.abs),
    (nl.relu, lambda v: np.maximum(v, 0)), (nl.sigmoid, lambda v: 1 / (1 + np.exp(-v))),
    (nl.silu, lambda v: v / (1 + np.exp(-v))), (nl.sin, np.sin), (nl.floor, np.floor),
], ids=lambda v: getattr(v, "name", ""))
def test_unary_operator_called_on_a_tile_issues_an_activation(op, ref) -> None:
    x = RNG.standard_normal((64, 32)).astype(np.float32)
    result = nki.trace(_unary_call_kernel, chip="trn2")(x, op)
    np.testing.assert_allclose(result.outputs, ref(x), rtol=2e-6, atol=2e-6)
    opcodes = [i.opcode for i in result.instructions if i.engine is not nki.Engine.DMA]
    assert opcodes == [nki.Opcode.ACTIVATION]


def test_binary_operator_calls_tensor_tensor_and_tensor_scalar() -> None:
    def kernel(a, b):
        out = nl.ndarray(a.shape, nl.float32, buffer=nl.shared_hbm)
        ta, tb = nl.load(a), nl.load(b)
        s = nl.add(ta, tb)              # tensor_tensor
        p = nl.multiply(s, 3.0)         # tensor_scalar
        q = nl.subtract(1.0, p)         # tensor_scalar with reversed operands
        nl.store(out, nl.maximum(q, tb))
        return out

    a = RNG.standard_normal((32, 16)).astype(np.float32)
    b = RNG.standard_normal((32, 16)).astype(np.float32)
    result = nki.trace(kernel)(a, b)
    np.testing.assert_allclose(result.outputs, np.maximum(1.0 - (a + b) * 3.0, b), rtol=1e-6)
    ops = [i.opcode for i in result.instructions if i.engine is not nki.Engine.DMA]
    assert ops == [nki.Opcode.TENSOR_TENSOR, nki.Opcode.TENSOR_SCALAR,
                   nki.Opcode.TENSOR_SCALAR, nki.Opcode.TENSOR_TENSOR]


def test_operator_result_dtype_follows_promotion() -> None:
    def kernel(a, b):
        out = nl.ndarray(a.shape, nl.float32, buffer=nl.shared_hbm)
        t = nl.add(nl.load(a), nl.load(b))
        assert t.dtype is nl.float32  # fp16 + bf16 -> fp32
        nisa.dma_copy(out, t)
        return out

    a = np.ones((4, 4), np.float16)
    b = np.ones((4, 4), ml_dtypes.bfloat16)
    np.testing.assert_array_equal(nki.simulate(kernel)(a, b), np.full((4, 4), 2.0))


def test_operators_compute_on_the_host() -> None:
    x = np.array([0.0, 1.0, 4.0], np.float32)
    np.testing.assert_allclose(nl.sqrt(x), np.sqrt(x))
    np.testing.assert_allclose(nl.add(x, 1.0), x + 1.0)
    assert nl.exp(x, dtype=nl.bfloat16).dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(nl.gelu_apprx_tanh(x), 0.5 * x * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), rtol=1e-6)


def test_operator_arity_is_checked() -> None:
    with pytest.raises(nki.KernelUsageError, match="takes 2 operand"):
        nl.add(np.ones(3, np.float32))


def test_tile_size_reads_the_chip() -> None:
    seen = {}

    def kernel(a):
        seen["pmax"] = nl.tile_size.pmax
        seen["moving"] = nl.tile_size.gemm_moving_fmax
        seen["stationary"] = nl.tile_size.gemm_stationary_fmax
        seen["psum"] = nl.tile_size.psum_fmax
        seen["banks"] = nl.tile_size.psum_num_banks
        seen["sbuf"] = nl.tile_size.sbuf_fmax_bytes

    nki.simulate(kernel, chip="trn1")(np.zeros((1, 1), np.float32))
    assert seen == {"pmax": 128, "moving": 512, "stationary": 128, "psum": 512, "banks": 8,
                    "sbuf": 192 * 1024}
    nki.simulate(kernel, chip="trn2")(np.zeros((1, 1), np.float32))
    assert seen["sbuf"] == 224 * 1024


def test_loop_helpers_are_ranges() -> None:
    for fn in (nl.affine_range, nl.sequential_range, nl.static_range, nl.dynamic_range):
        assert list(fn(2, 10, 3)) == [2, 5, 8]


def test_program_id_and_num_programs() -> None:
    ids = []

    def kernel(a):
        ids.append((nl.program_id(0), nl.num_programs(), nl.program_ndim()))

    nki.simulate(nki.jit(kernel)[2], chip="trn2")(np.zeros((2, 2), np.float32))
    assert sorted(ids) == [(0, 2, 1), (1, 2, 1)]
    assert nl.program_id(0) is None  # on the host, outside any launch


def test_isa_call_outside_a_kernel_is_a_clear_error() -> None:
    with pytest.raises(nki.KernelUsageError, match="must run inside a kernel"):
        nl.ndarray((4, 4), nl.float32)


def test_shared_constant_and_identity() -> None:
    def kernel(a):
        out = nl.ndarray((4, 4), nl.float32, buffer=nl.shared_hbm)
        eye = nl.shared_identity_matrix(4, dtype=nl.float32)
        c = nl.shared_constant(np.arange(16, dtype=np.float32).reshape(4, 4))
        te, tc = nl.load(eye), nl.load(c)
        nisa.tensor_tensor(te, te, tc, op=nl.multiply)
        nl.store(out, te)
        return out

    expected = np.diag(np.arange(16, dtype=np.float32).reshape(4, 4).diagonal())
    np.testing.assert_array_equal(nki.simulate(kernel)(np.zeros((1, 1), np.float32)),
                                  expected)


def test_zeros_ones_full_on_chip_record_memsets() -> None:
    def kernel(a):
        out = nl.ndarray((3, 8), nl.float32, buffer=nl.shared_hbm)
        z = nl.zeros((1, 8), nl.float32)
        o = nl.ones((1, 8), nl.float32)
        f = nl.full((1, 8), 2.5, nl.float32)
        nisa.dma_copy(out[0:1], z)
        nisa.dma_copy(out[1:2], o)
        nisa.dma_copy(out[2:3], f)
        return out

    result = nki.trace(kernel)(np.zeros((1, 1), np.float32))
    np.testing.assert_array_equal(result.outputs, [[0] * 8, [1] * 8, [2.5] * 8])
    assert [i.opcode for i in result.instructions][:3] == [nki.Opcode.MEMSET] * 3


def test_operators_are_data_and_nl_functions_stand_for_them() -> None:
    from tessera.nki import ops

    assert not callable(ops.exp)  # plain data: it issues nothing itself
    assert ops.to_op(nl.exp) is ops.exp and ops.to_op(nl.identity) is ops.copy
    assert nl.exp.__name__ == "exp" and ops.to_op("add") is ops.add
    assert float(nl.add(1.0, 2.0)) == 3.0  # on the host: computed with numpy
