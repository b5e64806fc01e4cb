"""Helpers for the timing-model tests: hand-built instructions and small traced kernels."""

from __future__ import annotations

import pytest

from tessera.nki.buffers import Buffer
from tessera.nki.stream import AccessPattern, Engine, Instruction, Opcode, SourceLocation

_LOC = SourceLocation("test_kernel.py", 1, "kernel")
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3": 1, "int32": 4,
             "uint8": 1}


def tile(name: str, partitions: int, free: int, dtype: str = "float32",
         buffer: Buffer = Buffer.SBUF, row: int | None = None, offset: int = 0) -> AccessPattern:
    """A [partitions, free] contiguous view of an on-chip tensor with `row` elements/partition."""
    row = free if row is None else row
    return AccessPattern(name, buffer, dtype, _ITEMSIZE[dtype], offset,
                         ((row, partitions), (1, free)), row)


def hbm(name: str, rows: int, cols: int, dtype: str = "float32", row: int | None = None,
        offset: int = 0) -> AccessPattern:
    """A [rows, cols] view of an HBM tensor whose rows are `row` elements apart."""
    row = cols if row is None else row
    return AccessPattern(name, Buffer.HBM, dtype, _ITEMSIZE[dtype], offset,
                         ((row, rows), (1, cols)), 0)


def inst(opcode: Opcode, engine: Engine, reads: tuple, writes: tuple, partitions: int = 128,
         free: int = 512, index: int = 0, core: int = 0, **flags: object) -> Instruction:
    """An Instruction as nki would record it (flags sorted by name)."""
    return Instruction(index, core, engine, opcode, tuple(reads), tuple(writes), partitions,
                       free, tuple(sorted(flags.items())), _LOC)


@pytest.fixture
def make_tile():
    return tile


@pytest.fixture
def make_hbm():
    return hbm


@pytest.fixture
def make_inst():
    return inst
