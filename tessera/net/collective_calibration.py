"""Calibration constants of the collective cost model, loaded from `calibration/*.yaml`.

Hardware numbers (link bandwidths, hop latencies, HBM and EFA rates) come from `tessera.hw`.
This file's constants belong to the *model*: the fixed per-collective overhead of the runtime
(standalone and inside a compiled graph), the message sizes at which the runtime changes
algorithm, the fraction of a link's peak that transfers reach, how a published per-chip link
figure splits between directions, and stand-ins for latencies the presets mark unknown. Every YAML
entry has `value`, `source`, `fitted_on` and `status`; a missing or unknown key is an error.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tessera.hw.calibration_file import calibration_entry, read_calibration_file
from tessera.hw.errors import CalibrationError

CALIBRATION_FILE = Path(__file__).with_name("calibration") / "collectives.yaml"


@dataclass(frozen=True)
class CollectiveCalibration:
    """Model constants of `tessera.net` (see `calibration/collectives.yaml` for sources)."""

    # Fixed cost of one collective: runtime launch and the final synchronisation. Per-hop
    # latencies come from the presets and the per-message DMA issue cost from the chip's
    # DMA preset (Neuron) or `gpu_message_issue_s`; see calibration/collectives.yaml.
    neuron_collective_overhead_s: float
    # What a collective inside a compiled graph pays instead of the standalone overhead.
    neuron_in_graph_overhead_s: float
    # The Neuron runtime's documented message-size bounds: Mesh below the first, RDH below
    # the second, KangaRing (or Ring) above (`policy`).
    runtime_mesh_max_bytes: int
    runtime_rdh_max_bytes: int
    gpu_collective_overhead_s: float
    gpu_message_issue_s: float
    # Achieved fraction of a link's peak bandwidth for large transfers.
    neuronlink_efficiency: float
    nvlink_efficiency: float
    network_efficiency: float
    # How many directions a preset's per-chip link figure covers: 1 = the figure is what
    # one direction carries, 2 = it is the sum of both directions.
    neuronlink_figure_directions: int
    nvlink_figure_directions: int
    # Used only where the preset marks the latency unknown.
    neuronlink_fallback_hop_latency_s: float
    nvlink_fallback_hop_latency_s: float
    network_fallback_p2p_latency_s: float
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False,
                                                   repr=False)

    def with_overrides(self, **values: float) -> CollectiveCalibration:
        """A copy with some constants replaced, e.g. `with_overrides(neuronlink_efficiency=1)`."""
        names = {f.name for f in dataclasses.fields(self)} - {"sources"}
        unknown = set(values) - names
        if unknown:
            raise CalibrationError(f"no calibration constant(s) {sorted(unknown)}; constants: "
                                   f"{', '.join(sorted(names))}")
        sources = {**self.sources, **{k: "overridden" for k in values}}
        return dataclasses.replace(self, **values, sources=sources)  # type: ignore[arg-type]

    @property
    def key(self) -> str:
        """Stable text of the values, for cache keys."""
        return ",".join(f"{f.name}={getattr(self, f.name)!r}"
                        for f in dataclasses.fields(self) if f.name != "sources")


def _entry(name: str, raw: object, path: Path) -> tuple[float, str]:
    value, source = calibration_entry(name, raw, str(path))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise CalibrationError(f"{path}: {name}: value must be a non-negative number")
    return float(value), source


@functools.cache
def load_calibration(path: Path | None = None) -> CollectiveCalibration:
    """The collective-model constants from `path` (default: the packaged collectives.yaml)."""
    path = path or CALIBRATION_FILE
    data = read_calibration_file(path)
    entries = data.get("constants")
    if not isinstance(entries, dict):
        raise CalibrationError(f"{path}: expected a 'constants' mapping")
    fields = {f.name: f for f in dataclasses.fields(CollectiveCalibration)}
    wanted = set(fields) - {"sources"}
    if set(entries) != wanted:
        raise CalibrationError(f"{path}: unknown keys {sorted(set(entries) - wanted)}, "
                               f"missing keys {sorted(wanted - set(entries))}")
    values: dict[str, float | int] = {}
    sources: dict[str, str] = {}
    for name, raw in entries.items():
        value, sources[name] = _entry(name, raw, path)
        values[name] = int(value) if fields[name].type == "int" else value
    for name in ("neuronlink_figure_directions", "nvlink_figure_directions"):
        if values[name] not in (1, 2):
            raise CalibrationError(f"{path}: {name} must be 1 or 2")
    if values["runtime_mesh_max_bytes"] > values["runtime_rdh_max_bytes"]:
        raise CalibrationError(f"{path}: runtime_mesh_max_bytes exceeds runtime_rdh_max_bytes")
    for name in ("neuronlink_efficiency", "nvlink_efficiency", "network_efficiency"):
        if not 0 < values[name] <= 1:
            raise CalibrationError(f"{path}: {name} must be in (0, 1]")
    return CollectiveCalibration(**values, sources=sources)  # type: ignore[arg-type]
