"""Indirect DMA: `ap(..., vector_offset=ids, indirect_dim=0)` gathers and scatters rows."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki

RNG = np.random.default_rng(3)


def gather_kernel(table, ids, oob=nisa.oob_mode.error):
    n = ids.shape[0]
    d = table.shape[1]
    out = nl.ndarray((n, d), table.dtype, buffer=nl.shared_hbm)
    idx = nl.ndarray((n, 1), ids.dtype, buffer=nl.sbuf)
    nisa.dma_copy(idx, ids)
    rows = nl.ndarray((n, d), table.dtype, buffer=nl.sbuf)
    nisa.memset(rows, 0)
    nisa.dma_copy(rows, table.ap([[d, n], [1, d]], 0, vector_offset=idx, indirect_dim=0),
                  oob_mode=oob)
    nisa.dma_copy(out, rows)
    return out


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_gather_rows_by_runtime_ids(dtype) -> None:
    table = RNG.standard_normal((50, 24)).astype(dtype)
    ids = RNG.integers(0, 50, (37, 1)).astype(np.int32)
    result = nki.trace(gather_kernel)(table, ids)
    np.testing.assert_array_equal(result.outputs, table[ids[:, 0]])
    dma = [i for i in result.instructions if i.opcode is nki.Opcode.DMA_COPY][1]
    assert dma.attrs.indirect == "src"
    assert {ap.tensor for ap in dma.reads} == {"table", "sb0"}  # table and the id tile


def test_out_of_range_id_errors_or_skips() -> None:
    table = RNG.standard_normal((8, 4)).astype(np.float32)
    ids = np.array([[1], [9], [2]], np.int32)
    with pytest.raises(nki.OutOfBoundsError, match="offset 9"):
        nki.simulate(gather_kernel)(table, ids)
    out = nki.simulate(gather_kernel)(table, ids, nisa.oob_mode.skip)
    np.testing.assert_array_equal(out, [table[1], np.zeros(4), table[2]])


def test_scatter_rows_and_scalar_offset() -> None:
    def kernel(src, ids, base):
        n, d = src.shape
        out = nl.ndarray((10, d), src.dtype, buffer=nl.shared_hbm)
        zero = nl.zeros((10, d), src.dtype)
        nisa.dma_copy(out, zero)
        idx = nl.ndarray((n, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids)
        tile = nl.ndarray((n, d), src.dtype, buffer=nl.sbuf)
        nisa.dma_copy(tile, src)
        nisa.dma_copy(out.ap([[d, n], [1, d]], 0, vector_offset=idx, scalar_offset=base,
                             indirect_dim=0), tile)
        return out

    src = RNG.standard_normal((3, 5)).astype(np.float32)
    out = nki.simulate(kernel)(src, np.array([[0], [4], [2]], np.int32), 3)
    expected = np.zeros((10, 5), np.float32)
    expected[[3, 7, 5]] = src
    np.testing.assert_array_equal(out, expected)


def test_indirect_view_rules_and_symbolic_stream() -> None:
    table = RNG.standard_normal((50, 24)).astype(np.float32)
    ids = RNG.integers(0, 50, (16, 1)).astype(np.int32)
    functional = nki.trace(gather_kernel)(table, ids)
    symbolic = nki.trace(gather_kernel, symbolic=True)(
        nki.TensorSpec((50, 24), nl.float32), nki.TensorSpec((16, 1), nl.int32))
    assert functional.instructions == symbolic.instructions

    def float_ids(table, ids):
        idx = nl.ndarray((4, 1), nl.float32, buffer=nl.sbuf)
        table.ap([[24, 4], [1, 24]], 0, vector_offset=idx)

    with pytest.raises(nki.KernelUsageError, match="integer"):
        nki.simulate(float_ids)(table, ids)
