"""Errors of the timing model. Each names what went wrong and what to change."""

from __future__ import annotations

# one CapacityError for the whole house: the kernel language raises it for a tensor larger
# than its buffer, the allocator (these subclasses) for live tensors that do not fit together
from tessera.nki.errors import CapacityError


class SimError(Exception):
    """Base class of every `tessera.sim` error."""


class ScheduleError(SimError):
    """The instruction stream cannot be scheduled (unknown opcode, unmatched barrier, ...)."""


class SbufCapacityError(CapacityError, SimError):
    """Live SBUF tensors exceed the bytes per partition of the state buffer."""


class PsumCapacityError(CapacityError, SimError):
    """Live PSUM tensors need more accumulation banks than the core has."""
