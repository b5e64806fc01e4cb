"""nisa.activation / activation_reduce (Scalar engine) against numpy."""

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
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

RNG = np.random.default_rng(7)
BF16 = ml_dtypes.bfloat16



def f32(shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def only(result, opcode):
    found = [i for i in result.instructions if i.opcode is opcode]
    assert len(found) == 1
    return found[0]


def test_activation_scalar_scale_and_bias_fp32():
    x = f32((128, 96))
    res = run_tiles(lambda o, i: nisa.activation(o[0], nl.exp, i[0], bias=0.25, scale=1.5),
                    x, out=[((128, 96), nl.float32)])
    ref = np.exp(x * np.float32(1.5) + np.float32(0.25))
    np.testing.assert_allclose(res.outputs[0], ref, rtol=1e-6)
    inst = only(res, Opcode.ACTIVATION)
    assert inst.engine is Engine.SCALAR
    assert inst.attrs.op == "exp" and inst.attrs.scale == 1.5 and inst.attrs.bias == 0.25
    assert inst.partitions == 128 and inst.free_elements == 96


def test_activation_vector_scale_bias_partial_partitions_ragged_free():
    p, f = 100, 77
    x, s, b = f32((p, f)), f32((p, 1), 0.5, 2.0), f32((p, 1))

    def body(o, i):
        nisa.activation(o[0], nl.tanh, i[0], bias=i[2], scale=i[1])

    res = run_tiles(body, x, s, b, out=[((p, f), nl.float32)])
    np.testing.assert_allclose(res.outputs[0], np.tanh(x * s + b), rtol=1e-6, atol=1e-7)
    inst = only(res, Opcode.ACTIVATION)
    assert len(inst.reads) == 3 and inst.attrs.scale is None


def test_activation_bf16_in_and_out_rounds_like_fp32_then_rne():
    x = f32((64, 40)).astype(BF16)
    res = run_tiles(lambda o, i: nisa.activation(o[0], nl.gelu_apprx_tanh, i[0], scale=2.0),
                    x, out=[((64, 40), nl.bfloat16)])
    xf = x.astype(np.float32) * np.float32(2.0)
    c = np.float32(np.sqrt(2.0 / np.pi))
    ref = (0.5 * xf * (1.0 + np.tanh(c * (xf + 0.044715 * xf ** 3)))).astype(np.float32)
    out = res.outputs[0]
    assert out.dtype == BF16
    np.testing.assert_allclose(out.astype(np.float32), ref.astype(BF16).astype(np.float32),
                               rtol=1e-2, atol=1e-2)


def test_activation_copy_into_int32_rounds_to_nearest_even():
    x = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 3.49]] * 4, dtype=np.float32)
    res = run_tiles(lambda o, i: nisa.activation(o[0], nl.copy, i[0], scale=1.0),
                    x, out=[((4, 6), nl.int32)])
    np.testing.assert_array_equal(res.outputs[0], np.rint(x).astype(np.int32))


def test_activation_reduce_cmd_drives_the_reduction_registers():
    x1, x2 = f32((32, 50)), f32((32, 50))

    def body(o, i):
        r1, r2, r3, r4, junk = o
        # reset_reduce: registers = row sums of exp(x1)
        nisa.activation(junk, nl.exp, i[0], reduce_op=nl.add, reduce_res=r1,
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        # reduce: registers += row sums of x2
        nisa.activation(junk, nl.copy, i[1], reduce_op=nl.add, reduce_res=r2,
                        reduce_cmd=nisa.reduce_cmd.reduce)
        # idle: registers unchanged, read out again
        nisa.activation(junk, nl.copy, i[1], reduce_op=nl.add, reduce_res=r3)
        # reset: registers zeroed
        nisa.activation(junk, nl.copy, i[1], reduce_res=r4, reduce_cmd=nisa.reduce_cmd.reset)

    res = run_tiles(body, x1, x2, out=[((32, 1), nl.float32)] * 4 + [((32, 50), nl.float32)])
    s1 = np.exp(x1).sum(axis=1, keepdims=True)
    s2 = s1 + x2.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.outputs[0], s1, rtol=1e-5)
    np.testing.assert_allclose(res.outputs[1], s2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.outputs[2], s2, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res.outputs[3], np.zeros((32, 1), np.float32))
    cmds = [i.attrs.reduce_cmd for i in res.instructions if i.opcode is Opcode.ACTIVATION]
    assert cmds == ["reset_reduce", "reduce", "idle", "reset"]


