"""Units: a field's name says its dimension; YAML may write values in the unit of the source.

Presets store SI units (Hz, bytes, bytes/s, seconds, FLOP/s, USD/hour). A YAML entry may
give `unit: GiB` or `unit: TFLOPS` so the number reads exactly as the cited page prints it;
the loader converts it and refuses a unit whose dimension does not match the field name
(a `_bytes_per_s` field cannot take `GHz`). Formatting for humans also lives here so the CLI
and reports share one table.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Dimension(StrEnum):
    """Physical dimension implied by a field-name suffix."""

    BANDWIDTH = "bytes/s"
    USD_PER_HOUR = "USD/hour"
    FLOPS = "FLOP/s"
    BYTES = "bytes"
    FREQUENCY = "Hz"
    CYCLES = "cycles"
    TIME = "s"
    NONE = "1"


# Longest suffixes first: `_bytes_per_s` must win over `_s` and `_bytes`.
_SUFFIXES: tuple[tuple[str, Dimension], ...] = (
    ("_bytes_per_s", Dimension.BANDWIDTH),
    ("_usd_per_hour", Dimension.USD_PER_HOUR),
    ("_flops", Dimension.FLOPS),
    ("_bytes", Dimension.BYTES),
    ("bytes_per_partition", Dimension.BYTES),  # SBUF/PSUM geometry names used by tessera.nki
    ("_hz", Dimension.FREQUENCY),
    ("_cycles", Dimension.CYCLES),
    ("_s", Dimension.TIME),
)

UNITS: dict[Dimension, dict[str, float]] = {
    Dimension.BANDWIDTH: {
        "B/s": 1,
        "MB/s": 1e6,
        "GB/s": 1e9,
        "TB/s": 1e12,
        "GiB/s": 2**30,
        "TiB/s": 2**40,
        "B/ns": 1e9,
        "Gbps": 1e9 / 8,
        "Tbps": 1e12 / 8,
    },
    Dimension.USD_PER_HOUR: {"USD/h": 1},
    Dimension.FLOPS: {"FLOPS": 1, "GFLOPS": 1e9, "TFLOPS": 1e12, "PFLOPS": 1e15},
    Dimension.BYTES: {
        "B": 1,
        "KiB": 2**10,
        "MiB": 2**20,
        "GiB": 2**30,
        "TiB": 2**40,
        "KB": 1e3,
        "MB": 1e6,
        "GB": 1e9,
        "TB": 1e12,
    },
    Dimension.FREQUENCY: {"Hz": 1, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9},
    Dimension.CYCLES: {"cycles": 1},
    Dimension.TIME: {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9},
    Dimension.NONE: {},
}


def dimension_of(field_name: str) -> Dimension:
    """The dimension a field (or published-figure) name implies by its unit suffix."""
    for suffix, dim in _SUFFIXES:
        # A bare name such as `bytes_per_s` counts as well as `hbm_bytes_per_s`.
        if field_name.endswith(suffix) or field_name == suffix.lstrip("_"):
            return dim
    return Dimension.NONE


def unit_factor(field_name: str, unit: str) -> float:
    """Multiplier that converts `unit` to SI for `field_name`; ValueError if it does not fit."""
    dim = dimension_of(field_name)
    table = UNITS[dim]
    if unit not in table:
        allowed = ", ".join(table) or "no unit (dimensionless)"
        raise ValueError(
            f"unit {unit!r} does not fit {field_name!r} ({dim.value}); use one of: {allowed}"
        )
    return table[unit]


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/]*)\s*$")


def parse_quantity(field_name: str, text: str) -> float:
    """Parse '2.4 GHz', '2.4GHz' or '262144' for `field_name` into an SI number."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"cannot parse quantity {text!r}")
    number, unit = match.groups()
    value = float(number)
    return value * unit_factor(field_name, unit) if unit else value


def _scaled(value: float, steps: list[tuple[float, str]], digits: int = 3) -> str:
    for factor, suffix in steps:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {suffix}"
    factor, suffix = steps[-1]
    return f"{value / factor:.{digits}g} {suffix}"


def format_quantity(field_name: str, value: object) -> str:
    """Human-readable rendering of an SI value for display (CLI, reports)."""
    if value is None:
        return "unknown"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    dim = dimension_of(field_name)
    v = float(value)
    if dim is Dimension.BANDWIDTH:
        return _scaled(v, [(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1, "B/s")], 4)
    if dim is Dimension.FLOPS:
        return _scaled(v, [(1e15, "PFLOPS"), (1e12, "TFLOPS"), (1e9, "GFLOPS"), (1, "FLOPS")], 4)
    if dim is Dimension.BYTES:
        if v >= 2**30 and v % 2**30 != 0 and v % 1e9 == 0:
            return f"{v / 1e9:g} GB"
        steps = [(2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")]
        return _scaled(v, steps, 6)
    if dim is Dimension.FREQUENCY:
        return _scaled(v, [(1e9, "GHz"), (1e6, "MHz"), (1, "Hz")], 4)
    if dim is Dimension.TIME:
        return _scaled(v, [(1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")], 4)
    if dim is Dimension.USD_PER_HOUR:
        return f"${v:,.3f}/h"
    if dim is Dimension.CYCLES:
        return f"{v:g} cycles"
    return f"{value:g}" if isinstance(value, float) else str(value)
