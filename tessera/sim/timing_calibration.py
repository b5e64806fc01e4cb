"""Calibration constants of the timing model, loaded from `calibration/trn.yaml`.

Hardware facts come from `tessera.hw`; this file's constants are the model's own (formula
coefficients, unpublished latencies, DMA overheads, HBM efficiency). Each entry in the YAML
has a `source` and a `fitted_on`; a missing or unknown key is an error, never a default.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tessera.hw.calibration_file import calibration_entry, read_calibration_file
from tessera.hw.errors import CalibrationError

CALIBRATION_FILE = Path(__file__).with_name("calibration") / "trn.yaml"


@dataclass(frozen=True)
class Calibration:
    """Model constants for one NeuronCore generation (see trn.yaml for each source)."""

    generation: str
    # cost-formula coefficients (cycles per element of N, or counts of MIN_II)
    one_input_per_element: float
    two_input_per_element: float
    fast_reduce_per_element: float
    fast_memset_per_element: float
    reciprocal_per_element: float
    bn_aggr_per_element: float
    scan_per_element: float
    predicated_same_memory_per_element: float
    reduce_extra_min_ii: float
    transpose_free_cap_cycles: float
    stationary_free_cap_cycles: float
    # per-generation model constants
    cross_engine_sync_s: float
    engine_dependency_latency_cycles: float
    tensor_result_latency_cycles: float
    dma_partitions_per_engine: int
    dma_transfer_overhead_s: float
    dma_min_burst_bytes: int
    hbm_strided_efficiency: float
    dma_transpose_hbm_efficiency: float
    dma_transpose_sbuf_efficiency: float
    sbuf_alignment_bytes: int
    dynamic_loop_control_s: float
    bf16_perf_mode_opcodes: tuple[str, ...]
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False,
                                                   repr=False)

    def with_overrides(self, values: Mapping[str, object]) -> Calibration:
        """A copy with some constants replaced (`{"cross_engine_sync_s": 0.0}`)."""
        names = {f.name for f in dataclasses.fields(self)} - {"generation", "sources"}
        changes: dict[str, object] = {}
        for key, value in values.items():
            if key not in names:
                raise CalibrationError(f"calibration has no constant {key!r}; constants: "
                                       f"{', '.join(sorted(names))}")
            current = getattr(self, key)
            try:
                changes[key] = (tuple(str(v) for v in value)  # type: ignore[union-attr]
                                if isinstance(current, tuple) else type(current)(value))
            except (TypeError, ValueError):
                raise CalibrationError(f"calibration.{key}: cannot use {value!r} (expected "
                                       f"{type(current).__name__})") from None
        for key, value in changes.items():
            _check_range(key, value, "calibration")
        sources = dict(self.sources)
        sources.update({k: "overridden" for k in changes})
        return dataclasses.replace(self, **changes, sources=sources)  # type: ignore[arg-type]


def _check_range(name: str, value: object, where: str) -> None:
    """Efficiencies lie in (0, 1], counts and sizes are >= 1, everything else >= 0: a value
    outside its range would make the timeline meaningless (a negative latency would let a
    result arrive before its producer started)."""
    if isinstance(value, tuple):
        return
    number = float(value)  # type: ignore[arg-type]
    if name.endswith("_efficiency"):
        ok, rule = 0.0 < number <= 1.0, "in (0, 1]"
    elif name in _AT_LEAST_ONE:
        ok, rule = number >= 1, ">= 1"
    else:
        ok, rule = number >= 0.0, ">= 0"
    if not ok or number != number:  # NaN fails too
        raise CalibrationError(f"{where}.{name} must be {rule}, got {value}")


_AT_LEAST_ONE = frozenset({"dma_partitions_per_engine", "dma_min_burst_bytes",
                           "sbuf_alignment_bytes"})


def _entry(name: str, raw: object, where: str) -> tuple[object, str]:
    return calibration_entry(name, raw, where, status_required=False)


def _read(path: Path) -> dict:
    return read_calibration_file(path)


@functools.cache
def _default() -> dict:
    return _read(CALIBRATION_FILE)


def load_calibration(generation: str, path: Path | None = None) -> Calibration:
    """Calibration for a core preset name (`"nc-v2"`, `"nc-v3"`, `"nc-v4"`)."""
    if path is None:
        return _default_calibration(generation)
    return _parse(generation, _read(path))


def calibration_for(core_name: str, version: int) -> Calibration:
    """The calibration of a core preset, or of its generation for a custom core."""
    gens = _default().get("generations", {})
    return load_calibration(core_name if core_name in gens else f"nc-v{version}")


@functools.cache
def _default_calibration(generation: str) -> Calibration:
    return _parse(generation, _default())


def _parse(generation: str, data: dict) -> Calibration:
    gens = data.get("generations", {})
    if generation not in gens:
        raise CalibrationError(f"no calibration for core {generation!r}; calibrated cores: "
                               f"{', '.join(sorted(gens))}")
    entries = {**data.get("formulas", {}), **gens[generation]}
    fields = {f.name: f for f in dataclasses.fields(Calibration)}
    wanted = set(fields) - {"generation", "sources"}
    unknown = set(entries) - wanted
    missing = wanted - set(entries)
    if unknown or missing:
        raise CalibrationError(f"calibration {generation}: unknown keys {sorted(unknown)}, "
                               f"missing keys {sorted(missing)}")
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name, raw in entries.items():
        value, source = _entry(name, raw, generation)
        current = fields[name].type
        if current == "tuple[str, ...]":
            values[name] = tuple(str(v) for v in (value or ()))  # type: ignore[union-attr]
        elif current == "int":
            values[name] = int(value)  # type: ignore[arg-type]
        else:
            values[name] = float(value)  # type: ignore[arg-type]
        sources[name] = source
        _check_range(name, values[name], f"calibration {generation}")
    return Calibration(generation=generation, sources=sources, **values)  # type: ignore[arg-type]
