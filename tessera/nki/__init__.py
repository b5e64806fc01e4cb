"""`tessera.nki`: an NKI-compatible kernel language that runs on the CPU.

Mirrors the layout of the real `nki` package (`nki.language`, `nki.isa`,
`nki.isa.constants`, `nki.typing`, `nki.compiler`, `nki.collectives`, `nki.lnc`,
`nki.dtype`, `nki.tensor`); `tessera.nki.compat.install()` makes `import nki` resolve here.
Which names of the NKI API reference are implemented, accepted or refused:
reference_names.yaml and docs/nki_coverage.md (`python -m tessera.nki.coverage`). Kernels
run eagerly on numpy (or symbolically on shapes) and record an instruction stream for the
timing model.
"""

from __future__ import annotations

from tessera.nki import collectives, compiler, dtype, isa, language, lnc, typing
from tessera.nki import ntensor as tensor  # nki.tensor: trace-time tensors and NkiTensor
from tessera.nki.collectives_run import multi_rank_simulate
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
from tessera.nki.legacy import baremetal, benchmark, simulate_kernel
from tessera.nki.runtime import default_chip
from tessera.nki.stream import AccessPattern, Engine, Instruction, Opcode, TensorInfo

__all__ = [
    "AccessPattern", "BufferKindError", "CapacityError", "DTypeError", "DmaSourceError",
    "Engine", "EngineAccessError", "Instruction", "Kernel", "KernelUsageError",
    "MatmulShapeError", "NkiError", "Opcode", "OutOfBoundsError", "PartitionError",
    "PsumBankError", "ShapeMismatchError", "TensorInfo", "TensorSpec", "TraceResult",
    "baremetal", "benchmark", "collectives", "compiler", "default_chip", "dtype", "isa", "jit",
    "language", "lnc", "multi_rank_simulate", "simulate", "simulate_kernel", "tensor", "trace",
    "typing",
]
