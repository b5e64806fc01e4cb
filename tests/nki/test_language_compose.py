"""nl helpers composed of nisa instructions (tessera/nki/language_compose.py): values
against numpy references written from each page (reductions, softmax, rms_norm, where), the
instructions each records, and one error per documented constraint at the caller's line."""

from __future__ import annotations

import numpy as np
import pytest
from compose_harness import BF16, RNG, Op, body_ops, evaluate, expect_error, randn

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import BufferKindError, KernelUsageError, ShapeMismatchError
from tessera.sim.profile import schedule

# ------------------------------------------------------------------ reductions
REDUCTIONS = [(nl.sum, np.sum), (nl.max, np.max), (nl.min, np.min), (nl.mean, np.mean),
              (nl.prod, np.prod)]


@pytest.mark.parametrize("fn, ref", REDUCTIONS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("shape, axis", [((32, 48), 1), ((32, 48), -1), ((32, 48), [1]),
                                         ((16, 6, 8), 2), ((16, 6, 8), (1, 2))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_matches_numpy(fn, ref, shape, axis, keepdims) -> None:
    x = RNG.uniform(0.5, 1.5, shape).astype(np.float32)  # keeps prod in range
    got, _ = evaluate(lambda t: fn(t, axis=axis, keepdims=keepdims), x)
    want = ref(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)
    if want.ndim == 1:
        want = want[:, None]  # a tile stays 2-D: [P] is returned as [P, 1]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5)


@pytest.mark.parametrize("fn", [nl.sum, nl.max, nl.min, nl.prod, nl.all])
def test_plain_reductions_are_one_tensor_reduce(fn) -> None:
    def body(t):
        return fn(t, axis=1)
    _, trace = evaluate(body, randn(8, 16))
    assert body_ops(trace, body) == [Op.TENSOR_REDUCE]


def test_reduction_dtype_defaults_to_the_input_and_can_be_set() -> None:
    x = randn(16, 64, dtype=BF16)
    got, _ = evaluate(lambda t: nl.sum(t, axis=1), x)
    assert got.dtype == BF16
    exact = x.astype(np.float32).sum(axis=1)
    np.testing.assert_array_equal(got[:, 0], exact.astype(BF16))  # fp32 sum, one rounding
    wide, _ = evaluate(lambda t: nl.sum(t, axis=1, dtype=nl.float32), x)
    assert wide.dtype == np.float32
    np.testing.assert_allclose(wide[:, 0], exact, rtol=1e-6)


def test_all_is_a_logical_and_without_keepdims() -> None:
    x = RNG.uniform(1, 2, (8, 5, 4)).astype(np.float32)
    x[0, :, 0] = 0.0
    x[3, 2, 1] = 0.0
    got, _ = evaluate(lambda t: nl.all(t, axis=2), x)
    np.testing.assert_array_equal(got, np.all(x, axis=2).astype(np.float32))


def test_mean_is_a_float32_sum_and_a_scale() -> None:
    def body(t):
        return nl.mean(t, axis=(1, 2), dtype=nl.float32)
    x = randn(8, 3, 10, dtype=BF16)
    got, trace = evaluate(body, x)
    np.testing.assert_allclose(got[:, 0], x.astype(np.float32).mean(axis=(1, 2)), rtol=1e-5)
    assert body_ops(trace, body) == [Op.TENSOR_REDUCE, Op.TENSOR_SCALAR]


@pytest.mark.parametrize("shape, axis", [((32, 40), 1), ((8, 5, 12), 2), ((8, 5, 12), (1, 2))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_var_is_population_variance_with_the_keepdims_shape(shape, axis, keepdims) -> None:
    x = randn(*shape) * 3 + 5
    got, _ = evaluate(lambda t: nl.var(t, axis=axis, keepdims=keepdims), x)
    # the page: "keepdims: currently ignored; result always has keepdims=True shape"
    np.testing.assert_allclose(got, np.var(x, axis=axis, keepdims=True), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ softmax
def _softmax(x: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape, axis", [((64, 100), -1), ((64, 100), 1), ((8, 6, 20), 2),
                                         ((8, 6, 20), (1, 2)), ((8, 6, 20), [-2, -1])])
def test_softmax_matches_numpy(shape, axis) -> None:
    x = randn(*shape) * 4 + 1000.0  # large values: the max is subtracted first
    got, _ = evaluate(lambda t: nl.softmax(t, axis=axis), x)
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, tuple | list) else (axis,)))
    np.testing.assert_allclose(got, _softmax(x.astype(np.float64), axes), rtol=2e-5, atol=1e-7)


def test_softmax_default_axis_uniform_input_and_instructions() -> None:
    def body(t):
        return nl.softmax(t)
    got, trace = evaluate(body, np.ones((128, 512), np.float32))  # the page's example
    np.testing.assert_allclose(got, np.full((128, 512), 1 / 512), rtol=1e-6)
    assert body_ops(trace, body) == [Op.TENSOR_REDUCE, Op.ACTIVATION, Op.RECIPROCAL,
                                     Op.TENSOR_SCALAR]
    assert schedule(trace).total_s > 0


def test_softmax_over_part_of_a_row_and_dtype() -> None:
    def body(t):
        return nl.softmax(t, axis=2, dtype=nl.bfloat16)
    x = randn(4, 3, 16)
    got, trace = evaluate(body, x)
    assert got.dtype == BF16
    np.testing.assert_allclose(got.astype(np.float32), _softmax(x, (2,)), rtol=1e-2)
    assert body_ops(trace, body) == [Op.TENSOR_REDUCE, Op.TENSOR_TENSOR, Op.ACTIVATION,
                                     Op.TENSOR_REDUCE, Op.RECIPROCAL, Op.TENSOR_TENSOR]


# ------------------------------------------------------------------ rms_norm
def _rms_norm(x, w, axis, n, eps):
    return x / np.sqrt((x.astype(np.float64) ** 2).sum(axis=axis, keepdims=True) / n + eps) * w


def test_rms_norm_page_example_and_instructions() -> None:
    def body(x, w):
        return nl.rms_norm(x, w, axis=1, n=512)
    got, trace = evaluate(body, np.full((128, 512), 2.0, np.float32),
                          np.ones((128, 512), np.float32))
    np.testing.assert_allclose(got, 2.0 / np.sqrt(4.0 + 1e-6), rtol=1e-6)
    assert body_ops(trace, body) == [Op.ACTIVATION, Op.TENSOR_SCALAR, Op.ACTIVATION,
                                     Op.TENSOR_SCALAR, Op.TENSOR_TENSOR]


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_rms_norm_with_a_weight_row_broadcast_across_partitions(chip) -> None:
    x, w = randn(96, 64), randn(1, 64)
    got, _ = evaluate(lambda a, b: nl.rms_norm(a, b, axis=1, n=128, epsilon=0.5), x, w,
                      chip=chip)
    np.testing.assert_allclose(got, _rms_norm(x, w, 1, 128, 0.5), rtol=2e-5, atol=1e-6)


def test_rms_norm_over_the_last_axis_of_a_3d_tile_with_dtypes() -> None:
    x, w = randn(16, 4, 32), randn(16, 1, 32)
    got, _ = evaluate(lambda a, b: nl.rms_norm(a, b, axis=2, n=32, dtype=nl.bfloat16,
                                               compute_dtype=nl.float32), x, w)
    assert got.dtype == BF16
    np.testing.assert_allclose(got.astype(np.float32), _rms_norm(x, w, 2, 32, 1e-6),
                               rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------ where
def test_where_page_examples() -> None:
    ones, zeros = np.ones((128, 512), np.float32), np.zeros((128, 512), np.float32)
    tens, fives = np.full_like(ones, 10.0), np.full_like(ones, 5.0)
    np.testing.assert_array_equal(evaluate(nl.where, ones, tens, zeros)[0], tens)
    np.testing.assert_array_equal(evaluate(nl.where, zeros, tens, fives)[0], fives)


def test_where_is_bit_exact_and_records_a_predicated_copy() -> None:
    def body(c, a, b):
        return nl.where(c, a, b)
    cond = (RNG.uniform(size=(32, 40)) > 0.5).astype(np.float32)
    x, y = randn(32, 40) * 1e-8, randn(32, 40) * 1e8  # y + c * (x - y) would lose x
    got, trace = evaluate(body, cond, x, y)
    np.testing.assert_array_equal(got, np.where(cond != 0, x, y))
    assert body_ops(trace, body) == [Op.TENSOR_COPY, Op.TENSOR_SCALAR,
                                     Op.TENSOR_COPY_PREDICATED]


def test_where_with_uint8_condition_scalar_y_broadcast_and_promotion() -> None:
    cond = (RNG.uniform(size=(16, 24)) > 0.3).astype(np.uint8)
    x = randn(16, 24, dtype=np.float16)
    got, _ = evaluate(lambda c, a: nl.where(c, a, -1.5), cond, x)
    np.testing.assert_array_equal(got, np.where(cond != 0, x, np.float16(-1.5)))
    y = randn(16, 1, dtype=BF16)
    got, _ = evaluate(lambda c, a, b: nl.where(c, a, b), cond.astype(np.float32), x, y)
    assert got.dtype == np.float32  # fp16 with bf16 promotes to fp32
    np.testing.assert_array_equal(got, np.where(cond != 0, x.astype(np.float32),
                                                np.broadcast_to(y.astype(np.float32), x.shape)))


def test_compositions_trace_symbolically() -> None:
    def kernel(a, b):
        x, y = nl.load(a), nl.load(b)
        r = nl.matmul(nl.softmax(x), nl.rms_norm(y, y, axis=1, n=64))
        out = nl.ndarray(r.shape, nl.float32, buffer=nl.shared_hbm)
        sb = nl.ndarray(r.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(sb, r)
        nl.store(out, sb)
        return out
    trace = nki.trace(kernel, symbolic=True)(nki.TensorSpec((64, 128)),
                                               nki.TensorSpec((128, 64)))
    assert Op.NC_MATMUL in [i.opcode for i in trace.instructions]


# ------------------------------------------------------------------ constraints
X2, X3 = randn(8, 16), randn(8, 4, 6)


@pytest.mark.parametrize("body, arrays, match", [
    (lambda t: nl.sum(t, axis=0), (X2,), "partition dimension"),
    (lambda t: nl.max(t, axis=1), (X3,), "last contiguous"),
    (lambda t: nl.min(t, axis=(2, 2)), (X3,), "last contiguous"),
    (lambda t: nl.mean(t, axis=5), (X2,), "out of range"),
    (lambda t: nl.prod(t, axis=1.0), (X2,), "int or a tuple"),
    (lambda t: nl.var(t, axis=()), (X2,), "names no dimension"),
    (lambda t: nl.all(np.ones((8, 16)), axis=1), (X2,), "must be a tile"),
    (lambda t: nl.softmax(t, axis=0), (X2,), "partition dimension"),
    (lambda t: nl.softmax(t, axis=1), (X3,), "last contiguous"),
    (lambda t: nl.rms_norm(t, t, axis=1, n=0), (X2,), "positive"),
    (lambda t: nl.rms_norm(t, t, axis=1, n=16, epsilon="x"), (X2,), "epsilon"),
    (lambda t: nl.where(t, t, "y"), (X2,), "tile or a number"),
])
def test_usage_errors(body, arrays, match) -> None:
    expect_error(KernelUsageError, body, *arrays, match=match)


@pytest.mark.parametrize("body, arrays, match", [
    (lambda t, w: nl.rms_norm(t, w, axis=1, n=16), (X2, randn(8, 3)), "cannot broadcast"),
    (lambda t, w: nl.rms_norm(t, w, axis=2, n=6), (X3, randn(8, 6)), "cannot broadcast"),
    (lambda c, x: nl.where(c, x, x), (X2, X3), "same rank"),
    (lambda c, x: nl.where(c, x, 0.0), (X2, randn(8, 5)), "cannot broadcast"),
])
def test_shape_errors(body, arrays, match) -> None:
    expect_error(ShapeMismatchError, body, *arrays, match=match)


def test_a_tile_must_be_on_chip() -> None:
    def hbm_kernel(a):
        nl.sum(a, axis=1)

    with pytest.raises(BufferKindError, match="nl.sum: x .* is in"):
        nki.simulate(hbm_kernel)(X2)


def test_instructions_carry_the_callers_line() -> None:
    def body(t):
        return nl.softmax(t)
    _, trace = evaluate(body, X2)
    lines = {i.location.line for i in trace.instructions if i.location.function == "body"}
    assert lines == {body.__code__.co_firstlineno + 1}


@pytest.mark.parametrize("name", ["average", "prelu"])
def test_undocumented_names_stay_refused(name) -> None:
    with pytest.raises(KernelUsageError, match=f"nl.{name}: not implemented"):
        evaluate(lambda t: getattr(nl, name)(t, 0.5), X2)
