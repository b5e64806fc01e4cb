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
@dataclass(frozen=True, slots=True)
class MxMatmulAttrs:
    """nc_matmul_mx: free sizes in x4 containers and the MX rate class."""

    stationary_free: int  # M: stationary containers per partition (= dst partitions)
    moving_free: int  # N: moving containers per partition (= dst elements per partition)
    precision: str  # "mxfp4" when an operand is float4_e2m1fn_x4, else "mxfp8"
    accumulate: bool | None = None
    tile_position: tuple[int, ...] | None = None  # (start_row, 0): row tiling only
    tile_size: tuple[int, ...] | None = None  # (row_size, 128)


@dataclass(frozen=True, slots=True)
class QuantizeMxAttrs:
    """quantize_mx: the packed MXFP8 type written."""

    dst_dtype: str = "float8_e4m3fn_x4"


# group: registers
@dataclass(frozen=True, slots=True)
class RegisterMoveAttrs:
    """register_alloc / register_move: what is written to the register: "imm" (a
    constant), "register" (another register) or "loop" (a dynamic loop's counter update
    and compare-and-branch, recorded at entry and at the end of each iteration)."""

    source: str = "imm"



# group: random
@dataclass(frozen=True, slots=True)
class RngAttrs:
    """rng: random bits per element; `uniform` when nl.rand scales them into [0, 1)."""

    uniform: bool = False


@dataclass(frozen=True, slots=True)
class Rand2Attrs:
    """rand2: the range bounds (None where a bound is a per-partition [P, 1] tile)."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class DropoutAttrs:
    """dropout: the drop probability (None where it is a per-partition [P, 1] tile)."""

    prob: float | None = None


# group: gather
@dataclass(frozen=True, slots=True)
class LocalGatherAttrs:
    """local_gather: contiguous elements read per index, and indices used per GpSimd core."""

    num_elem_per_idx: int = 1
    num_valid_indices: int = 1


@dataclass(frozen=True, slots=True)
class StreamShuffleAttrs:
    """nc_stream_shuffle: source partition of each quadrant row (255: row left as is)."""

    shuffle_mask: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DmaComputeAttrs:
    """dma_compute: how many `srcs` it reduces (the first reads of the instruction; any
    further reads are runtime-offset tiles), the operator, and the read-modify-write mode
    ("scatter" / "gather" with a vector_offset, None for a static reduction)."""

    sources: int = 1
    reduce_op: str = "add"
    rmw: str | None = None
    oob_mode: str = "error"


# group: select
@dataclass(frozen=True, slots=True)
class RangeSelectAttrs:
    """range_select: the two index comparisons, the index base and the accumulator use
    (a bound is None when it is a [P, 1] tile)."""

    comp_op0: str
    comp_op1: str
    reduce_cmd: str = "reset_reduce"
    reduce_res: bool = False
    range_start: int = 0
    bound0: float | None = None
    bound1: float | None = None


@dataclass(frozen=True, slots=True)
class SelectReduceAttrs:
    """select_reduce: what the accumulator does (the cost adds the reduction unless idle)
    and the fill value (None when on_false is a [P, 1] tile)."""

    reduce_cmd: str
    reduce_res: bool = False
    reverse_pred: bool = False
    on_false: float | None = None


@dataclass(frozen=True, slots=True)
class CumulativeAttrs:
    """tensor_scalar_cumulative: the element operator, the running operator and how the
    accumulator starts (an immediate is None when it is a [P, 1] tile or absent)."""

    op0: str
    op1: str
    reduce_cmd: str = "reset_reduce"
    imm0: float | None = None
    imm1: float | None = None


@dataclass(frozen=True, slots=True)
class ExponentialAttrs:
    """exponential: what the accumulator does (the cost adds the reduction unless idle) and
    the subtracted maximum (None when it is a [P, 1] tile)."""

    reduce_cmd: str
    reduce_res: bool = False
    max_value: float | None = None



# group: collectives
@dataclass(frozen=True, slots=True)
class CollectiveAttrs:
    """An nki.collectives operation, as `tessera.net` prices it: the net operation
    (all_reduce, all_gather, reduce_scatter, all_to_all, permute), the ranks of this rank's
    rank-list, the bytes in net's convention (tessera.net.ops), the chip preset, and the
    call's own settings."""

    net_op: str = "all_reduce"
    ranks: int = 1
    n_bytes: int = 0
    chip: str = "trn2"
    reduce_op: str | None = None
    collective_dim: int = 0
    channels: int = 1
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class SendRecvComputeAttrs(DmaComputeAttrs):
    """nki.lnc.sendrecv_compute: a DMA reduction (`sources`=1: the local src; the peer's
    tile arrives over the core-to-core link) with the peer ranks and the DMA QoS level.
    A DmaComputeAttrs, so the DMA model prices the reduction as dma_compute's."""

    send_to_rank: int = 0
    recv_from_rank: int = 0
    priority: int | None = None



# group: grids
