"""Element-wise library kernels (gelu, gelu_tanh, silu, swiglu, residual add), RoPE and the
transposes vs float64 numpy, plus the registry entries of this family.

Tolerances, elementwise |out - ref| <= atol + rtol * |ref|, the reference computed in
float64 from the kernel's own (already rounded) inputs:
- float32: rtol 1e-5, atol 1e-6 (atol covers the negative tails of gelu, where
  1 + erf / 1 + tanh cancels in float32);
- bfloat16: rtol 2e-2, atol 1e-2 (one bf16 output rounding, 2^-9 relative; swiglu and rope
  round one intermediate too);
- transposes: bit-exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from tessera import nki, sim
from tessera.kernels import Op, all_kernels, get
from tessera.kernels.elementwise import flat_tiles
from tessera.kernels.rope import rope, rope_reference
from tessera.kernels.transpose import batched_transpose, transpose, transpose_reference

RNG = np.random.default_rng(5)
DTYPES = ("float32", "bfloat16")
TOL = {"float32": (1e-5, 1e-6), "bfloat16": (2e-2, 1e-2)}
SHAPES = [(1, 1), (1, 127), (127, 129), (129, 1000), (3, 1000)]
UNARY = (Op.GELU, Op.GELU_TANH, Op.SILU)
BINARY = (Op.SWIGLU, Op.RESIDUAL_ADD)
MINE = UNARY + BINARY + (Op.SOFTMAX, Op.RMSNORM, Op.LAYERNORM, Op.ROPE, Op.TRANSPOSE,
                         Op.BATCHED_TRANSPOSE, Op.CROSS_ENTROPY)


def _check(out: np.ndarray, ref: np.ndarray, tol: tuple[float, float]) -> None:
    assert out.shape == ref.shape
    got = out.astype(np.float64)
    assert np.isfinite(got).all()
    rtol, atol = tol
    excess = np.abs(got - ref) - (atol + rtol * np.abs(ref))
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    assert excess[worst] <= 0, f"at {worst}: got {got[worst]}, want {ref[worst]}"


def test_flat_tiles_are_contiguous_and_cover_everything() -> None:
    for size in (1, 127, 128, 129, 1000, 128 * 8192 + 5):
        seen = np.zeros(size, dtype=int)
        for t in flat_tiles(size, 64):
            assert t.partitions in (1, 128) and 1 <= t.free <= max(64, size)
            seen[t.start:t.start + t.partitions * t.free] += 1
        assert (seen == 1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols"), SHAPES)
@pytest.mark.parametrize("op", UNARY + BINARY)
def test_elementwise(op: Op, rows: int, cols: int, dtype: str) -> None:
    kd = get(op)
    ins = kd.make_inputs({"rows": rows, "cols": cols}, dtype, RNG)
    # a small chunk so the odd shapes take several tiles plus the one-partition remainder
    out = nki.simulate(kd.kernel, chip="trn1")(*ins, chunk=3)
    assert out.dtype == ins[0].dtype
    _check(out, kd.reference(*ins), TOL[dtype])


@pytest.mark.parametrize("op", UNARY + BINARY)
def test_elementwise_default_chunk_on_trn2(op: Op) -> None:
    kd = get(op)
    ins = kd.make_inputs({"rows": 257, "cols": 4100}, "bfloat16", RNG)
    _check(nki.simulate(kd.kernel, chip="trn2")(*ins), kd.reference(*ins), TOL["bfloat16"])


def test_gelu_variants_differ() -> None:
    """Exact and tanh GELU are different functions (up to ~1e-3 apart near |x| ~ 2)."""
    x = np.linspace(-4.0, 4.0, 1024, dtype=np.float32).reshape(8, 128)
    exact = nki.simulate(get(Op.GELU).kernel, chip="trn1")(x)
    approx = nki.simulate(get(Op.GELU_TANH).kernel, chip="trn1")(x)
    assert 1e-4 < np.abs(exact - approx).max() < 1e-2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("heads", "seq", "dim"), [(1, 1, 2), (1, 127, 64), (3, 129, 128),
                                                   (2, 1000, 8)])
def test_rope(heads: int, seq: int, dim: int, dtype: str) -> None:
    x, cos, sin = get(Op.ROPE).make_inputs({"heads": heads, "seq": seq, "dim": dim}, dtype,
                                           RNG)
    out = nki.simulate(rope, chip="trn1")(x, cos, sin)
    _check(out, rope_reference(x, cos, sin), TOL[dtype])
    if heads == 1:  # the 2-D form [S, D]
        out2 = nki.simulate(rope, chip="trn2")(x[0], cos, sin, rows_per_partition=1)
        _check(out2, rope_reference(x[0], cos, sin), TOL[dtype])


def test_rope_rejects_mismatched_tables() -> None:
    x = np.zeros((4, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="cos/sin"):
        nki.simulate(rope, chip="trn1")(x, np.zeros((4, 3), np.float32),
                                        np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 127), (127, 129), (129, 1000),
                                            (300, 64)])
def test_transpose_bit_exact(rows: int, cols: int, dtype: str) -> None:
    (x,) = get(Op.TRANSPOSE).make_inputs({"rows": rows, "cols": cols}, dtype, RNG)
    for params in ({}, {"block_rows": 200, "block_cols": 128}):
        out = nki.simulate(transpose, chip="trn1")(x, **params)
        ref = transpose_reference(x)
        assert out.dtype == x.dtype and out.shape == ref.shape
        assert np.array_equal(out.view(np.uint8), ref.view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_transpose_bit_exact(dtype: str) -> None:
    (x,) = get(Op.BATCHED_TRANSPOSE).make_inputs({"batch": 3, "rows": 130, "cols": 260},
                                                 dtype, RNG)
    out = nki.simulate(batched_transpose, chip="trn2")(x, block_rows=256)
    ref = transpose_reference(x)
    assert out.shape == (3, 260, 130)
    assert np.array_equal(out.view(np.uint8), ref.view(np.uint8))


@pytest.mark.parametrize("op", MINE)
def test_registered_with_consistent_metadata(op: Op) -> None:
    kd = get(op)
    assert kd.op is op and kd.defaults and set(kd.defaults) == set(kd.tunables)
    for name, value in kd.defaults.items():
        assert value in kd.tunables[name], (op, name)
    shapes = {k: 4 for k in kd.shape_keys}
    assert kd.hbm_bytes(shapes, 2) > 0 and kd.flops(shapes) >= 0
    assert len(all_kernels()) >= len(MINE)


# Regression guards on the timing model (symbolic, 1024 x 4096 bf16). The transpose is
# guarded on trn2: on trn1 one side of any large transpose is a row gather, which the model
# streams at a fraction of the HBM share.
@pytest.mark.parametrize(("op", "chip"), [(Op.SILU, "trn1"), (Op.RESIDUAL_ADD, "trn1"),
                                          (Op.TRANSPOSE, "trn2")])
def test_symbolic_hbm_utilisation(op: Op, chip: str) -> None:
    kd = get(op)
    shapes = {"rows": 1024, "cols": 4096}
    specs = [nki.TensorSpec(a.shape, a.dtype) for a in kd.make_inputs(shapes, "bfloat16", RNG)]
    p = sim.profile(kd.kernel, *specs, chip=chip, symbolic=True)
    assert p.hbm_read_bytes + p.hbm_write_bytes >= kd.hbm_bytes(shapes, 2)
    assert p.hbm_utilisation >= 0.5, (op, chip, p.hbm_utilisation, p.bound)
