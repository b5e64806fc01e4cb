"""Chips, GPUs, links, topologies and instances."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from tessera.hw.core_specs import CoreSpec
from tessera.hw.enums import LinkKind, LinkScope, Precision, TopologyKind
from tessera.hw.errors import LncError, UnsupportedPrecisionError
from tessera.hw.sourced import FrozenMap
from tessera.hw.spec_base import REF, Preset, Spec


@dataclass(frozen=True, kw_only=True)
class HbmSpec(Spec):
    """Device memory (HBM) of one chip or GPU."""

    capacity_bytes: int
    bytes_per_s: float
    stacks: int | None


@dataclass(frozen=True, kw_only=True)
class LinkSpec(Spec):
    """A chip-to-chip link technology as one chip (or GPU) sees it."""

    kind: LinkKind
    scope: LinkScope
    links_per_chip: int | None
    chip_bytes_per_s: float | None  # aggregate per chip as published (direction unstated)
    hop_latency_s: float | None


@dataclass(frozen=True, kw_only=True)
class ChipSpec(Preset):
    """A Neuron device: several physical NeuronCores sharing HBM and NeuronLinks."""

    KIND: ClassVar[str] = "chip"

    core: CoreSpec = field(metadata={REF: ("core",)})
    physical_cores: int
    lnc_allowed: tuple[int, ...]  # logical-NeuronCore sizes the runtime accepts
    lnc_default: int
    hbm: HbmSpec
    neuronlink: LinkSpec
    cc_cores: int | None  # collective-communication cores
    # Chip-level figures as the docs print them; checked against the per-core model at load.
    published_peak_flops: FrozenMap[Precision, float]
    published_sbuf_bytes: int | None
    published_dma_engines: int | None
    published_dma_bytes_per_s: float | None

    def peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense peak FLOP/s of the chip = physical cores x per-core TensorE peak."""
        return self.physical_cores * self.core.peak_flops(precision)

    def core_peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense peak FLOP/s of one physical core."""
        return self.core.peak_flops(precision)

    def logical_cores(self, lnc: int | None = None) -> int:
        """Logical NeuronCores per chip at logical-core size `lnc` (default: `lnc_default`)."""
        size = self.lnc_default if lnc is None else lnc
        if size not in self.lnc_allowed:
            raise LncError(
                f"{self.name} allows LNC in {list(self.lnc_allowed)}, not {size}"
            )
        return self.physical_cores // size

    @property
    def tensor_clock_hz(self) -> float:
        """TensorE clock of the chip's cores."""
        return self.core.tensor.clock_hz

    @property
    def hbm_bytes(self) -> int:
        """HBM capacity of the chip."""
        return self.hbm.capacity_bytes

    @property
    def hbm_bytes_per_s(self) -> float:
        """HBM bandwidth of the chip."""
        return self.hbm.bytes_per_s

    @property
    def hbm_bytes_per_s_per_core(self) -> float:
        """HBM bandwidth share of one physical core."""
        return self.hbm.bytes_per_s / self.physical_cores

    @property
    def dma_engines_per_core(self) -> int:
        """DMA engines paired with each core."""
        return self.core.dma.engines_per_core

    @property
    def dma_engines(self) -> int:
        """DMA engines of the chip (cores x engines per core)."""
        return self.physical_cores * self.core.dma.engines_per_core

    @property
    def dma_engine_bytes_per_s(self) -> float:
        """Theoretical bandwidth of one DMA engine."""
        return self.core.dma.engine_bytes_per_s

    @property
    def sbuf_bytes(self) -> int:
        """SBUF of all physical cores together."""
        return self.physical_cores * self.core.sbuf.total_bytes


