"""The shared format of model-calibration YAML files (used by `sim` and `net`).

A calibration file is a mapping with `schema: 1`; each constant is an entry
`{value, source, fitted_on, status}` so that every fitted or assumed number says where it
comes from and what it was fitted on. The layers above keep their own constants and
checks; this module only reads the file and validates one entry.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tessera.hw.errors import CalibrationError

ENTRY_KEYS = frozenset({"value", "source", "fitted_on", "status"})
STATUSES = ("published", "derived", "fitted", "assumed", "overridden")


def read_calibration_file(path: Path) -> dict:
    """The parsed file, or a `CalibrationError` naming the file when it is not a schema-1
    mapping."""
    with open(path) as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise CalibrationError(f"{path}: expected a mapping with schema: 1")
    return data


def calibration_entry(name: str, raw: object, where: str,
                      status_required: bool = True) -> tuple[object, str]:
    """(value, source) of one entry, or a `CalibrationError` naming `where.name` and what is
    wrong."""
    required = ENTRY_KEYS if status_required else ENTRY_KEYS - {"status"}
    if not isinstance(raw, dict) or set(raw) - ENTRY_KEYS or not required <= set(raw):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise CalibrationError(f"{where}.{name}: keys must be {sorted(required)}"
                    f"{'' if status_required else ' and optional status'}; got {got}")
    status = raw.get("status", "published")
    if status not in STATUSES:
        raise CalibrationError(f"{where}.{name}: status {status!r} is not one of {STATUSES}")
    if not str(raw["source"]).strip() or not str(raw["fitted_on"]).strip():
        raise CalibrationError(f"{where}.{name}: source and fitted_on must not be empty")
    return raw["value"], str(raw["source"])
