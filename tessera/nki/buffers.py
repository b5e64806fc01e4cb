"""Memories a tensor can live in."""

from __future__ import annotations

from enum import Enum


class Buffer(Enum):
    """Where a tensor lives. SBUF and PSUM are on-chip and partitioned (dimension 0)."""

    HBM = "hbm"
    SHARED_HBM = "shared_hbm"
    PRIVATE_HBM = "private_hbm"
    SBUF = "sbuf"
    PSUM = "psum"
    # lower-case aliases: NKI's `nl.MemoryRegion` names its members this way
    hbm = "hbm"
    shared_hbm = "shared_hbm"
    private_hbm = "private_hbm"
    sbuf = "sbuf"
    psum = "psum"

    def __repr__(self) -> str:
        return f"nl.{self.value}"


# Plain attributes, not properties: these are read several times per instruction.
for _member in Buffer:
    _member.on_chip = _member.value in ("sbuf", "psum")  # partitioned on-chip memory
    _member.is_hbm = not _member.on_chip