@dataclass(frozen=True, kw_only=True)
class GpuSpec(Preset):
    """A GPU described at roofline level, for comparison with Neuron chips."""

    KIND: ClassVar[str] = "gpu"

    vendor: str
    sm_count: int
    hbm: HbmSpec
    nvlink: LinkSpec
    published_peak_flops: FrozenMap[Precision, float]  # dense (no sparsity)

    def peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense peak FLOP/s for `precision` (FP32 is the non-tensor-core rate)."""
        p = Precision(precision)
        if p not in self.published_peak_flops:
            supported = ", ".join(k.value for k in self.published_peak_flops)
            raise UnsupportedPrecisionError(
                f"{self.name} has no published peak for {p.value}; supported: {supported}"
            )
        return self.published_peak_flops[p]

    @property
    def hbm_bytes(self) -> int:
        """HBM capacity of the GPU."""
        return self.hbm.capacity_bytes

    @property
    def hbm_bytes_per_s(self) -> float:
        """HBM bandwidth of the GPU."""
        return self.hbm.bytes_per_s


@dataclass(frozen=True, kw_only=True)
class TopologySpec(Spec):
    """How the accelerators of an instance are connected."""

    kind: TopologyKind
    dims: tuple[int, ...]  # e.g. (4, 4) for a 4x4 torus, (8,) for 8 GPUs on NVSwitch
    description: str

    @property
    def size(self) -> int:
        """Number of accelerators the topology connects."""
        return math.prod(self.dims)


@dataclass(frozen=True, kw_only=True)
class NetworkSpec(Spec):
    """Scale-out network (EFA) of one node (server)."""

    node_efa_bytes_per_s: float | None
    p2p_latency_s: float | None  # node-to-node point-to-point latency


@dataclass(frozen=True, kw_only=True)
class PriceSpec(Spec):
    """What an instance costs per hour."""

    on_demand_usd_per_hour: float | None
    ri_effective_usd_per_hour: float | None  # reserved-instance effective rate
    region: str
    as_of: str  # date of the on-demand figure (ISO), or 'n/a' when unknown


@dataclass(frozen=True, kw_only=True)
class InstanceSpec(Preset):
    """A rentable unit: one server, or an UltraServer of several, with its accelerators."""

    KIND: ClassVar[str] = "instance"

    chip: ChipSpec | GpuSpec = field(metadata={REF: ("chip", "gpu")})
    chip_count: int
    nodes: int  # servers in the unit (4 for an UltraServer, else 1)
    vcpus: int
    host_memory_bytes: int
    topology: TopologySpec
    links: tuple[LinkSpec, ...]
    network: NetworkSpec
    price: PriceSpec
    published_peak_flops: FrozenMap[Precision, float]
    published_hbm_bytes: int | None
    published_hbm_bytes_per_s: float | None

    def peak_flops(self, precision: Precision | str = Precision.BF16) -> float:
        """Dense peak FLOP/s of all accelerators."""
        return self.chip_count * self.chip.peak_flops(precision)

    @property
    def hbm_bytes(self) -> int:
        """HBM capacity of all accelerators."""
        return self.chip_count * self.chip.hbm.capacity_bytes

    @property
    def hbm_bytes_per_s(self) -> float:
        """HBM bandwidth of all accelerators."""
        return self.chip_count * self.chip.hbm.bytes_per_s

    @property
    def physical_cores(self) -> int:
        """NeuronCores of all chips (0 for GPU instances)."""
        if isinstance(self.chip, ChipSpec):
            return self.chip_count * self.chip.physical_cores
        return 0

    def logical_cores(self, lnc: int | None = None) -> int:
        """Logical NeuronCores of all chips at logical-core size `lnc`."""
        if not isinstance(self.chip, ChipSpec):
            raise LncError(f"{self.name} has GPUs, not NeuronCores")
        return self.chip_count * self.chip.logical_cores(lnc)

    @property
    def efa_bytes_per_s_per_chip(self) -> float | None:
        """EFA bandwidth share of one accelerator, or None when unpublished."""
        if self.network.node_efa_bytes_per_s is None:
            return None
        return self.nodes * self.network.node_efa_bytes_per_s / self.chip_count
