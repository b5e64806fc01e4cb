"""What every report records about where its numbers came from."""

from __future__ import annotations

from collections.abc import Mapping

import tessera
from tessera.sim import Profile


def provenance(profile: Profile, schema: str, kernel: str | None = None,
               overrides: Mapping[str, object] | None = None) -> dict[str, object]:
    """The header fields of a report: schema, tessera version, hardware preset, what-ifs.

    `overrides` are the hardware/calibration what-ifs the profile was made under; a report
    without them would pass modified hardware off as the published preset.
    """
    return {
        "schema": schema,
        "tessera_version": tessera.__version__,
        "chip": profile.chip,
        "cores": profile.cores,
        "kernel": kernel,
        "overrides": {k: _plain(v) for k, v in (overrides or {}).items()},
        "schedule": profile.heuristic.value,
        "notes": list(profile.notes),
    }


def _plain(value: object) -> object:
    """A JSON-safe rendering of an override value (numbers stay numbers)."""
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)
