"""`tessera.nki`: an NKI-compatible kernel language that runs on the CPU.

Mirrors the layout of the real `nki` package (`nki.language`, `nki.isa`,
`nki.isa.constants`, `nki.typing`, `nki.compiler`, `nki.tensor`); `tessera.nki.compat.install()`
makes `import nki` resolve here. Kernels run eagerly on numpy (or symbolically on shapes)
and record an instruction stream for the timing model.
"""

from __future__ import annotations

from tessera.nki import compiler, isa, language, typing
from tessera.nki import tensor as tensor
from tessera.nki.errors import (
    BufferKindError,
    CapacityError,
    DmaSourceError,
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    MatmulShapeError,
    NkiError,
    OutOfBoundsError,
    PartitionError,
    PsumBankError,
    ShapeMismatchError,
)
from tessera.nki.launch import Kernel, TensorSpec, TraceResult, jit, simulate, trace
from tessera.nki.runtime import default_chip
from tessera.nki.stream import AccessPattern, Engine, Instruction, Opcode, TensorInfo

__all__ = [
    "AccessPattern", "BufferKindError", "CapacityError", "DTypeError", "DmaSourceError",
    "Engine", "EngineAccessError", "Instruction", "Kernel", "KernelUsageError",
    "MatmulShapeError", "NkiError", "Opcode", "OutOfBoundsError", "PartitionError",
    "PsumBankError", "ShapeMismatchError", "TensorInfo", "TensorSpec", "TraceResult",
    "compiler", "default_chip", "isa", "jit", "language", "simulate", "tensor", "trace", "typing",
]
