"""Per-NeuronCore specs: engines, on-chip memories, tile limits, DMA and instruction costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tessera.hw.enums import Engine, MemoryKind, Precision
from tessera.hw.errors import UnsupportedPrecisionError
from tessera.hw.sourced import FrozenMap
from tessera.hw.spec_base import Preset, Spec


@dataclass(frozen=True, kw_only=True)
class TensorEngineSpec(Spec):
    """The systolic-array matmul engine (TensorE)."""

    kind: Engine
    clock_hz: float
    rows: int  # PE rows = contraction (partition) dimension
    cols: int  # PE columns = stationary free dimension
    # MACs per PE per cycle relative to BF16 (FP32 0.25 = the documented 4x slowdown;
    # FP8 2.0 on NC-v3 = double_row; MX 4.0 on NC-v4).
    rate_by_precision: FrozenMap[Precision, float]
    published_peak_flops: FrozenMap[Precision, float]

    def peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense peak FLOP/s = rows x cols x 2 x clock x rate(precision)."""
        p = Precision(precision)
        if p not in self.rate_by_precision:
            supported = ", ".join(k.value for k in self.rate_by_precision)
            raise UnsupportedPrecisionError(
                f"TensorE has no published rate for {p.value}; supported: {supported}"
            )
        return self.rows * self.cols * 2 * self.clock_hz * self.rate_by_precision[p]

    def cycle_factor(self, precision: Precision | str) -> float:
        """How many times longer a matmul takes than in BF16 (4.0 for FP32)."""
        return self.rows * self.cols * 2 * self.clock_hz / self.peak_flops(precision)


@dataclass(frozen=True, kw_only=True)
class EngineSpec(Spec):
    """A 128-lane streaming engine (Vector, Scalar or GpSimd)."""

    kind: Engine
    clock_hz: float
    lanes: int
    elements_per_cycle: int  # for precisions not listed below
    elements_per_cycle_by_precision: FrozenMap[Precision, int]
    published_fp32_flops: float | None  # marketing figure; not lanes x clock (see docs)

    def elements_per_cycle_for(self, precision: Precision | str | None = None) -> int:
        """Throughput in elements per engine cycle for data of `precision`."""
        if precision is None:
            return self.elements_per_cycle
        by_precision = self.elements_per_cycle_by_precision
        return by_precision.get(Precision(precision), self.elements_per_cycle)

    @property
    def cycle_s(self) -> float:
        """Duration of one engine cycle in seconds."""
        return 1.0 / self.clock_hz


@dataclass(frozen=True, kw_only=True)
class MemorySpec(Spec):
    """A partitioned on-chip SRAM (SBUF or PSUM). Device memory is `HbmSpec`."""

    kind: MemoryKind
    partitions: int
    bytes_per_partition: int
    banks: int | None  # PSUM: accumulation banks per partition; SBUF: not banked in NKI
    bank_bytes_per_partition: int | None
    published_total_bytes: int | None  # the capacity as the docs print it; checked at load

    @property
    def total_bytes(self) -> int:
        """Capacity = partitions x bytes per partition."""
        return self.partitions * self.bytes_per_partition


@dataclass(frozen=True, kw_only=True)
class TileSpec(Spec):
    """NKI tile-size limits (nki.language.tile_size and the architecture guides)."""

    pmax: int  # partition dimension of any tile
    stationary_fmax: int  # free size of the matmul stationary operand
    moving_fmax: int  # free size of the matmul moving operand (one PSUM bank)
    psum_fmax: int  # FP32 elements per partition of one PSUM bank
    bn_stats_fmax: int
    engine_sbuf_fmax: int  # Vector/Scalar free size when reading SBUF
    engine_psum_fmax: int  # Vector/Scalar free size when reading PSUM


@dataclass(frozen=True)
class PartitionStartRule:
    """Accesses spanning at most `max_partitions` partitions may start at `starts`."""

    max_partitions: int
    starts: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class AccessSpec(Spec):
    """SBUF/PSUM access rules: partition alignment, access patterns and port sharing."""

    partition_start_rules: tuple[PartitionStartRule, ...]
    max_free_pattern_dims: int
    vector_gpsimd_share_sbuf_port: bool  # NC-v2: they cannot access SBUF in parallel
    vector_scalar_share_psum_port: bool  # NC-v2: they cannot access PSUM in parallel

    def allowed_partition_starts(self, partitions: int) -> tuple[int, ...]:
        """Start partitions allowed for an access spanning `partitions` partitions."""
        for rule in sorted(self.partition_start_rules, key=lambda r: r.max_partitions):
            if partitions <= rule.max_partitions:
                return rule.starts
        return ()


@dataclass(frozen=True, kw_only=True)
class DmaSpec(Spec):
    """The DMA engines paired with one NeuronCore."""

    engines_per_core: int
    queues_per_engine: int
    engine_bytes_per_s: float  # theoretical per engine
    engine_effective_bytes_per_s: float  # per engine, from the DMA bandwidth guide
    fixed_latency_s: float  # semaphore-to-start overhead of one DMA
    hw_dge_per_core: int  # hardware descriptor-generation engines (NC-v3+)
    hw_dge_latency_s: float | None
    min_efficient_partition_bytes: int  # below this a transfer is overhead-bound
    saturating_partition_bytes: int  # at or above this the engines saturate

    @property
    def core_bytes_per_s(self) -> float:
        """Theoretical DMA bandwidth of one core (all its engines)."""
        return self.engines_per_core * self.engine_bytes_per_s

    @property
    def core_effective_bytes_per_s(self) -> float:
        """Effective DMA bandwidth of one core (guide figure x engines)."""
        return self.engines_per_core * self.engine_effective_bytes_per_s


@dataclass(frozen=True, kw_only=True)
class CostSpec(Spec):
    """Instruction cost parameters, in cycles of the engine that runs the instruction."""

    min_ii_cycles: int  # minimum initiation interval of small instructions
    matmul_init_cycles: int  # MM_INIT_LATENCY: floor of one MultiplyMoving
    fast_load_stationary_factor: float  # LoadStationary is up to this much faster than MM
    access_overhead_cycles: int  # fixed cost per SBUF/PSUM tensor access
    vector_small_op_overhead_cycles: int  # static overhead of tiny/dependent Vector ops
    gpsimd_start_cycles: int
    dynamic_offset_copy_cycles: int  # floor of a copy with a runtime offset
    semaphore_latency_s: float | None  # cross-engine sync latency
    observed_dependent_activation_ii_s: float | None  # measured II of dependent 1-elem ops


@dataclass(frozen=True, kw_only=True)
class CoreSpec(Preset):
    """One physical NeuronCore."""

    KIND: ClassVar[str] = "core"

    version: int  # 2, 3 or 4 (NeuronCore-v2 ...)
    tensor: TensorEngineSpec
    vector: EngineSpec
    scalar: EngineSpec
    gpsimd: EngineSpec
    sbuf: MemorySpec
    psum: MemorySpec
    tile: TileSpec
    access: AccessSpec
    dma: DmaSpec
    costs: CostSpec

    def engine(self, kind: Engine | str) -> TensorEngineSpec | EngineSpec:
        """The spec of engine `kind`."""
        return getattr(self, Engine(kind).value)

    def peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense TensorE peak of this core in FLOP/s."""
        return self.tensor.peak_flops(precision)
