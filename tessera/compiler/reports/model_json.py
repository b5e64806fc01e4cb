"""The canonical JSON form of a compiled model's `ModelProfile` (SI units, versioned schema).

    report = model_report(compiled.profile, model="tiny-llama",
                          inputs={"input_ids": {"shape": [1, 32], "dtype": "int64"}})

Header (as every report: see `meta`): schema, tessera version, chip, fidelity, the model's
name, its inputs (shape and dtype) and the compile settings. Then:

* `totals`: total_s (the sum of the ops, docs/compiler.md), device_s, host_s, flops,
  hbm_bytes, peak_hbm_bytes, peak_sbuf_bytes (per partition; 0 at roofline), ops;
* `memory`: the HBM plan (resident weights, inputs, peak activations and where);
* `utilisation`: per resource, busy seconds summed over the ops and their share of total_s;
* `groups`: seconds per op group (matmul, attention, norm, ...: `model_ops.op_group`);
* `layers`: one row per layer (`ModelProfile.by_layer`: `layers.3`, `model.embed_tokens`,
  `lm_head`); `modules`: one per full module path;
* `ops`: one row per node in graph order, its start time in the sum included.

Every number is as the compiler produced it; a non-finite one would be written as null.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

import tessera
from tessera.compiler.profile import LayerTime, ModelProfile
from tessera.compiler.reports.model_ops import GROUPS, op_group

SCHEMA = "tessera.model_profile/1"


def plain(value: object) -> object:
    """A JSON-safe copy: tuples become lists, non-finite floats null, tensors and dtypes
    their shape and name, anything else unknown its text."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor or an array
        return {"shape": [int(d) for d in value.shape], "dtype": _dtype(value.dtype)}
    return _dtype(value)


def _dtype(value: object) -> str:
    return str(value).removeprefix("torch.")


def provenance(profile: ModelProfile, *, model: str | None = None,
               inputs: Mapping[str, object] | None = None,
               settings: Mapping[str, object] | None = None,
               schema: str = SCHEMA) -> dict[str, object]:
    """The header of a model report: schema, tessera version, chip, fidelity, the model's
    name, its inputs and the compile settings (symbolic, dtype, fallback, ...)."""
    return {
        "schema": schema,
        "tessera_version": tessera.__version__,
        "chip": profile.chip,
        "fidelity": profile.fidelity,
        "model": model,
        "inputs": plain(dict(inputs or {})),
        "settings": plain(dict(settings or {})),
    }


def _layer(row: LayerTime, total: float) -> dict[str, object]:
    return {"module": row.module, "time_s": row.time_s,
            "share": row.time_s / total if total else 0.0, "ops": row.ops,
            "flops": row.flops, "hbm_bytes": row.hbm_bytes}


def group_times(profile: ModelProfile) -> dict[str, float]:
    """Seconds per op group, every group of `GROUPS` present (0.0 when unused)."""
    out = dict.fromkeys(GROUPS, 0.0)
    for op in profile.ops:
        out[op_group(op)] += op.time_s
    return out


def model_report(profile: ModelProfile, *, model: str | None = None,
                 inputs: Mapping[str, object] | None = None,
                 settings: Mapping[str, object] | None = None) -> dict[str, object]:
    """Every number of `profile` with the provenance header (see the module docstring).

    `inputs` maps each input's name to a tensor, or to anything JSON-ready (e.g.
    `{"shape": [1, 32], "dtype": "int64"}`); `settings` records how the model was compiled.
    """
    total = profile.total_s
    busy = profile.busy_s()
    mem = profile.memory
    ops = []
    start = 0.0
    for op in profile.ops:
        ops.append({"node": op.node, "op": op.op, "kind": op.kind.value, "module": op.module,
                    "layer": profile.layer_of(op), "group": op_group(op), "priced_as": op.priced_as,
                    "kernels": list(op.kernels), "start_s": start, "time_s": op.time_s,
                    "bound": op.bound, "flops": op.flops, "hbm_bytes": op.hbm_bytes,
                    "busy_s": dict(op.busy_s), "peak_sbuf_bytes": op.peak_sbuf_bytes})
        start += op.time_s
    report = provenance(profile, model=model, inputs=inputs, settings=settings)
    report.update({
        "totals": {"total_s": float(total), "device_s": float(profile.device_s),
                   "host_s": float(profile.host_s), "flops": float(profile.flops),
                   "hbm_bytes": float(profile.hbm_bytes),
                   "peak_hbm_bytes": profile.peak_hbm_bytes,
                   "peak_sbuf_bytes": profile.peak_sbuf_bytes, "ops": len(profile.ops),
                   "fidelity": profile.fidelity},
        "memory": {"resident_bytes": mem.resident_bytes, "input_bytes": mem.input_bytes,
                   "peak_activation_bytes": mem.peak_activation_bytes,
                   "peak_node": mem.peak_node, "peak_bytes": mem.peak_bytes},
        "utilisation": {r: {"busy_s": b, "utilisation": b / total if total else 0.0}
                        for r, b in busy.items()},
        "groups": group_times(profile),
        "layers": [_layer(row, total) for row in profile.by_layer()],
        "modules": [_layer(row, total) for row in profile.by_module()],
        "ops": ops,
    })
    return plain(report)  # type: ignore[return-value]


def write_model_json(profile: ModelProfile, path: Path | str, *, model: str | None = None,
                     inputs: Mapping[str, object] | None = None,
                     settings: Mapping[str, object] | None = None) -> Path:
    """Write `model_report(...)` to `path` (indented JSON) and return the path."""
    path = Path(path)
    report = model_report(profile, model=model, inputs=inputs, settings=settings)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path
