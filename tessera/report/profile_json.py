"""The canonical JSON form of a kernel `Profile` (SI units, versioned schema).

Derived views (trace, PNG, CLI tables) may round or convert; this one keeps every number as
the model produced it, so reports can be compared across tessera versions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from tessera.report.meta import provenance
from tessera.sim import Profile

SCHEMA = "tessera.profile/1"


def _finite(x: float) -> float | None:
    """JSON has no infinity: an unbounded ratio (no HBM traffic) becomes null."""
    return x if math.isfinite(x) else None


def profile_report(profile: Profile, *, kernel: str | None = None,
                   overrides: Mapping[str, object] | None = None) -> dict[str, object]:
    """Every summary number of `profile`, with the provenance header (see `meta`)."""
    cp = profile.critical_path
    report = provenance(profile, SCHEMA, kernel, overrides)
    report.update({
        "instructions": profile.instructions,
        "total_s": profile.total_s,
        "engines": [{"resource": u.resource.value, "busy_s": u.busy_s,
                     "utilisation": u.utilisation, "instructions": u.instructions}
                    for u in profile.engines],
        "flops": profile.flops,
        "hbm_read_bytes": profile.hbm_read_bytes,
        "hbm_write_bytes": profile.hbm_write_bytes,
        "achieved_flops_per_s": profile.achieved_flops_per_s,
        "peak_flops_per_s": profile.peak_flops_per_s,
        "flops_utilisation": profile.flops_utilisation,
        "achieved_hbm_bytes_per_s": profile.achieved_hbm_bytes_per_s,
        "peak_hbm_bytes_per_s": profile.peak_hbm_bytes_per_s,
        "hbm_utilisation": profile.hbm_utilisation,
        "arithmetic_intensity_flops_per_byte": _finite(profile.arithmetic_intensity),
        "ridge_point_flops_per_byte": _finite(profile.ridge_point),
        "bound": profile.bound.value,
        "critical_path": {
            "length_s": cp.length_s, "instructions": cp.instructions,
            "waiting_s": cp.waiting_s, "dominant": cp.dominant.value,
            "by_resource_s": {r.value: t for r, t in cp.by_resource}},
        "top_instructions": [
            {"opcode": h.opcode.value, "engine": h.engine.value, "file": h.location.file,
             "line": h.location.line, "function": h.location.function, "count": h.count,
             "total_s": h.total_s} for h in profile.top_instructions],
        "peak_sbuf_bytes_per_partition": profile.peak_sbuf_bytes,
        "peak_psum_bytes_per_partition": profile.peak_psum_bytes,
        "spill_bytes": profile.spill_bytes,
        "spills": [
            {"tensor": sp.tensor, "shape": list(sp.shape), "dtype": sp.dtype,
             "tile_bytes": sp.tile_bytes, "created_at": str(sp.created_at),
             "needed_at": str(sp.needed_at), "reloaded_for": str(sp.reloaded_for)}
            for sp in profile.spills],
    })
    return report


def write_profile_json(profile: Profile, path: Path | str, *, kernel: str | None = None,
                       overrides: Mapping[str, object] | None = None) -> Path:
    """Write `profile_report(...)` to `path` (indented JSON) and return the path."""
    path = Path(path)
    report = profile_report(profile, kernel=kernel, overrides=overrides)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return path
