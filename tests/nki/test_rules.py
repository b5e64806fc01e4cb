"""One test per hardware rule: the specific error class, the rule name, and file:line.

Each offending statement carries a `# rule:<tag>` comment; the expected line number is
found by searching this file for the tag, so the tests do not depend on line numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import (
    BufferKindError,
    CapacityError,
    DmaSourceError,
    DTypeError,
    EngineAccessError,
    MatmulShapeError,
    NkiError,
    OutOfBoundsError,
    PartitionError,
    PsumBankError,
    ShapeMismatchError,
)

with open(__file__, encoding="utf-8") as _f:
    _LINES = _f.read().splitlines()


def line_of(tag: str) -> int:
    """1-based line of the statement tagged `# rule:<tag>` in this file."""
    hits = [i + 1 for i, text in enumerate(_LINES) if text.rstrip().endswith(f"# rule:{tag}")]
    assert len(hits) == 1, f"tag {tag} found {len(hits)} times"
    return hits[0]


def expect(exc: type[NkiError], tag: str, kernel: Callable[..., object], *args: object,
           chip: str | None = None) -> NkiError:
    """Run `kernel` and check the error class, rule name and kernel location."""
    with pytest.raises(exc) as info:
        nki.simulate(kernel, chip=chip)(*args)
    err = info.value
    message = str(err)
    assert f"[{exc.rule}]" in message
    assert f"{__file__}:{line_of(tag)}" in message, message
    assert err.location == f"{__file__}:{line_of(tag)}"
    return err


X = np.zeros((128, 64), dtype=np.float32)


# ------------------------------------------------------------------ partitions
def test_ndarray_with_more_than_pmax_partitions() -> None:
    def kernel(a):
        nl.ndarray((129, 4), nl.float32, buffer=nl.sbuf)  # rule:pmax-alloc

    err = expect(PartitionError, "pmax-alloc", kernel, X)
    assert "129" in str(err) and "pmax=128" in str(err)


def test_view_based_instruction_with_more_than_pmax_partitions() -> None:
    def kernel(a):
        t = nl.ndarray((128, 4), nl.float32, buffer=nl.sbuf)
        wide = t.ap([[0, 256], [1, 4]])  # every partition twice: 256 partitions
        dst = nl.ndarray((128, 8), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst, wide)  # rule:pmax-view

    err = expect(PartitionError, "pmax-view", kernel, X)
    assert "256" in str(err)


def test_compute_op_at_an_illegal_partition_start() -> None:
    def kernel(a):
        t = nl.ndarray((128, 16), nl.float32, buffer=nl.sbuf)
        nisa.memset(t, 0.0)
        nisa.tensor_tensor(t[5:13], t[32:40], t[64:72], op=nl.add)  # rule:pstart

    err = expect(PartitionError, "pstart", kernel, X)
    assert "partition 5" in str(err)


def test_legal_partition_starts_pass() -> None:
    def kernel(a):
        t = nl.ndarray((128, 16), nl.float32, buffer=nl.sbuf)
        nisa.memset(t, 1.0)
        nisa.tensor_tensor(t[96:104], t[32:40], t[64:72], op=nl.add)
        out = nl.ndarray((8, 16), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, t[96:104])
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(X), np.full((8, 16), 2.0))


# ------------------------------------------------------------------ matmul
def _matmul_kernel(k: int, m: int, n: int, tag_dst_shape: tuple[int, int] | None = None
                   ) -> Callable[..., object]:
    def kernel(a):
        st = nl.ndarray((k, m), nl.bfloat16, buffer=nl.sbuf)
        mv = nl.ndarray((k, n), nl.bfloat16, buffer=nl.sbuf)
        ps = nl.ndarray(tag_dst_shape or (m, n), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, st, mv)  # rule:matmul-shape

    return kernel


def test_matmul_stationary_too_wide() -> None:
    err = expect(MatmulShapeError, "matmul-shape", _matmul_kernel(128, 129, 64, (128, 64)), X)
    assert "128x129" in str(err)


def test_matmul_moving_too_wide() -> None:
    err = expect(MatmulShapeError, "matmul-shape", _matmul_kernel(128, 64, 513, (64, 512)), X)
    assert "513" in str(err)


def test_matmul_contraction_mismatch() -> None:
    def kernel(a):
        st = nl.ndarray((64, 32), nl.bfloat16, buffer=nl.sbuf)
        mv = nl.ndarray((128, 32), nl.bfloat16, buffer=nl.sbuf)
        ps = nl.ndarray((32, 32), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, st, mv)  # rule:contract

    err = expect(MatmulShapeError, "contract", kernel, X)
    assert "K=64" in str(err) and "K=128" in str(err)


def test_matmul_inputs_must_be_in_sbuf() -> None:
    def kernel(a):
        mv = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        ps = nl.ndarray((64, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, a, mv)  # rule:mm-hbm

    err = expect(BufferKindError, "mm-hbm", kernel, X)
    assert "stationary" in str(err) and "hbm" in str(err)


def test_matmul_output_must_be_in_psum() -> None:
    def kernel(a):
        st = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        out = nl.ndarray((64, 64), nl.float32, buffer=nl.sbuf)
        nisa.nc_matmul(out, st, st)  # rule:mm-dst

    err = expect(BufferKindError, "mm-dst", kernel, X)
    assert "dst" in str(err) and "psum" in str(err)


def test_matmul_integer_input_rejected() -> None:
    def kernel(a):
        st = nl.ndarray((128, 64), nl.int32, buffer=nl.sbuf)
        ps = nl.ndarray((64, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, st, st)  # rule:mm-int

    err = expect(DTypeError, "mm-int", kernel, X)
    assert "int32" in str(err)


# ------------------------------------------------------------------ PSUM banks
def test_matmul_into_a_view_straddling_two_banks() -> None:
    def kernel(a):
        st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
        mv = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
        ps = nl.ndarray((128, 1024), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, 256:768], st, mv)  # rule:bank-offset

    err = expect(PsumBankError, "bank-offset", kernel, X)
    assert "2048 bytes" in str(err)


def test_matmul_into_a_strided_view_wider_than_a_bank() -> None:
    def kernel(a):
        st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
        mv = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
        ps = nl.ndarray((128, 1024), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, ::2], st, mv)  # rule:bank-wide

    expect(PsumBankError, "bank-wide", kernel, X)


def test_matmul_into_the_second_bank_is_fine() -> None:
    def kernel(a):
        st = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
        mv = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
        nisa.memset(st, 1.0)
        nisa.memset(mv, 2.0)
        ps = nl.ndarray((128, 1024), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, 512:1024], st, mv)
        sb = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(sb, ps[:, 512:1024])
        out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, sb)
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(X), np.full((128, 512), 256.0))


# ------------------------------------------------------------------ memories and engines
def test_dma_cannot_read_psum() -> None:
    def kernel(a):
        ps = nl.ndarray((128, 64), nl.float32, buffer=nl.psum)
        out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, ps)  # rule:dma-psum
        return out

    err = expect(DmaSourceError, "dma-psum", kernel, X)
    assert "PSUM" in str(err)


def test_gpsimd_cannot_touch_psum() -> None:
    def kernel(a):
        ps = nl.ndarray((128, 64), nl.float32, buffer=nl.psum)
        sb = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(sb, ps, sb, op=nl.add, engine=nisa.gpsimd_engine)  # rule:gpsimd

    err = expect(EngineAccessError, "gpsimd", kernel, X)
    assert "GpSimd" in str(err)


def test_compute_engine_cannot_read_hbm() -> None:
    def kernel(a):
        sb = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(sb, a)  # rule:compute-hbm

    expect(BufferKindError, "compute-hbm", kernel, X)


# ------------------------------------------------------------------ element-wise shapes
def test_elementwise_partition_mismatch() -> None:
    def kernel(a):
        x = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        y = nl.ndarray((64, 128), nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(x, x, y, op=nl.add)  # rule:ew-part

    err = expect(ShapeMismatchError, "ew-part", kernel, X)
    assert "128x64 vs 64x128" in str(err)


def test_elementwise_free_size_mismatch() -> None:
    def kernel(a):
        x = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        y = nl.ndarray((128, 4, 8), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(y, x)  # rule:ew-free

    expect(ShapeMismatchError, "ew-free", kernel, X)


def test_elementwise_same_elements_different_free_shape_is_fine() -> None:
    def kernel(a):
        x = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(x, a)
        y = nl.ndarray((128, 8, 8), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(y, x)
        out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(out, y)
        return out

    a = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(kernel)(a), a)


# ------------------------------------------------------------------ bounds and dtypes
def test_out_of_bounds_index_in_a_kernel() -> None:
    def kernel(a):
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(t, a[nl.ds(64, 128), :])  # rule:oob-index

    err = expect(OutOfBoundsError, "oob-index", kernel, X)
    assert "nl.ds(64, 128)" in str(err)


def test_out_of_bounds_view_in_a_kernel() -> None:
    def kernel(a):
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        view = t.ap([[64, 100], [1, 32]], offset=40)  # checked where an instruction uses it
        nisa.memset(view, 0.0)  # rule:oob-view

    err = expect(OutOfBoundsError, "oob-view", kernel, X)
    assert "partition row" in str(err)


def test_an_out_of_bounds_raw_view_that_is_never_used_is_fine() -> None:
    """A kernel may build a raw .ap() view for a case its own guard then skips."""
    @nki.jit
    def kernel(a):
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        t.ap([[64, 128], [1, 65]], offset=0)  # one element past each row: never used
        nisa.memset(t, 1.0)
        out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=t)
        return out

    np.testing.assert_array_equal(nki.simulate(kernel)(X), 1.0)


def test_bitwise_op_on_floats() -> None:
    def kernel(a):
        x = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(x, x, x, op=nl.bitwise_and)  # rule:bitvec-float

    err = expect(DTypeError, "bitvec-float", kernel, X)
    assert "bitwise_and" in str(err)


# ------------------------------------------------------------------ capacity
def test_tensor_larger_than_sbuf() -> None:
    def kernel(a):
        nl.ndarray((128, 200000), nl.float32, buffer=nl.sbuf)  # rule:capacity

    err = expect(CapacityError, "capacity", kernel, X, chip="trn1")
    assert "800000" in str(err) and "trn1" in str(err)


def test_tensor_larger_than_psum() -> None:
    def kernel(a):
        nl.ndarray((128, 4097), nl.float32, buffer=nl.psum)  # rule:psum-capacity

    expect(CapacityError, "psum-capacity", kernel, X)


def test_error_outside_a_kernel_has_a_clear_message() -> None:
    with pytest.raises(nki.KernelUsageError, match="inside a kernel"):
        nl.ndarray((4, 4), nl.float32, buffer=nl.sbuf)
