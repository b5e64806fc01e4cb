"""Shared validation and recording helpers for ISA instructions.

Each instruction module defines, per opcode, the validation rule (raising a specific
`NkiError`), the functional rule (numpy, skipped in symbolic mode) and records one
`Instruction`. The cost rule lives in `tessera.sim` and is keyed by `Opcode`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tessera.nki.attrs import OpAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.dynamic_views import DynamicTileView
from tessera.nki.errors import (
    BufferKindError,
    EngineAccessError,
    KernelUsageError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.opcodes import OPCODES
from tessera.nki.runtime import CoreContext
from tessera.nki.stream import Engine, Instruction, Opcode
from tessera.nki.tensor import NkiTensor

# the streaming engines (one element per lane per cycle); their accesses start at legal
# partitions only
STREAM_ENGINES = (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)


def tensor_arg(value: object, what: str, op: str) -> NkiTensor:
    """`value` as an NkiTensor, or a usage error naming the argument."""
    if not isinstance(value, NkiTensor):
        raise KernelUsageError(f"{op}: {what} must be an NKI tensor (nl.ndarray or a view), "
                               f"got {type(value).__name__}")
    return value


def require_on_chip(t: NkiTensor, what: str, op: str,
                    allowed: tuple[Buffer, ...] = (Buffer.SBUF, Buffer.PSUM)) -> None:
    """The operand must live in one of `allowed` (on-chip memories by default)."""
    if t.buffer not in allowed:
        names = "/".join(b.value for b in allowed)
        raise BufferKindError(f"{op}: {what} {t.name}{list(t.shape)} is in "
                              f"{t.buffer.value}; this instruction needs it in {names}")


def check_partitions(ctx: CoreContext, t: NkiTensor, what: str, op: str,
                     engine: Engine | None = None) -> None:
    """Partition count <= pmax, and compute engines start at a legal partition."""
    limits = ctx.run.limits
    if t.buffer.on_chip and t.partitions > limits.pmax:
        raise PartitionError(f"{op}: {what} {t.name}{list(t.shape)} spans {t.partitions} "
                             f"partitions; the limit is pmax={limits.pmax}")
    if engine in STREAM_ENGINES and t.buffer.on_chip:
        start = t.offset // t.storage.partition_elems if t.storage.partition_elems else 0
        n = t.partitions
        legal = limits.allowed_partition_starts(n)  # from the core preset's access rules
        if start not in legal:
            raise PartitionError(
                f"{op}: {what} {t.name} starts at partition {start} with {n} partitions; "
                f"the {engine.value} engine can start an access of {n} partitions only at "
                f"partition {' or '.join(map(str, legal))}")


def check_same_layout(a: NkiTensor, b: NkiTensor, what_a: str, what_b: str, op: str) -> None:
    """Element-wise operands: same partitions and same elements per partition."""
    if a.partitions != b.partitions or a.free_size != b.free_size:
        raise ShapeMismatchError(
            f"{op}: {what_a} {a.name}{list(a.shape)} and {what_b} {b.name}{list(b.shape)} "
            f"differ: {a.partitions}x{a.free_size} vs {b.partitions}x{b.free_size} "
            "(partitions x elements per partition must match)")


def check_one_psum_input(a: NkiTensor, b: NkiTensor, what_a: str, what_b: str,
                         op: str) -> None:
    """Two-input element-wise instructions read at most one operand from PSUM."""
    if a.buffer is Buffer.PSUM and b.buffer is Buffer.PSUM:
        raise EngineAccessError(f"{op}: {what_a} {a.name} and {what_b} {b.name} cannot both "
                                "be in PSUM (at most one input may be)")


def resolve_engine(engine: object, opcode: Opcode, op: str) -> Engine:
    """The engine an instruction runs on: the hint if given and allowed (`OPCODES`), else
    the opcode's default engine."""
    allowed = OPCODES[opcode].engines
    if engine is None or engine is Engine.UNKNOWN:
        return allowed[0]
    if not isinstance(engine, Engine):
        raise KernelUsageError(f"{op}: engine must be a nisa.engine member, got {engine!r}")
    if engine not in allowed:
        names = ", ".join(e.value for e in allowed)
        raise EngineAccessError(f"{op} cannot run on the {engine.value} engine "
                                f"(allowed: {names})")
    return engine


