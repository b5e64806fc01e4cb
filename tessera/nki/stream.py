"""The instruction stream: plain frozen data, the contract with the timing model.

`sim` reads these records and never calls back into `nki`. An `AccessPattern` describes
which bytes of which named tensor an instruction touches; an `Instruction` is one ISA
operation with its engine, opcode, reads, writes and source location.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tessera.hw.enums import Engine
from tessera.nki.attrs import OpAttrs
from tessera.nki.buffers import Buffer

__all__ = ["AccessPattern", "Engine", "Instruction", "Opcode", "SourceLocation", "TensorInfo"]


class Opcode(Enum):
    """Every ISA operation Tessera executes; each has a functional, validation and cost rule."""

    NC_MATMUL = "nc_matmul"
    NC_TRANSPOSE = "nc_transpose"
    ACTIVATION = "activation"
    ACTIVATION_REDUCE = "activation_reduce"
    TENSOR_TENSOR = "tensor_tensor"
    TENSOR_SCALAR = "tensor_scalar"
    SCALAR_TENSOR_TENSOR = "scalar_tensor_tensor"
    TENSOR_REDUCE = "tensor_reduce"
    TENSOR_COPY = "tensor_copy"
    MEMSET = "memset"
    IOTA = "iota"
    AFFINE_SELECT = "affine_select"
    RECIPROCAL = "reciprocal"
    DMA_COPY = "dma_copy"
    DMA_TRANSPOSE = "dma_transpose"
    TENSOR_SCALAR_REDUCE = "tensor_scalar_reduce"
    TENSOR_TENSOR_SCAN = "tensor_tensor_scan"
    BN_STATS = "bn_stats"
    BN_AGGR = "bn_aggr"
    TENSOR_COPY_PREDICATED = "tensor_copy_predicated"
    TENSOR_PARTITION_REDUCE = "tensor_partition_reduce"
    CORE_BARRIER = "core_barrier"
    SENDRECV = "sendrecv"
    MAX8 = "max8"
    NC_FIND_INDEX8 = "nc_find_index8"
    NC_MATCH_REPLACE8 = "nc_match_replace8"
    NONZERO_WITH_COUNT = "nonzero_with_count"
    # group: mx
    NC_MATMUL_MX = "nc_matmul_mx"
    QUANTIZE_MX = "quantize_mx"
    # group: registers
    REGISTER_ALLOC = "register_alloc"
    REGISTER_MOVE = "register_move"
    REGISTER_LOAD = "register_load"
    REGISTER_STORE = "register_store"
    TENSOR_COPY_DYNAMIC_SRC = "tensor_copy_dynamic_src"
    TENSOR_COPY_DYNAMIC_DST = "tensor_copy_dynamic_dst"
    # group: random
    RNG = "rng"
    RAND2 = "rand2"
    RAND_SET_STATE = "rand_set_state"
    RAND_GET_STATE = "rand_get_state"
    SET_RNG_SEED = "set_rng_seed"
    DROPOUT = "dropout"
    # group: gather
    LOCAL_GATHER = "local_gather"
    NC_N_GATHER = "nc_n_gather"
    NC_STREAM_SHUFFLE = "nc_stream_shuffle"
    DMA_COMPUTE = "dma_compute"
    # group: select
    RANGE_SELECT = "range_select"
    SELECT_REDUCE = "select_reduce"
    SEQUENCE_BOUNDS = "sequence_bounds"
    TENSOR_SCALAR_CUMULATIVE = "tensor_scalar_cumulative"
    EXPONENTIAL = "exponential"
    # group: collectives
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    ALL_TO_ALL_V = "all_to_all_v"
    COLLECTIVE_PERMUTE = "collective_permute"
    COLLECTIVE_PERMUTE_IMPLICIT = "collective_permute_implicit"
    COLLECTIVE_PERMUTE_IMPLICIT_REDUCE = "collective_permute_implicit_reduce"
    SENDRECV_COMPUTE = "sendrecv_compute"  # nki.lnc: a core-to-core swap that reduces


@dataclass(frozen=True, slots=True)
class AccessPattern:
    """Elements of one named tensor touched by an instruction.

    The address of element (i0, i1, ...) is `offset_elems + sum(i_k * stride_k)` in the
    tensor's flat storage, with `pattern = ((stride_0, count_0), (stride_1, count_1), ...)`.
    For on-chip tensors dimension 0 walks partitions: `partition_elems` is the number of
    elements in one partition row, so element address `a` is in partition
    `a // partition_elems` at per-partition element offset `a % partition_elems`.
    For HBM tensors `partition_elems` is 0 and the pattern is over flat storage.
    """

    tensor: str
    buffer: Buffer
    dtype: str
    itemsize: int
    offset_elems: int
    pattern: tuple[tuple[int, int], ...]
    partition_elems: int

    @property
    def num_elements(self) -> int:
        n = 1
        for _, count in self.pattern:
            n *= count
        return n

    @property
    def num_bytes(self) -> int:
        return self.num_elements * self.itemsize

    @property
    def partition_start(self) -> int:
        """First partition touched (on-chip only; 0 for HBM)."""
        if not self.partition_elems:
            return 0
        return self.offset_elems // self.partition_elems

    @property
    def partition_count(self) -> int:
        """Partitions touched (on-chip) = size of dimension 0; 1 for HBM."""
        if not self.partition_elems:
            return 1
        return self.pattern[0][1] if self.pattern else 1

    @property
    def partition_step(self) -> int:
        if not self.partition_elems or not self.pattern:
            return 1
        return max(1, self.pattern[0][0] // self.partition_elems)

    @property
    def free_pattern(self) -> tuple[tuple[int, int], ...]:
        """The per-partition part of the pattern (all of it for HBM)."""
        return self.pattern[1:] if self.partition_elems else self.pattern

    @property
    def elements_per_partition(self) -> int:
        n = 1
        for _, count in self.free_pattern:
            n *= count
        return n

    @property
    def free_byte_range(self) -> tuple[int, int]:
        """[lo, hi) byte range touched inside each partition (on-chip), or in flat storage."""
        base = self.offset_elems % self.partition_elems if self.partition_elems else (
            self.offset_elems)
        lo = hi = base
        for stride, count in self.free_pattern:
            span = stride * (count - 1)
            if span >= 0:
                hi += span
            else:
                lo += span
        return lo * self.itemsize, (hi + 1) * self.itemsize

    @property
    def contiguous_bytes(self) -> int:
        """Length of the innermost contiguous run, in bytes (what DMA efficiency depends on)."""
        run = 1
        for stride, count in reversed(self.free_pattern):
            if count == 1:
                continue
            if stride == run:
                run *= count
            else:
                break
        return run * self.itemsize


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where in the user's kernel an instruction was issued."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Instruction:
    """One executed ISA operation.

    `free_elements` is the cost model's N (elements per partition of the largest operand),
    `partitions` the number of partitions it spans. `attrs` holds the opcode's settings as
    its frozen attribute type (`tessera.nki.attrs`, one type per opcode in
    `tessera.nki.opcodes.OPCODES`).
    """

    index: int
    core: int
    engine: Engine
    opcode: Opcode
    reads: tuple[AccessPattern, ...]
    writes: tuple[AccessPattern, ...]
    partitions: int
    free_elements: int
    attrs: OpAttrs
    location: SourceLocation
    name: str | None = None  # the `name=` given to the nisa call (for `with_schedule`)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """A tensor created while a kernel ran: what the allocator needs to place it."""

    name: str
    buffer: Buffer
    shape: tuple[int, ...]
    dtype: str
    itemsize: int
    core: int
    location: SourceLocation

    @property
    def num_bytes(self) -> int:
        n = self.itemsize
        for d in self.shape:
            n *= d
        return n

    @property
    def bytes_per_partition(self) -> int:
        """Bytes in each partition row (on-chip tensors)."""
        return self.num_bytes // self.shape[0] if self.shape and self.shape[0] else 0
