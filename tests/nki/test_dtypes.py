"""Dtype casting rules (RNE, fp8 saturation, int saturation), names and promotion."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import dtypes as dt
from tessera.nki.errors import DTypeError

ONE = 1.0


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def bits16(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(values).view(np.uint16)]


# ------------------------------------------------------------------ bf16 / fp16 / tf32
def test_bfloat16_rounds_to_nearest_even() -> None:
    ulp = 2.0 ** -7  # bf16 has 7 mantissa bits: spacing above 1.0
    values = f32(1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2 ** -20, -(1 + 3 * ulp / 2),
                 1 + ulp / 4)
    out = dt.cast(values, dt.bfloat16)
    assert out.dtype == ml_dtypes.bfloat16
    expected = [1.0, 1 + 2 * ulp, 1 + ulp, -(1 + 2 * ulp), 1.0]
    np.testing.assert_array_equal(out.astype(np.float32), f32(*expected))


def test_float16_rounds_to_nearest_even_and_overflows_to_inf() -> None:
    ulp = 2.0 ** -10
    out = dt.cast(f32(1 + ulp / 2, 1 + 3 * ulp / 2, 2048 + 1, 2048 + 3, 70000.0, -70000.0),
                  dt.float16)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out.astype(np.float32),
                                  f32(1.0, 1 + 2 * ulp, 2048, 2052, np.inf, -np.inf))


def test_tfloat32_keeps_ten_mantissa_bits_in_float32_storage() -> None:
    ulp = 2.0 ** -10
    values = f32(1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2 ** -20, -(1 + 3 * ulp / 2),
                 1 + ulp, np.inf, -np.inf, np.nan, 0.0)
    out = dt.cast(values, dt.tfloat32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(
        out[:8], f32(1.0, 1 + 2 * ulp, 1 + ulp, -(1 + 2 * ulp), 1 + ulp, np.inf, -np.inf,
                     np.nan))
    # every result is representable with 10 mantissa bits: the low 13 bits are zero
    finite = out[np.isfinite(out)]
    assert not np.any(finite.view(np.uint32) & np.uint32(0x1FFF))


def test_tfloat32_matches_bit_arithmetic_on_random_values() -> None:
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(4096) * 10.0 ** rng.integers(-20, 20, 4096)).astype(np.float32)
    out = dt.cast(values, dt.tfloat32)
    # reference: round the float64 value to 10 mantissa bits with numpy's RNE rint
    mant, exp = np.frexp(values.astype(np.float64))
    ref = np.ldexp(np.rint(mant * 2.0 ** 11), exp - 11).astype(np.float32)
    np.testing.assert_array_equal(out, ref)


# ------------------------------------------------------------------ fp8
@pytest.mark.parametrize(("dtype", "top"), [
    (dt.float8_e4m3, 240.0), (dt.float8_e4m3fn, 448.0), (dt.float8_e5m2, 57344.0)])
def test_fp8_saturates_large_finite_values(dtype: dt.DType, top: float) -> None:
    out = dt.cast(f32(top, top * 1.1, 1e30, -1e30, -top * 4), dtype).astype(np.float32)
    np.testing.assert_array_equal(out, f32(top, top, top, -top, -top))


def test_fp8_infinities_and_nan() -> None:
    special = f32(np.inf, -np.inf, np.nan)
    e4m3 = dt.cast(special, dt.float8_e4m3).astype(np.float32)
    np.testing.assert_array_equal(e4m3, f32(np.inf, -np.inf, np.nan))
    e5m2 = dt.cast(special, dt.float8_e5m2).astype(np.float32)
    np.testing.assert_array_equal(e5m2, f32(np.inf, -np.inf, np.nan))
    fn = dt.cast(special, dt.float8_e4m3fn).astype(np.float32)
    assert np.all(np.isnan(fn))


@pytest.mark.parametrize("dtype", [dt.float8_e4m3, dt.float8_e4m3fn, dt.float8_e5m2])
def test_fp8_rounds_to_nearest_even(dtype: dt.DType) -> None:
    ulp = 2.0 ** -dtype.mantissa_bits
    values = f32(1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + ulp / 8, -(1 + ulp / 2))
    out = dt.cast(values, dtype).astype(np.float32)
    np.testing.assert_array_equal(out, f32(1.0, 1 + 2 * ulp, 1 + ulp, -1.0))


# ------------------------------------------------------------------ ints and bool
def test_float_to_int_rounds_half_even_and_saturates() -> None:
    values = f32(2.5, 3.5, -2.5, -0.5, 1.4999, 1e10, -1e10, np.nan, np.inf, -np.inf)
    out = dt.cast(values, dt.int32)
    assert out.dtype == np.int32
    big, small = np.iinfo(np.int32).max, np.iinfo(np.int32).min
    assert out.tolist() == [2, 4, -2, 0, 1, big, small, 0, big, small]
    assert dt.cast(f32(-5, 300, 254.5, 255.5), dt.uint8).tolist() == [0, 255, 254, 255]
    assert dt.cast(f32(-129, 127.5), dt.int8).tolist() == [-128, 127]


def test_int_to_int_saturates() -> None:
    values = np.array([-70000, -5, 70000], dtype=np.int32)
    assert dt.cast(values, dt.int16).tolist() == [-32768, -5, 32767]
    assert dt.cast(values, dt.uint16).tolist() == [0, 0, 65535]
    assert dt.cast(np.array([4294967295], np.uint32), dt.int32).tolist() == [2 ** 31 - 1]


def test_bool_is_nonzero() -> None:
    out = dt.cast(f32(0.0, -0.0, 0.5, -3.0), dt.bool_)
    assert out.dtype == np.bool_
    assert out.tolist() == [False, False, True, True]
    assert dt.cast(np.array([0, 7], np.int32), dt.bool_).tolist() == [False, True]


def test_float64_values_round_once_through_float32() -> None:
    # engines hand float32 to the cast; float64 input is first rounded to float32
    x = np.float64(1 + 2 ** -11 + 2 ** -40)  # just above an fp16 tie, a tie in float32
    assert float(dt.cast(np.array([x]), dt.float16)[0]) == 1.0
    assert float(dt.cast(np.array([x]), dt.float32)[0]) == 1 + 2 ** -11


# ------------------------------------------------------------------ names and promotion
@pytest.mark.parametrize(("value", "expected"), [
    (nl.float32, dt.float32), (np.float32, dt.float32), (np.dtype(np.float16), dt.float16),
    (ml_dtypes.bfloat16, dt.bfloat16), (np.dtype(ml_dtypes.bfloat16), dt.bfloat16),
    (ml_dtypes.float8_e4m3, dt.float8_e4m3), (ml_dtypes.float8_e4m3fn, dt.float8_e4m3fn),
    (ml_dtypes.float8_e5m2, dt.float8_e5m2), ("bfloat16", dt.bfloat16),
    ("tfloat32", dt.tfloat32), ("float8_e5m2", dt.float8_e5m2), (np.int8, dt.int8),
    (np.uint32, dt.uint32), ("int32", dt.int32), (np.bool_, dt.bool_), ("bool", dt.bool_),
    (bool, dt.bool_),
])
def test_to_dtype_accepts_every_spelling(value: object, expected: dt.DType) -> None:
    assert dt.to_dtype(value) is expected


@pytest.mark.parametrize("value", [np.float64, np.int64, "float128", "fp32", object(), None,
                                   float, 3])
def test_to_dtype_rejects_unknown(value: object) -> None:
    with pytest.raises(DTypeError, match="unsupported dtype"):
        dt.to_dtype(value)


@pytest.mark.parametrize(("a", "b", "expected"), [
    (dt.float32, dt.float32, dt.float32),
    (dt.int32, dt.bfloat16, dt.bfloat16),
    (dt.float8_e4m3, dt.int32, dt.float8_e4m3),
    (dt.float16, dt.bfloat16, dt.float32),
    (dt.float8_e4m3, dt.float8_e5m2, dt.bfloat16),
    (dt.int32, dt.uint32, dt.float32),
    (dt.int8, dt.int32, dt.int32),
    (dt.bfloat16, dt.float32, dt.float32),
    (dt.uint8, dt.uint16, dt.uint16),
    (dt.int8, dt.uint8, dt.int16),
    (dt.int16, dt.uint16, dt.int32),
    (dt.int16, dt.uint8, dt.int16),
    (dt.int8, dt.uint32, dt.float32),
    (dt.float32, dt.tfloat32, dt.float32),
    (dt.float8_e4m3, dt.float8_e4m3fn, dt.bfloat16),
    (dt.bool_, dt.int8, dt.int8),
    (dt.bool_, dt.uint8, dt.uint8),
    (dt.bool_, dt.float16, dt.float16),
])
def test_promote(a: dt.DType, b: dt.DType, expected: dt.DType) -> None:
    assert dt.promote(a, b) is expected
    assert dt.promote(b, a) is expected


def test_promote_is_commutative_and_closed() -> None:
    for a in dt.ALL_DTYPES:
        for b in dt.ALL_DTYPES:
            assert dt.promote(a, b) is dt.promote(b, a), (a, b)
            assert dt.promote(a, b) in dt.ALL_DTYPES


def test_numpy_astype_accepts_kernel_dtypes() -> None:
    host = np.array([1.0, 1 + 2 ** -8, 3.0], dtype=np.float32)
    out = host.astype(nl.bfloat16)
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out.astype(np.float32), f32(1.0, 1.0, 3.0))
    assert np.zeros(3, dtype=nl.int16).dtype == np.int16


def test_dtype_properties() -> None:
    assert dt.bfloat16.itemsize == 2 and dt.tfloat32.itemsize == 4
    assert dt.float8_e5m2.is_float and not dt.float8_e5m2.is_int
    assert dt.uint8.is_int and not dt.bool_.is_int
    assert dt.tfloat32 != dt.float32
    assert repr(dt.bfloat16) == "nl.bfloat16"


# ------------------------------------------------------------------ uninitialised memory
@pytest.mark.parametrize("dtype", [nl.float32, nl.bfloat16, nl.float8_e4m3, nl.int32, nl.uint8,
                                   nl.int16])
def test_uninitialised_tensors_read_as_poison(dtype: dt.DType) -> None:
    def kernel(a):
        out = nl.ndarray((4, 8), dtype, buffer=nl.shared_hbm)
        return out

    def via_sbuf(a):
        tile = nl.ndarray((4, 8), dtype, buffer=nl.sbuf)
        out = nl.ndarray((4, 8), dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, tile)
        return out

    for fn in (kernel, via_sbuf):
        out = nki.simulate(fn)(np.zeros((4, 8), np.float32))
        assert out.dtype == dtype.storage
        if dtype.is_float:
            assert np.all(np.isnan(out.astype(np.float32)))
        else:
            assert np.all(out == dt.uninitialised_fill(dtype))
    assert dt.uninitialised_fill(dt.int32) not in (0, 1)
