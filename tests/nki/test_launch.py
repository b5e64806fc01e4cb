"""Launching kernels: host array conversion, outputs, LNC grids, trace and symbolic mode."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki
from tessera.nki.errors import DTypeError, KernelUsageError
from tessera.nki.stream import Engine, Opcode

with open(__file__, encoding="utf-8") as _f:
    _LINES = _f.read().splitlines()


def line_of(tag: str) -> int:
    hits = [i + 1 for i, text in enumerate(_LINES) if text.rstrip().endswith(f"# at:{tag}")]
    assert len(hits) == 1
    return hits[0]


@nki.jit
def add_kernel(a, b):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    ta = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    tb = nl.ndarray(b.shape, b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(ta, a)  # at:load-a
    nisa.dma_copy(tb, b)  # at:load-b
    nisa.tensor_tensor(tb, ta, tb, op=nl.add)  # at:add
    nisa.dma_copy(out, tb)  # at:store
    return out


def matmul_kernel(st_h, mv_h):
    k, m = st_h.shape
    n = mv_h.shape[1]
    out = nl.ndarray((m, n), nl.float32, buffer=nl.shared_hbm)
    st = nl.ndarray((k, m), st_h.dtype, buffer=nl.sbuf)
    nisa.dma_copy(st, st_h)
    for j in nl.affine_range(n // 128):
        mv = nl.ndarray((k, 128), mv_h.dtype, buffer=nl.sbuf)
        nisa.dma_copy(mv, mv_h[:, nl.ds(j * 128, 128)])
        ps = nl.ndarray((m, 128), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, st, mv)
        sb = nl.ndarray((m, 128), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(sb, ps)
        nisa.dma_copy(out[:, j * 128:(j + 1) * 128], sb)
    return out


def rand(shape: tuple[int, ...], dtype: object = np.float32) -> np.ndarray:
    return np.random.default_rng(7).standard_normal(shape).astype(np.float32).astype(dtype)


# ------------------------------------------------------------------ host conversion
def test_numpy_in_numpy_out() -> None:
    a, b = rand((128, 32)), rand((128, 32)) * 2
    out = nki.simulate(add_kernel)(a, b)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, a + b)
    np.testing.assert_array_equal(add_kernel(a, b), a + b)  # calling the kernel simulates


def test_torch_in_torch_out() -> None:
    a, b = torch.randn(64, 16), torch.randn(64, 16)
    out = nki.simulate(add_kernel)(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, a + b, rtol=0, atol=0)


def test_torch_bfloat16_round_trips() -> None:
    a = torch.randn(32, 8).to(torch.bfloat16)
    b = torch.randn(32, 8).to(torch.bfloat16)
    out = nki.simulate(add_kernel)(a, b)
    assert out.dtype == torch.bfloat16
    expected = (a.float() + b.float()).to(torch.bfloat16)  # fp32 add, RNE to bf16
    assert torch.equal(out, expected)


def test_torch_int32_round_trips() -> None:
    a = torch.arange(64, dtype=torch.int32).reshape(8, 8)
    out = nki.simulate(add_kernel)(a, a)
    assert out.dtype == torch.int32
    assert torch.equal(out, a * 2)


def test_bfloat16_numpy_inputs_keep_their_dtype() -> None:
    a = rand((16, 8), ml_dtypes.bfloat16)
    out = nki.simulate(add_kernel)(a, a)
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out, (a.astype(np.float32) * 2).astype(ml_dtypes.bfloat16))


def test_float64_and_int64_inputs_are_rejected_clearly() -> None:
    with pytest.raises(DTypeError, match=r"input a has dtype float64.*float32"):
        nki.simulate(add_kernel)(np.zeros((4, 4)), np.zeros((4, 4), np.float32))
    with pytest.raises(DTypeError, match="int64"):
        nki.simulate(add_kernel)(np.zeros((4, 4), np.float32), torch.zeros(4, 4,
                                                                            dtype=torch.int64))


def test_tuple_outputs_and_non_array_arguments() -> None:
    def kernel(a, scale, op=nl.add, label="x"):
        assert isinstance(scale, float) and label == "tag"
        sb = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(sb, a)
        res = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(res, sb, sb, op=op)
        first = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        second = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(first, sb)
        nisa.dma_copy(second, res)
        return first, second, scale

    a = rand((8, 4))
    first, second, scale = nki.simulate(kernel)(a, 2.5, op=nl.multiply, label="tag")
    np.testing.assert_array_equal(first, a)
    np.testing.assert_array_equal(second, a * a)
    assert scale == 2.5


def test_kernel_with_var_positional_arrays() -> None:
    def kernel(*arrays):
        out = nl.ndarray(arrays[0].shape, arrays[0].dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, arrays[-1])
        return out

    a, b = rand((4, 4)), rand((4, 4)) + 1
    np.testing.assert_array_equal(nki.simulate(kernel)(a, b), b)


def test_returning_an_on_chip_tensor_is_an_error() -> None:
    def kernel(a):
        sb = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(sb, a)
        return sb

    with pytest.raises(KernelUsageError, match="shared_hbm"):
        nki.simulate(kernel)(rand((4, 4)))


def test_wrong_arguments_are_a_usage_error() -> None:
    with pytest.raises(KernelUsageError, match="add_kernel"):
        nki.simulate(add_kernel)(rand((4, 4)))


# ------------------------------------------------------------------ LNC grid
def test_lnc_grid_validation() -> None:
    for bad in (0, 3, (1, 2), "2"):
        with pytest.raises(KernelUsageError, match="logical core"):
            add_kernel[bad]
    assert add_kernel[2].lnc == 2 and add_kernel[(2,)].lnc == 2 and add_kernel[1].lnc == 1
    assert add_kernel.lnc == 1


def test_lnc2_runs_two_cores_sharing_the_output() -> None:
    @nki.jit
    def halves(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        core = nl.program_id(0)
        rows = a.shape[0] // nl.num_programs()
        sb = nl.ndarray((rows, a.shape[1]), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(sb, a[core * rows:(core + 1) * rows])
        nisa.tensor_tensor(sb, sb, sb, op=nl.add)
        nisa.dma_copy(out[core * rows:(core + 1) * rows], sb)
        return out

    a = rand((64, 8))
    result = nki.trace(halves[2])(a)
    np.testing.assert_array_equal(result.outputs, 2 * a)
    assert result.lnc == 2
    assert {inst.core for inst in result.instructions} == {0, 1}


# ------------------------------------------------------------------ trace
def test_trace_records_instructions_with_kernel_locations() -> None:
    a, b = rand((128, 16)), rand((128, 16))
    result = nki.trace(add_kernel)(a, b)
    np.testing.assert_array_equal(result.outputs, a + b)
    ops = [inst.opcode for inst in result.instructions]
    assert ops == [Opcode.DMA_COPY, Opcode.DMA_COPY, Opcode.TENSOR_TENSOR, Opcode.DMA_COPY]
    lines = [inst.location.line for inst in result.instructions]
    assert lines == [line_of("load-a"), line_of("load-b"), line_of("add"), line_of("store")]
    assert all(inst.location.file == __file__ for inst in result.instructions)
    assert all(inst.location.function == "add_kernel" for inst in result.instructions)
    assert [inst.index for inst in result.instructions] == [0, 1, 2, 3]
    add = result.instructions[2]
    assert add.engine is Engine.VECTOR and add.attrs.op == "add"
    assert add.partitions == 128 and add.free_elements == 16
    names = {t.name for t in result.tensors}
    assert {"a", "b"} <= names
    assert result.count_by_engine() == {"dma": 3, "vector": 1}
    assert not result.symbolic and result.lnc == 1


def test_trace_chip_selection() -> None:
    a = rand((4, 4))
    assert nki.trace(add_kernel, chip="trn1")(a, a).chip is hw.load_chip("trn1")
    assert nki.trace(add_kernel, chip="trn2")(a, a).chip.name == "trn2"


def test_symbolic_stream_equals_functional_stream() -> None:
    st, mv = rand((128, 96)), rand((128, 512))
    specs = (nki.TensorSpec((128, 96), nl.float32), nki.TensorSpec((128, 512), "float32"))
    # both launches on one line: input tensors record the launch site as their location
    functional, symbolic = (nki.trace(matmul_kernel, symbolic=s)(*x) for s, x in
                            ((False, (st, mv)), (True, specs)))
    assert symbolic.symbolic
    assert symbolic.instructions == functional.instructions
    assert symbolic.tensors == functional.tensors
    assert isinstance(symbolic.outputs, nki.TensorSpec)
    assert symbolic.outputs.shape == (96, 512) and symbolic.outputs.dtype is nl.float32
    counts = symbolic.count_by_engine()
    assert counts == {"dma": 1 + 4 * 2, "tensor": 4, "vector": 4}
    np.testing.assert_allclose(functional.outputs, st.T.astype(np.float64) @ mv,
                               rtol=1e-4, atol=1e-4)


def test_symbolic_stream_equals_functional_for_elementwise_kernels() -> None:
    def kernel(a):
        sb = nl.zeros(a.shape, nl.bfloat16, buffer=nl.sbuf)
        nisa.memset(sb[:, 1:3], 2.5, engine=nisa.gpsimd_engine)
        x = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(x[::-1], a)
        nisa.tensor_tensor(sb, x, sb, op=nl.maximum)
        out = nl.ndarray(a.shape, nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_copy(out, sb)
        return out

    a = rand((32, 6))
    functional, symbolic = (nki.trace(kernel, symbolic=s)(x) for s, x in
                            ((False, a), (True, nki.TensorSpec((32, 6)))))
    assert symbolic.instructions == functional.instructions
    assert symbolic.tensors == functional.tensors
    assert symbolic.outputs == nki.TensorSpec((32, 6), nl.bfloat16)
    expected = np.maximum(a[::-1], 0)
    expected[:, 1:3] = np.maximum(a[::-1, 1:3], 2.5)
    np.testing.assert_array_equal(functional.outputs, expected.astype(ml_dtypes.bfloat16))
    assert functional.count_by_engine() == {"vector": 2, "gpsimd": 1, "dma": 2}


def test_symbolic_mode_accepts_arrays_and_computes_nothing() -> None:
    result = nki.trace(add_kernel, symbolic=True)(rand((8, 4)), rand((8, 4)))
    assert result.outputs == nki.TensorSpec((8, 4), nl.float32)
    assert len(result.instructions) == 4


def test_symbolic_mode_refuses_to_read_values() -> None:
    def kernel(a):
        return float(a.numpy()[0, 0])

    with pytest.raises(KernelUsageError, match="symbolic"):
        nki.trace(kernel, symbolic=True)(nki.TensorSpec((2, 2), nl.float32))


def test_tensor_specs_imply_symbolic_tracing_and_cannot_be_simulated() -> None:
    spec = nki.TensorSpec((128, 64), np.float32)
    traced = nki.trace(add_kernel)(spec, spec)  # no symbolic=True needed
    assert traced.symbolic and traced.instructions
    with pytest.raises(KernelUsageError, match="no values to simulate"):
        nki.simulate(add_kernel)(spec, spec)


def test_a_list_input_and_a_forbidden_lnc_are_named() -> None:
    with pytest.raises(KernelUsageError, match="input a is a Python list"):
        nki.simulate(add_kernel)([[1.0, 2.0]] * 128, np.ones((128, 2), np.float32))
    with pytest.raises(KernelUsageError, match="trn1 runs logical cores of 1"):
        nki.trace(nki.jit(add_kernel)[2], chip="trn1")(np.ones((128, 64), np.float32),
                                                       np.ones((128, 64), np.float32))
    with pytest.raises(DTypeError):
        nki.TensorSpec((2, 2), np.float64)