def test_activation_reduce_sums_the_activated_rows():
    x, b = f32((128, 64)), f32((128, 1))

    def body(o, i):
        nisa.activation_reduce(o[0], nl.exp, i[0], reduce_op=nl.add, reduce_res=o[1],
                               bias=i[1], scale=-1.0)

    res = run_tiles(body, x, b, out=[((128, 64), nl.float32), ((128, 1), nl.float32)])
    act = np.exp(-x + b)
    np.testing.assert_allclose(res.outputs[0], act, rtol=1e-6)
    np.testing.assert_allclose(res.outputs[1], act.sum(axis=1, keepdims=True), rtol=1e-5)
    inst = only(res, Opcode.ACTIVATION_REDUCE)
    assert inst.attrs.reduce_op == "add" and inst.attrs.reduce_cmd == "reset_reduce"
    assert inst.attrs.reduce_res is True and len(inst.writes) == 2


def test_activation_reads_and_writes_psum():
    x = f32((16, 24))

    def body(o, i):
        ps = nl.ndarray((16, 24), nl.float32, buffer=nl.psum)
        nisa.tensor_copy(ps, i[0])
        ps2 = nl.ndarray((16, 24), nl.float32, buffer=nl.psum)
        nisa.activation(ps2, nl.relu, ps, scale=3.0)
        nisa.tensor_copy(o[0], ps2)

    res = run_tiles(body, x, out=[((16, 24), nl.float32)])
    np.testing.assert_allclose(res.outputs[0], np.maximum(3 * x, 0), rtol=1e-6)


def test_nl_unary_operator_issues_an_activation():
    x = f32((8, 8))
    res = run_tiles(lambda o, i: nisa.tensor_copy(o[0], nl.sigmoid(i[0])), x,
                    out=[((8, 8), nl.float32)])
    np.testing.assert_allclose(res.outputs[0], 1 / (1 + np.exp(-x)), rtol=1e-6)
    assert only(res, Opcode.ACTIVATION).attrs.op == "sigmoid"


@pytest.mark.parametrize(("call", "error"), [
    (lambda o, i: nisa.activation(o[0], nl.add, i[0]), EngineAccessError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], reduce_op=nl.maximum,
                                  reduce_res=o[1], reduce_cmd=nisa.reduce_cmd.reset_reduce),
     EngineAccessError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], reduce_op=nl.add,
                                  reduce_res=o[0], reduce_cmd=nisa.reduce_cmd.reset_reduce),
     ShapeMismatchError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], reduce_cmd=nisa.reduce_cmd.reduce),
     KernelUsageError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], reduce_cmd=2), KernelUsageError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], scale=o[2]), DTypeError),
    (lambda o, i: nisa.activation(o[0], nl.exp, i[0], bias=o[0]), ShapeMismatchError),
    (lambda o, i: nisa.activation(o[1], nl.exp, i[0]), ShapeMismatchError),
])
def test_activation_rejects_illegal_operands(call, error):
    x = f32((16, 8))
    with pytest.raises(error):
        run_tiles(call, x, out=[((16, 8), nl.float32), ((16, 1), nl.float32),
                                ((16, 1), nl.bfloat16)])


def test_activation_from_hbm_is_a_buffer_error():
    @nki.jit
    def kernel(x):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.activation(t, nl.exp, x)
        return x

    with pytest.raises(BufferKindError, match="SBUF/PSUM"):
        nki.simulate(kernel)(f32((4, 4)))


def test_constant_bias_needs_nc_v3():
    x = f32((8, 8))
    body = lambda o, i: nisa.activation(o[0], nl.exp, i[0], bias=1.0)  # noqa: E731
    with pytest.raises(EngineAccessError, match="NeuronCore-v3"):
        run_tiles(body, x, out=[((8, 8), nl.float32)], chip="trn1")
    res = run_tiles(body, x, out=[((8, 8), nl.float32)], chip="trn2")
    np.testing.assert_allclose(res.outputs[0], np.exp(x + 1), rtol=1e-6)