def check_engine_memory(ctx: CoreContext, engine: Engine, tensors: Iterable[NkiTensor],
                        op: str) -> None:
    """GpSimd has no PSUM port; Scalar cannot copy on NC-v2 (tensor_copy)."""
    if engine is Engine.GPSIMD:
        for t in tensors:
            if t.buffer is Buffer.PSUM:
                raise EngineAccessError(f"{op}: the GpSimd engine cannot access PSUM "
                                        f"({t.name} is in psum)")



def check_hbm_free(tensors: Iterable[NkiTensor], op: str) -> None:
    """Compute engines only read and write on-chip memory."""
    for t in tensors:
        if not t.buffer.on_chip:
            raise BufferKindError(f"{op}: {t.name}{list(t.shape)} is in {t.buffer.value}; "
                                  "compute engines access SBUF/PSUM only (use nisa.dma_copy)")


def record(ctx: CoreContext, engine: Engine, opcode: Opcode, reads: Iterable[NkiTensor],
           writes: Iterable[NkiTensor], attrs: OpAttrs, partitions: int | None = None,
           free_elements: int | None = None) -> Instruction:
    """Record one instruction with its typed settings (the opcode's type in `OPCODES`);
    N defaults to the largest operand's elements per partition."""
    spec = OPCODES[opcode]
    reads, writes = tuple(reads), tuple(writes)
    offsets = tuple(o for t in reads + writes if isinstance(t, DynamicTileView)
                    for o in t.offset_tiles())
    if offsets:  # the engine reads a runtime offset from SBUF: a read for the dependencies
        # cost rules look at the first and the last data operand: keep both in place
        reads = reads[:-1] + offsets + reads[-1:] if len(reads) > 1 else reads + offsets
    if type(attrs) is not spec.attrs or engine not in spec.engines:
        raise TypeError(f"tessera bug: {opcode.value} recorded with {type(attrs).__name__} on "
                        f"{engine.value}; OPCODES says {spec.attrs.__name__} on "
                        f"{'/'.join(e.value for e in spec.engines)}")
    read_aps = tuple(t.access() for t in reads)
    write_aps = tuple(t.access() for t in writes)
    if partitions is None or free_elements is None:
        p_max, f_max = 1, 0
        for t, ap in zip(reads + writes, read_aps + write_aps, strict=True):
            if ap.partition_elems:  # on-chip operand: the view's own shape (the pattern of
                # a runtime-offset view spans every position it may reach)
                p_max = max(p_max, t.partitions)
                f_max = max(f_max, t.free_size)
        partitions = p_max if partitions is None else partitions
        free_elements = f_max if free_elements is None else free_elements
    inst = ctx.record(engine, opcode, read_aps, write_aps, partitions, free_elements, attrs)
    if ctx.run.cores is not None:  # LNC=2: check shared-HBM accesses against the peer's
        ctx.run.cores.instruction(ctx.core_id, inst, reads, writes)  # type: ignore[attr-defined]
    return inst


def scalar_or_vector(value: object, partitions: int, op: str, what: str) -> tuple[object, object]:
    """A tensor_scalar-style operand: a Python number or a [P, 1] tensor.

    Returns (numpy-broadcastable float32 value or None in symbolic mode, tensor or None).
    """
    if isinstance(value, NkiTensor):
        if value.partitions != partitions or value.free_size != 1:
            raise ShapeMismatchError(
                f"{op}: {what} {value.name}{list(value.shape)} must be [{partitions}, 1] "
                "(one value per partition)")
        return None, value
    if isinstance(value, bool | int | float):
        return float(value), None
    try:
        return float(np.asarray(value).item()), None
    except (TypeError, ValueError):
        raise KernelUsageError(f"{op}: {what} must be a number or a [P, 1] tensor, got "
                               f"{type(value).__name__}") from None

