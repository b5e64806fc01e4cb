"""The settings of each ISA instruction as a frozen, typed record (`Instruction.attrs`).

Each opcode has one attribute type: the ISA op in `tessera.nki.isa` writes it, the cost
rule in `tessera.sim` reads it, so renaming a field breaks both loudly instead of silently
changing a cost. Fields the timing model reads have no default; descriptive ones do.
Values are plain and hashable (str, int, float, bool, None, tuples): the timing model groups
instructions with equal settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NoAttrs:
    """Instructions without settings (tensor_copy, reciprocal, bn_stats, bn_aggr,
    nc_transpose)."""


@dataclass(frozen=True, slots=True)
class DmaCopyAttrs:
    """dma_copy: descriptor generation, out-of-bounds policy, runtime-offset side."""

    dge_mode: str  # "hwdge" takes the hardware DGE's shorter fixed latency
    oob_mode: str = "error"
    indirect: str | None = None  # "src" / "dst": that side uses runtime offsets


@dataclass(frozen=True, slots=True)
class DmaTransposeAttrs:
    """dma_transpose: the permutation of the source axes."""

    axes: tuple[int, ...]
    dge_mode: str = "unknown"
    oob_mode: str = "error"


@dataclass(frozen=True, slots=True)
class MatmulAttrs:
    """nc_matmul: per-row free sizes of the two operands and the perf mode."""

    stationary_free: int  # M: columns of the stationary operand (per packed row)
    moving_free: int  # N: columns of the moving operand (per packed row)
    contraction_rows: int = 1  # K rows packed per partition (2 in double_row mode)
    perf_mode: str | None = None  # "double_row" / "double_row_gen3" on NC-v3+
    accumulate: bool | None = None
    is_transpose: bool = False
    is_stationary_onezero: bool = False
    is_moving_onezero: bool = False
    tile_position: tuple[int, ...] | None = None
    tile_size: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TensorTensorAttrs:
    """tensor_tensor: the ALU operator."""

    op: str


@dataclass(frozen=True, slots=True)
class TensorScalarAttrs:
    """tensor_scalar: up to two operators with scalar (or per-partition) operands."""

    op0: str
    op1: str | None = None
    operand0: float | None = None  # None: a [P, 1] tensor operand
    operand1: float | None = None
    reverse0: bool = False
    reverse1: bool = False


@dataclass(frozen=True, slots=True)
class ScalarTensorTensorAttrs:
    """scalar_tensor_tensor: (data op0 scalar) op1 tensor."""

    op0: str
    op1: str
    operand0: float | None = None
    reverse0: bool = False
    reverse1: bool = False


@dataclass(frozen=True, slots=True)
class PredicatedCopyAttrs:
    """tensor_copy_predicated: which predicate value copies, or a constant source."""

    reverse_pred: bool = False
    src_value: float | None = None


@dataclass(frozen=True, slots=True)
class MemsetAttrs:
    """memset: the value written (zero has a fast path for 2-byte types)."""

    value: float | int


@dataclass(frozen=True, slots=True)
class IotaAttrs:
    """iota: the affine pattern, offset and per-partition multiplier of the values."""

    pattern: tuple[tuple[int, int], ...] = ()
    offset: int = 0
    channel_multiplier: int = 0


@dataclass(frozen=True, slots=True)
class AffineSelectAttrs:
    """affine_select: the affine predicate and the value where it is false."""

    pattern: tuple[tuple[int, int], ...] = ()
    offset: int = 0
    channel_multiplier: int = 0
    cmp_op: str = "equal"
    on_false_value: float = 0.0


@dataclass(frozen=True, slots=True)
class TensorReduceAttrs:
    """tensor_reduce: the reduction operator over the trailing axes."""

    op: str
    reduced_axes: int = 1
    negate: bool = False
    keepdims: bool = False


@dataclass(frozen=True, slots=True)
class TensorScalarReduceAttrs:
    """tensor_scalar_reduce: an element-wise operator, then a reduction along the row."""

    op0: str
    reduce_op: str
    operand0: float | None = None
    reverse0: bool = False
    reduce_cmd: str = "reset_reduce"


@dataclass(frozen=True, slots=True)
class ScanAttrs:
    """tensor_tensor_scan: the two operators of the running scan and its initial value."""

    op0: str = "multiply"
    op1: str = "add"
    initial: float | None = None
    reverse0: bool = False
    reverse1: bool = False


@dataclass(frozen=True, slots=True)
class PartitionReduceAttrs:
    """tensor_partition_reduce: the reduction operator across partitions."""

    op: str


@dataclass(frozen=True, slots=True)
class ActivationAttrs:
    """activation / activation_reduce: the function, its scale and bias, and what the
    reduction registers do (`reduce_op` None: no reduction)."""

    op: str
    reduce_op: str | None = None
    reduce_cmd: str = "idle"
    reduce_res: bool = False
    scale: float | None = 1.0  # None: a [P, 1] tensor scale
    bias: float | None = None  # None: no bias or a [P, 1] tensor bias


@dataclass(frozen=True, slots=True)
class BarrierAttrs:
    """core_barrier: the cores that meet."""

    cores: tuple[int, ...] = (0, 1)


@dataclass(frozen=True, slots=True)
class SendRecvAttrs:
    """sendrecv: the peer ranks, pipe and DMA engine of a core-to-core transfer."""

    send_to_rank: int = 0
    recv_from_rank: int = 0
    pipe_id: int = 0
    dma_engine: str | None = None



@dataclass(frozen=True, slots=True)
class MatchReplaceAttrs:
    """nc_match_replace8: the value written over each matched element, and whether the
    matched positions are also written out (`dst_idx`)."""

    imm: float = 0.0
    with_indices: bool = False


@dataclass(frozen=True, slots=True)
class NonzeroCountAttrs:
    """nonzero_with_count: the offset added to each index and the padding value."""

    index_offset: int = 0
    padding_val: int = -1


NO_ATTRS = NoAttrs()

OpAttrs = (NoAttrs | DmaCopyAttrs | DmaTransposeAttrs | MatmulAttrs | TensorTensorAttrs
           | TensorScalarAttrs | ScalarTensorTensorAttrs | PredicatedCopyAttrs | MemsetAttrs
           | IotaAttrs | AffineSelectAttrs | TensorReduceAttrs | TensorScalarReduceAttrs
           | ScanAttrs | PartitionReduceAttrs | ActivationAttrs | BarrierAttrs | SendRecvAttrs
           | MatchReplaceAttrs | NonzeroCountAttrs)


# group: mx


# group: registers


# group: random


# group: gather


# group: select


# group: collectives


# group: grids
