"""Matmul / batched matmul kernels against a float64 numpy reference.

Tolerances (max |out - ref| relative to max |ref|; the reference uses the kernel's own
rounded inputs, so only accumulation order and the output rounding differ):
- fp32 out: 1e-5 (fp32 accumulation in PSUM);
- bf16 / fp16 out: 2e-2 (one rounding of the output, 2^-8 / 2^-11 relative, with headroom);
- fp8 inputs (bf16 out): 3e-2 (same as bf16 plus the sum of up to K exact fp8 products).
"""

from __future__ import annotations

import numpy as np
import pytest

from tessera import nki, sim
from tessera.kernels import Op, get
from tessera.kernels.matmul import batched_matmul, matmul, reference
from tessera.nki import language as nl
from tessera.nki.errors import DTypeError, EngineAccessError, ShapeMismatchError
from tessera.nki.stream import Opcode

RNG = np.random.default_rng(7)
TOL = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-2, "float8_e4m3": 3e-2,
       "float8_e5m2": 3e-2}


def _arr(shape: tuple[int, ...], dtype=nl.float32) -> np.ndarray:
    return RNG.uniform(-1.0, 1.0, shape).astype(np.float32).astype(dtype.storage)


def _operands(m: int, k: int, n: int, dtype=nl.float32, ta: bool = False, tb: bool = False):
    return _arr((k, m) if ta else (m, k), dtype), _arr((n, k) if tb else (k, n), dtype)


def _check(out: np.ndarray, ref: np.ndarray, tol: float) -> None:
    assert out.shape == ref.shape
    got = out.astype(np.float64)
    assert np.isfinite(got).all()
    scale = max(1e-30, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max()) / scale
    assert err <= tol, f"relative error {err:.3g} > {tol:g}"


def _run(a, b, chip: str = "trn1", kernel=matmul, **kw) -> np.ndarray:
    out = nki.simulate(kernel, chip=chip)(a, b, **kw)
    _check(out, reference(a, b, **kw), TOL[np.dtype(a.dtype).name])
    return out


# M <= 128 takes the weight-stationary body, M > 128 the blocked one; K and N ragged.
SHAPES = [(1, 1, 1), (1, 129, 127), (127, 300, 129), (129, 127, 300), (300, 129, 1),
          (16, 1000, 520)]


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True),
                                        (True, True)])
def test_fp32_shapes_and_layouts(m: int, k: int, n: int, ta: bool, tb: bool) -> None:
    a, b = _operands(m, k, n, ta=ta, tb=tb)
    out = _run(a, b, transpose_a=ta, transpose_b=tb)
    assert out.dtype == np.float32


@pytest.mark.parametrize("dtype", [nl.bfloat16, nl.float16, nl.float8_e4m3, nl.float8_e5m2])
@pytest.mark.parametrize(("m", "k", "n", "tb"), [(16, 300, 257, False), (129, 260, 130, True),
                                                 (200, 129, 513, False)])
def test_dtypes(dtype, m: int, k: int, n: int, tb: bool) -> None:
    a, b = _operands(m, k, n, dtype, tb=tb)
    out = _run(a, b, transpose_b=tb)
    # 16-bit inputs keep their dtype; fp8 inputs produce bf16
    expected = nl.bfloat16 if dtype.itemsize == 1 else dtype
    assert out.dtype == expected.storage


def test_out_dtype_override() -> None:
    a, b = _operands(130, 64, 40, nl.bfloat16)
    out = nki.simulate(matmul, chip="trn1")(a, b, out_dtype=nl.float32)
    assert out.dtype == np.float32
    _check(out, reference(a, b), 1e-5)  # fp32 out: only the accumulation differs


@pytest.mark.parametrize("act", [None, nl.relu, nl.gelu, nl.gelu_apprx_tanh, nl.silu,
                                 nl.sigmoid])
@pytest.mark.parametrize(("m", "k", "n"), [(3, 200, 300), (129, 150, 600)])
def test_bias_and_fused_activation(act, m: int, k: int, n: int) -> None:
    a, b = _operands(m, k, n)
    bias = _arr((n,))
    out = _run(a, b, bias=bias, activation=act)
    if act is None:  # the bias really is per output column
        np.testing.assert_allclose(out - reference(a, b), np.broadcast_to(bias, out.shape),
                                   atol=1e-5)


def test_activation_without_bias_and_k_blocks_in_sbuf() -> None:
    # block_k < K splits K into blocks summed in an fp32 SBUF accumulator
    a, b = _operands(300, 700, 129)
    _run(a, b, activation=nl.silu, block_k=256)
    _run(a, b, bias=_arr((129,)), activation=nl.relu, block_k=128, block_m=128,
         block_n=128)


def test_block_sizes_keep_results() -> None:
    a, b = _operands(260, 384, 700, tb=True)
    for kw in ({"block_m": 128, "block_n": 1024}, {"block_m": 512, "block_n": 256}):
        _run(a, b, transpose_b=True, **kw)
    a1, b1 = _operands(16, 640, 700)
    _run(a1, b1, block_n=256, block_k=256)


