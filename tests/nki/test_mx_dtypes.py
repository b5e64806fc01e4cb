"""MX dtypes: the x4 containers (float8_e4m3fn_x4, float8_e5m2_x4, float4_e2m1fn_x4) and the
scale type float8_e8m0fnu.

From the NKI docs (nki.language dtypes; "MXFP Matrix Multiplication with NKI"): an x4 element
is one container of four values; fp8 x4 containers are 32 bits wide and fp4 x4 containers 16
bits, so a [P, F] x4 tensor holds P x 4F values. The reference packing (the tutorial's host
utilities) puts the first of four consecutive values in the lowest bits.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki import dtypes as dt
from tessera.nki.errors import DTypeError

RNG = np.random.default_rng(4)
MX = [(nl.float8_e4m3fn_x4, ml_dtypes.float8_e4m3fn, 8),
      (nl.float8_e5m2_x4, ml_dtypes.float8_e5m2, 8),
      (nl.float4_e2m1fn_x4, ml_dtypes.float4_e2m1fn, 4)]
MX_IDS = ["e4m3fn_x4", "e5m2_x4", "e2m1fn_x4"]


def reference_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Independent packing with Python ints: value j of each four at bits [j*bits, ...)."""
    codes = values.view(np.uint8).reshape(-1, 4)
    words = [sum((int(c) & ((1 << bits) - 1)) << (j * bits) for j, c in enumerate(group))
             for group in codes]
    out = np.array(words, dtype=np.uint32 if bits == 8 else np.uint16)
    return out.reshape(*values.shape[:-1], values.shape[-1] // 4)


def all_codes(element: type, bits: int) -> np.ndarray:
    """Every bit pattern of the element format, as values of that format."""
    return np.arange(1 << bits, dtype=np.uint8).view(element)


@pytest.mark.parametrize(("mx", "element", "bits"), MX, ids=MX_IDS)
def test_names_itemsizes_and_storage(mx, element, bits) -> None:
    assert str(mx) == mx.nki_name == mx.name
    assert dt.to_dtype(str(mx)) is mx and mx == str(mx)
    assert mx.itemsize == (4 if bits == 8 else 2)  # fp8 x4: 32 bits, fp4 x4: 16 bits
    assert mx.lanes == 4 and mx.element_bits == bits and mx.element == np.dtype(element)
    assert mx.is_packed and not mx.is_float and not mx.is_int
    assert mx.storage == (np.uint32 if bits == 8 else np.uint16)
    # host arrays: a one-field record of the containers that keeps the type's name, so an
    # np.zeros(shape, dtype=nl.float8_e4m3fn_x4) comes back as this type (vendor harnesses)
    host = np.zeros((2, 3), dtype=mx)
    assert mx.nki_name in str(host.dtype) and host.dtype.itemsize == mx.itemsize
    assert dt.to_dtype(host.dtype) is mx
    assert {mx: "found"}[host.dtype] == "found"  # tables keyed by the type take .dtype
    # the containers share uint32/uint16 storage, yet a numpy dtype still means the plain type
    assert dt.to_dtype(np.uint32) is nl.uint32 and dt.to_dtype(np.uint16) is nl.uint16


def test_e8m0_scale_type() -> None:
    e8m0 = nl.float8_e8m0fnu
    assert str(e8m0) == "float8_e8m0fnu" and e8m0.itemsize == 1
    assert np.dtype(e8m0) == ml_dtypes.float8_e8m0fnu
    assert dt.to_dtype(ml_dtypes.float8_e8m0fnu) is e8m0
    # nearest power of two, saturating at 2**127; no zero and no sign: those are NaN (0xFF)
    values = np.array([1.0, 0.25, 2.0 ** 127, 2.0 ** 126 * 3, 0.0, -2.0, np.inf, np.nan],
                      np.float32)
    bits = dt.cast(values, e8m0).view(np.uint8).tolist()
    assert bits == [127, 125, 254, 254, 255, 255, 255, 255]


@pytest.mark.parametrize(("mx", "element", "bits"), MX, ids=MX_IDS)
def test_pack_matches_the_reference_layout(mx, element, bits) -> None:
    values = RNG.choice(all_codes(element, bits), size=(3, 5, 16))
    packed = dt.pack_x4(values, mx)
    assert packed.dtype == mx.storage and packed.shape == (3, 5, 4)
    np.testing.assert_array_equal(packed, reference_pack(values, bits))
    if bits == 8 and np.little_endian:  # fp8: the tutorial's "view the bytes as uint32"
        np.testing.assert_array_equal(packed, values.view(np.uint32))


@pytest.mark.parametrize(("mx", "element", "bits"), MX, ids=MX_IDS)
def test_unpack_then_pack_round_trips_every_container_bit_exactly(mx, element, bits) -> None:
    # every code in every lane, plus random containers
    codes = np.arange(1 << bits, dtype=np.uint64)
    lanes = [codes << np.uint64(j * bits) for j in range(4)]
    containers = np.concatenate(lanes + [RNG.integers(0, 1 << (4 * bits), 500, np.uint64)])
    containers = containers.astype(mx.storage).reshape(-1, 4)  # 4 * 2**bits + 500 of them
    values = dt.unpack_x4(containers, mx)
    assert values.dtype == element and values.shape[-1] == containers.shape[-1] * 4
    np.testing.assert_array_equal(dt.pack_x4(values, mx), containers)


@pytest.mark.parametrize(("mx", "element", "bits"), MX, ids=MX_IDS)
def test_pack_then_unpack_round_trips_every_value_bit_exactly(mx, element, bits) -> None:
    values = np.tile(all_codes(element, bits), 4).reshape(-1, 8)  # NaNs included
    back = dt.unpack_x4(dt.pack_x4(values, mx), mx)
    assert back.dtype == element
    np.testing.assert_array_equal(back.view(np.uint8), values.view(np.uint8))


def test_pack_converts_other_floats_and_checks_shapes() -> None:
    floats = np.array([[0.5, -1.5, 1000.0, 3.0]], np.float32)
    e4m3 = dt.unpack_x4(dt.pack_x4(floats, nl.float8_e4m3fn_x4), nl.float8_e4m3fn_x4)
    np.testing.assert_array_equal(e4m3.astype(np.float32), [[0.5, -1.5, 448.0, 3.0]])
    fp4 = dt.unpack_x4(dt.pack_x4(floats, nl.float4_e2m1fn_x4), nl.float4_e2m1fn_x4)
    np.testing.assert_array_equal(fp4.astype(np.float32), [[0.5, -1.5, 6.0, 3.0]])
    with pytest.raises(DTypeError, match="multiple of 4"):
        dt.pack_x4(np.zeros((2, 6), np.float32), nl.float8_e5m2_x4)
    with pytest.raises(DTypeError, match="not a packed MX type"):
        dt.pack_x4(np.zeros(4, np.float32), nl.bfloat16)
    with pytest.raises(DTypeError, match="no NaN"):
        dt.pack_x4(np.full(4, np.nan, np.float32), nl.float4_e2m1fn_x4)
    with pytest.raises(DTypeError, match="containers are uint32"):
        dt.unpack_x4(np.zeros(4, np.uint8), nl.float8_e4m3fn_x4)


@pytest.mark.parametrize("buffer", ["sbuf", "hbm", "shared_hbm"])
@pytest.mark.parametrize(("mx", "element", "bits"), MX, ids=MX_IDS)
def test_allocate_mx_tensors(mx, element, bits, buffer) -> None:
    def kernel(a):
        t = nl.ndarray((128, 512), dtype=mx, buffer=getattr(nl, buffer))
        assert t.dtype is mx and t.shape == (128, 512) and t.itemsize == mx.itemsize
        z = nl.zeros((8, 16), dtype=mx, buffer=nl.sbuf)  # memset 0 is allowed on x4
        out = nl.ndarray((8, 16), dtype=mx, buffer=nl.shared_hbm)
        nisa.dma_copy(out, z)
        return out

    out = nki.simulate(kernel)(np.zeros((1, 1), np.float32))
    assert out.dtype == mx.storage
    np.testing.assert_array_equal(out, np.zeros((8, 16)))


def test_memset_refuses_nonzero_on_x4_and_poison_is_nan() -> None:
    def kernel(a):
        t = nl.ndarray((4, 8), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
        nisa.memset(t, 1.0)

    with pytest.raises(DTypeError, match="only 0"):
        nki.simulate(kernel)(np.zeros((1, 1), np.float32))
    poison = dt.uninitialised_fill(nl.float8_e5m2_x4)
    lanes = dt.unpack_x4(np.array([poison], np.uint32), nl.float8_e5m2_x4)
    assert np.isnan(lanes.astype(np.float32)).all()


def test_mx_data_moves_bit_exactly_through_a_kernel() -> None:
    """Host uint8 bytes viewed as x4 in the kernel (as the NKI MX tutorial does), copied
    through SBUF, and an x4 shared constant built from fp8 values."""
    def kernel(raw):
        data = raw.view(nl.float8_e4m3fn_x4)  # [P, 4F] bytes -> [P, F] containers
        tile = nl.ndarray(data.shape, nl.float8_e4m3fn_x4, buffer=nl.sbuf)
        nisa.dma_copy(tile, data)
        const = nl.shared_constant(VALUES, dtype=nl.float8_e4m3fn_x4)
        out = nl.ndarray((2,) + data.shape, nl.float8_e4m3fn_x4, buffer=nl.shared_hbm)
        nisa.dma_copy(out[0], tile)
        nisa.dma_copy(out[1], const)
        return out

    values = VALUES
    out = nki.simulate(kernel)(values.view(np.uint8))
    expected = dt.pack_x4(values, nl.float8_e4m3fn_x4)
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], expected)
    np.testing.assert_array_equal(dt.unpack_x4(out[0], nl.float8_e4m3fn_x4).view(np.uint8),
                                  values.view(np.uint8))


VALUES = RNG.choice(all_codes(ml_dtypes.float8_e4m3fn, 8), size=(16, 32))


def test_a_record_array_of_containers_is_an_mx_kernel_input() -> None:
    """np.zeros(shape, dtype=nl.float8_e4m3fn_x4) / pack_x4(...).view(nl.float8_e4m3fn_x4)
    arrays enter a kernel as that type, containers bit for bit."""
    seen = []

    @nki.jit
    def copy(x):
        seen.append(x.dtype)
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=t)
        return out

    codes = np.arange(4 * 8 * 4, dtype=np.float32).reshape(4, 32) / 16
    packed = dt.pack_x4(codes, nl.float8_e4m3fn_x4)
    host = packed.view(np.dtype(nl.float8_e4m3fn_x4))
    out = nki.simulate(copy)(host)
    assert seen == [nl.float8_e4m3fn_x4]
    np.testing.assert_array_equal(np.asarray(out).view(np.uint32), packed)
