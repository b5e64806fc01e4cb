"""Errors of the timing model. Each names what went wrong and what to change."""

from __future__ import annotations


class SimError(Exception):
    """Base class of every `tessera.sim` error."""


class CalibrationError(SimError):
    """The calibration file is malformed, or an override names an unknown constant."""


class ScheduleError(SimError):
    """The instruction stream cannot be scheduled (unknown opcode, unmatched barrier, ...)."""


class CapacityError(SimError):
    """Simultaneously live on-chip tensors do not fit in a memory."""


class SbufCapacityError(CapacityError):
    """Live SBUF tensors exceed the bytes per partition of the state buffer."""


class PsumCapacityError(CapacityError):
    """Live PSUM tensors need more accumulation banks than the core has."""
