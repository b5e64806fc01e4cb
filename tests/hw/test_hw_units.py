"""Unit suffixes, conversion and display."""

from __future__ import annotations

import pytest

from tessera.hw.units import Dimension, dimension_of, format_quantity, parse_quantity, unit_factor


@pytest.mark.parametrize(
    ("name", "dim"),
    [
        ("hbm_bytes_per_s", Dimension.BANDWIDTH),
        ("bytes_per_s", Dimension.BANDWIDTH),
        ("capacity_bytes", Dimension.BYTES),
        ("bytes_per_partition", Dimension.BYTES),
        ("bank_bytes_per_partition", Dimension.BYTES),
        ("clock_hz", Dimension.FREQUENCY),
        ("fixed_latency_s", Dimension.TIME),
        ("published_peak_flops", Dimension.FLOPS),
        ("on_demand_usd_per_hour", Dimension.USD_PER_HOUR),
        ("min_ii_cycles", Dimension.CYCLES),
        ("partitions", Dimension.NONE),
    ],
)
def test_dimension_from_name(name: str, dim: Dimension) -> None:
    assert dimension_of(name) is dim


def test_conversions() -> None:
    assert unit_factor("x_bytes", "KiB") == 1024
    assert unit_factor("x_bytes_per_s", "Gbps") == pytest.approx(1.25e8)
    assert parse_quantity("clock_hz", "2.4 GHz") == pytest.approx(2.4e9)
    assert parse_quantity("clock_hz", "2.4e9") == pytest.approx(2.4e9)
    assert parse_quantity("x_s", "600ns") == pytest.approx(6e-7)
    with pytest.raises(ValueError, match="does not fit"):
        unit_factor("clock_hz", "GiB")
    with pytest.raises(ValueError):
        parse_quantity("clock_hz", "fast")


def test_format() -> None:
    assert format_quantity("x_bytes", 192 * 1024) == "192 KiB"
    assert format_quantity("x_bytes", 80e9) == "80 GB"
    assert format_quantity("x_flops", 91.7504e12) == "91.75 TFLOPS"
    assert format_quantity("x_usd_per_hour", None) == "unknown"
    assert format_quantity("x_usd_per_hour", 21.5) == "$21.500/h"
    assert format_quantity("x_s", 1.3e-6) == "1.3 us"
