"""Closed sets used by the hardware specs. YAML spells members by their lower-case value."""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    """The engines of a NeuronCore: the four compute engines, the sync engine, the DMA
    engines (as one kind) and UNKNOWN (let the compiler pick). The one engine enum of
    Tessera: presets, the instruction stream, profiles and cost estimates all use it.

    Lower-case aliases keep the NKI spelling (`nisa.engine.vector`).
    """

    TENSOR = "tensor"
    VECTOR = "vector"
    SCALAR = "scalar"
    GPSIMD = "gpsimd"
    SYNC = "sync"
    DMA = "dma"
    UNKNOWN = "unknown"
    tensor = "tensor"
    vector = "vector"
    scalar = "scalar"
    gpsimd = "gpsimd"
    sync = "sync"
    dma = "dma"
    unknown = "unknown"


COMPUTE_ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)


class MemoryKind(StrEnum):
    """Memories modelled by the catalogue."""

    HBM = "hbm"  # device memory, off the core
    SBUF = "sbuf"  # state buffer: the core's main on-chip SRAM
    PSUM = "psum"  # partial-sum buffer written by the Tensor engine


class Precision(StrEnum):
    """Matmul input precisions for which peak rates are published."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    MXFP8 = "mxfp8"
    MXFP4 = "mxfp4"


class TopologyKind(StrEnum):
    """How the accelerators of an instance are wired together."""

    NONE = "none"  # a single chip
    RING = "ring"
    TORUS_2D = "torus_2d"
    TORUS_3D = "torus_3d"
    NVSWITCH = "nvswitch"  # all-to-all through NVIDIA NVSwitch
    SWITCH = "switch"  # all-to-all through another switch (e.g. NeuronSwitch)


class LinkKind(StrEnum):
    """Chip-to-chip and node-to-node link technologies."""

    NEURONLINK_V2 = "neuronlink_v2"
    NEURONLINK_V3 = "neuronlink_v3"
    NEURONLINK_V4 = "neuronlink_v4"
    NVLINK_3 = "nvlink_3"
    NVLINK_4 = "nvlink_4"


class LinkScope(StrEnum):
    """Whether a link connects chips inside one server or chips of different servers."""

    INTRA_NODE = "intra_node"
    INTER_NODE = "inter_node"


class PresetKind(StrEnum):
    """The kinds of preset file in `tessera/hw/presets/`."""

    CORE = "core"
    CHIP = "chip"
    GPU = "gpu"
    INSTANCE = "instance"