def test_skinny_sweeps_n_blocks_through_an_sbuf_accumulator() -> None:
    # M * N beyond 4 PSUM banks of C^T (forced here with block_n): whole rows of B stream
    # in and each N sweep adds into fp32 SBUF, so the result must still be exact to fp32
    a, b = _operands(128, 300, 1100)
    bias = _arr((1100,))
    _run(a, b, bias=bias, activation=nl.gelu, block_n=256)
    trace = nki.trace(matmul, chip="trn1")(a, b, block_n=256)
    adds = [i for i in trace.instructions if i.opcode is Opcode.TENSOR_TENSOR]
    assert adds  # the accumulation really went through SBUF
    a8, b8 = _operands(100, 1000, 700, nl.float8_e4m3)
    _run(a8, b8, chip="trn2", double_row=True, block_n=256)


@pytest.mark.parametrize(("m", "tb", "shared"), [(16, False, False), (129, True, True)])
def test_batched(m: int, tb: bool, shared: bool) -> None:
    a = _arr((3, m, 130))
    b = _arr((70, 130) if tb else (130, 70)) if shared else _arr((3, 70, 130) if tb
                                                                 else (3, 130, 70))
    bias = _arr((70,))
    out = nki.simulate(batched_matmul, chip="trn1")(a, b, bias=bias, activation=nl.relu,
                                                    transpose_b=tb)
    assert out.shape == (3, m, 70)
    _check(out, reference(a, b, bias=bias, activation=nl.relu, transpose_b=tb), 1e-5)


@pytest.mark.parametrize(("m", "k", "n", "ta", "tb"), [(16, 1000, 300, False, False),
                                                       (16, 300, 300, True, True),
                                                       (200, 700, 129, False, False),
                                                       (129, 256, 513, False, True)])
def test_double_row_fp8_on_trn2(m: int, k: int, n: int, ta: bool, tb: bool) -> None:
    a, b = _operands(m, k, n, nl.float8_e4m3, ta=ta, tb=tb)
    kw = {"transpose_a": ta, "transpose_b": tb, "double_row": True}
    out = _run(a, b, chip="trn2", **kw)
    assert out.dtype == nl.bfloat16.storage
    trace = nki.trace(matmul, chip="trn2")(a, b, **kw)
    modes = [i.attrs.perf_mode for i in trace.instructions if i.opcode is Opcode.NC_MATMUL]
    assert modes.count("double_row") >= len(modes) // 2  # most steps are paired


def test_double_row_errors() -> None:
    a, b = _operands(16, 256, 64, nl.float8_e4m3)
    with pytest.raises(EngineAccessError, match="NeuronCore-v3"):
        nki.simulate(matmul, chip="trn1")(a, b, double_row=True)
    a16, b16 = _operands(16, 256, 64, nl.bfloat16)
    with pytest.raises(DTypeError, match="fp8"):
        nki.simulate(matmul, chip="trn2")(a16, b16, double_row=True)


def test_argument_errors() -> None:
    a, b = _operands(8, 32, 16)
    with pytest.raises(ShapeMismatchError, match="contraction"):
        nki.simulate(matmul, chip="trn1")(a, b, transpose_b=True)
    with pytest.raises(ShapeMismatchError, match="bias"):
        nki.simulate(matmul, chip="trn1")(a, b, bias=_arr((15,)))
    with pytest.raises(DTypeError, match="mixed"):
        nki.simulate(matmul, chip="trn1")(a, _arr((32, 16), nl.bfloat16))


def test_skinny_body_keeps_b_stationary() -> None:
    # decode shape: B tiles [128 K, 128 N] are stationary, A^T [128 K, M] moves
    trace = nki.trace(matmul, symbolic=True, chip="trn1")(
        nki.TensorSpec((16, 1024), nl.bfloat16), nki.TensorSpec((1024, 1024), nl.bfloat16))
    mms = [i for i in trace.instructions if i.opcode is Opcode.NC_MATMUL]
    assert len(mms) == (1024 // 128) ** 2
    assert {(i.attrs.stationary_free, i.attrs.moving_free) for i in mms} == {(128, 16)}


def test_registry_definitions() -> None:
    for op, shapes in ((Op.MATMUL, {"M": 33, "K": 140, "N": 20}),
                       (Op.BATCHED_MATMUL, {"B": 2, "M": 33, "K": 140, "N": 20})):
        defn = get(op)
        inputs = defn.make_inputs(shapes, "bfloat16", RNG)
        _check(nki.simulate(defn.kernel, chip="trn2")(*inputs), defn.reference(*inputs), 2e-2)
        batch = shapes.get("B", 1)
        assert defn.flops(shapes) == 2 * 33 * 140 * 20 * batch
        assert defn.hbm_bytes(shapes, 2) == (33 * 140 + 140 * 20 + 33 * 20) * 2 * batch
        assert set(defn.tunables) == {"block_m", "block_n", "block_k"}


def test_profile_4096_cubed_tensor_engine_utilisation() -> None:
    # regression guard (measured 0.91 on trn1 when written); symbolic: shapes only
    spec = nki.TensorSpec((4096, 4096), nl.bfloat16)
    prof = sim.profile(matmul, spec, spec, chip="trn1", symbolic=True)
    assert prof.flops_utilisation >= 0.6, prof.flops_utilisation


def test_profile_decode_hbm_utilisation() -> None:
    # 16 x 4096 x 4096 streams B once: HBM-bound on trn2 (measured 0.91 when written; trn1
    # is held to 0.66 of HBM by its DMA engines, 16 x 17 B/ns, and measured 0.61)
    prof = sim.profile(matmul, nki.TensorSpec((16, 4096), nl.bfloat16),
                       nki.TensorSpec((4096, 4096), nl.bfloat16), chip="trn2", symbolic=True)
    assert prof.hbm_utilisation >= 0.6, prof.hbm_utilisation
