"""Helpers for the timing-model tests: hand-built instructions and small traced kernels."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from tessera.nki.buffers import Buffer
from tessera.nki.opcodes import OPCODES
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


# values for the attribute fields that have no default, when a test does not care
_REQUIRED = {"dge_mode": "unknown", "axes": (1, 0), "stationary_free": 128, "op": "add",
             "op0": "add", "op1": "add", "value": 1.0, "reduce_op": "add", "precision": "mxfp8"}


# other required fields by annotation (a test that cares passes its own value)
_BY_TYPE = {"str": "add", "int": 1, "float": 1.0, "bool": False}


def inst(opcode: Opcode, engine: Engine, reads: tuple, writes: tuple, partitions: int = 128,
         free: int = 512, index: int = 0, core: int = 0, **attrs: object) -> Instruction:
    """An Instruction as nki would record it, with the opcode's attribute type built from
    `attrs` (fields without a default that are not given take test values)."""
    kind = OPCODES[opcode].attrs
    defaults = {"moving_free": free, **_REQUIRED}
    given = {f.name: defaults.get(f.name, _BY_TYPE.get(str(f.type), 1)) for f in fields(kind)
             if f.default is MISSING}
    return Instruction(index, core, engine, opcode, tuple(reads), tuple(writes), partitions,
                       free, kind(**{**given, **attrs}), _LOC)


@pytest.fixture
def make_tile():
    return tile


@pytest.fixture
def make_hbm():
    return hbm


@pytest.fixture
def make_inst():
    return inst
