"""Hardware as data: NeuronCores, Neuron chips, GPUs and instances, loaded from YAML presets.

There is one place where a hardware number lives: `tessera/hw/presets/*.yaml`. Each number
carries its source; presets load strictly into frozen dataclasses and are checked for
plausibility at load. This layer imports nothing else from tessera.

    >>> from tessera import hw
    >>> core = hw.load_chip("trn1").core
    >>> core.sbuf.partitions, core.psum.banks, core.tile.moving_fmax
    (128, 8, 512)
"""

from tessera.hw.catalogue import (
    DEFAULT_CHIP,
    PRESET_DIR,
    PresetInfo,
    find,
    list_presets,
    load_chip,
    load_core,
    load_file,
    load_gpu,
    load_instance,
    load_preset,
    preset_names,
    source_table,
)
from tessera.hw.checks import TOLERANCE, UNCERTAIN_TOLERANCE, validate
from tessera.hw.core_specs import (
    AccessSpec,
    CoreSpec,
    CostSpec,
    DmaSpec,
    EngineSpec,
    MemorySpec,
    PartitionStartRule,
    TensorEngineSpec,
    TileSpec,
)
from tessera.hw.enums import (
    Engine,
    LinkKind,
    LinkScope,
    MemoryKind,
    Precision,
    PresetKind,
    TopologyKind,
)
from tessera.hw.errors import (
    CalibrationError,
    HwError,
    LncError,
    OverrideError,
    PresetError,
    UnknownPresetError,
    UnsupportedPrecisionError,
)
from tessera.hw.overrides import with_overrides
from tessera.hw.sourced import FrozenMap, Provenance, Sourced, Status
from tessera.hw.spec_base import Preset, Spec
from tessera.hw.system_specs import (
    ChipSpec,
    GpuSpec,
    HbmSpec,
    InstanceSpec,
    LinkSpec,
    NetworkSpec,
    PriceSpec,
    TopologySpec,
)

__all__ = [
    "DEFAULT_CHIP",
    "PRESET_DIR",
    "TOLERANCE",
    "UNCERTAIN_TOLERANCE",
    "AccessSpec",
    "ChipSpec",
    "CoreSpec",
    "CostSpec",
    "DmaSpec",
    "Engine",
    "EngineSpec",
    "FrozenMap",
    "GpuSpec",
    "HbmSpec",
    "CalibrationError",
    "HwError",
    "InstanceSpec",
    "LinkKind",
    "LinkScope",
    "LinkSpec",
    "LncError",
    "MemoryKind",
    "MemorySpec",
    "NetworkSpec",
    "OverrideError",
    "PartitionStartRule",
    "Precision",
    "Preset",
    "PresetError",
    "PresetInfo",
    "PresetKind",
    "PriceSpec",
    "Provenance",
    "Sourced",
    "Spec",
    "Status",
    "TensorEngineSpec",
    "TileSpec",
    "TopologyKind",
    "TopologySpec",
    "UnknownPresetError",
    "UnsupportedPrecisionError",
    "find",
    "list_presets",
    "load_chip",
    "load_core",
    "load_file",
    "load_gpu",
    "load_instance",
    "load_preset",
    "preset_names",
    "source_table",
    "validate",
    "with_overrides",
]
