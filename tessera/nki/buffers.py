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

    @property
    def on_chip(self) -> bool:
        """True for the partitioned on-chip memories (SBUF, PSUM)."""
        return self in (Buffer.SBUF, Buffer.PSUM)

    @property
    def is_hbm(self) -> bool:
        return not self.on_chip

    def __repr__(self) -> str:
        return f"nl.{self.value}"
