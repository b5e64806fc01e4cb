"""Hardware-rule errors raised by kernels: one class per rule family.

Every error carries the rule it breaks and the kernel's source location (file:line), so a
kernel author sees *what* is wrong and *where* without reading a traceback from inside
Tessera.
"""

from __future__ import annotations


class NkiError(Exception):
    """Base class of every error a kernel can raise in `tessera.nki`.

    `rule` names the hardware rule, `location` is "file:line" of the kernel statement that
    broke it (filled in by the runtime when the error is raised inside a kernel).
    """

    rule: str = "nki"

    def __init__(self, message: str, location: str | None = None) -> None:
        self.detail = message
        self.location = location
        super().__init__(self._render())

    def _render(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"[{self.rule}]{where}: {self.detail}"

    def with_location(self, location: str | None) -> NkiError:
        """Attach the kernel location if none is set yet, and return self."""
        if self.location is None and location is not None:
            self.location = location
            self.args = (self._render(),)
        return self


class PartitionError(NkiError):
    """A tile uses more than pmax (128) partitions, or an illegal partition start."""

    rule = "partition-limit"


class MatmulShapeError(NkiError):
    """nc_matmul / nc_transpose operand shapes outside the Tensor engine's limits."""

    rule = "matmul-shape"


class BufferKindError(NkiError):
    """An instruction reads or writes a memory it cannot access (e.g. matmul from HBM)."""

    rule = "buffer-kind"


class PsumBankError(NkiError):
    """A PSUM access spans more than one 2 KiB-per-partition bank."""

    rule = "psum-bank"


class DmaSourceError(NkiError):
    """dma_copy/dma_transpose with an illegal source or destination (e.g. reading PSUM)."""

    rule = "dma-source"


class EngineAccessError(NkiError):
    """An engine touches a memory or does an operation the hardware forbids."""

    rule = "engine-access"


class ShapeMismatchError(NkiError):
    """Element-wise operands disagree in partitions or elements per partition."""

    rule = "shape-mismatch"


class OutOfBoundsError(NkiError, IndexError):
    """An index or view reaches outside its tensor."""

    rule = "out-of-bounds"


class DTypeError(NkiError, TypeError):
    """A dtype an instruction does not accept, or an unknown dtype."""

    rule = "dtype"


class CapacityError(NkiError):
    """A single tensor larger than the buffer it is placed in."""

    rule = "capacity"


class KernelUsageError(NkiError):
    """The kernel API is misused (bad argument, wrong launch, missing output...)."""

    rule = "usage"


class CoreRaceError(KernelUsageError):
    """The two cores of an LNC=2 launch access the same shared-HBM bytes between two
    core_barriers, one of them writing, so the result depends on which core goes first."""

    rule = "lnc-race"


class CoreDeadlockError(KernelUsageError):
    """A core of an LNC=2 launch waits (core_barrier, sendrecv) for a peer that never comes."""

    rule = "lnc-deadlock"
