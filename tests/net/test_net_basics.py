"""Sizes, operation/algorithm names, bus-bandwidth factors and calibration loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.hw import CalibrationError
from tessera.net import (
    Algorithm,
    CollectiveOp,
    SizeError,
    UnknownCollectiveError,
    bus_factor,
    format_bytes,
    load_calibration,
    parse_algorithm,
    parse_bytes,
    parse_op,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("64MiB", 64 * 2**20), ("1GB", 10**9), ("4096", 4096), (4096, 4096), ("1.5KiB", 1536),
    ("2 GiB", 2 * 2**30), ("64M", 64 * 2**20), ("1kb", 1000), ("8B", 8), ("1e3", 1000),
])
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "abc", "12XB", "", "MiB", True, 0])
def test_parse_bytes_rejects(text: object) -> None:
    with pytest.raises(SizeError):
        parse_bytes(text)  # type: ignore[arg-type]


def test_format_bytes() -> None:
    assert format_bytes(64 * 2**20) == "64 MiB"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(100) == "100 B"


@pytest.mark.parametrize(("name", "op"), [
    ("ALL_REDUCE", CollectiveOp.ALL_REDUCE), ("all-reduce", CollectiveOp.ALL_REDUCE),
    ("allr", CollectiveOp.ALL_REDUCE), ("AllGather", CollectiveOp.ALL_GATHER),
    ("redsct", CollectiveOp.REDUCE_SCATTER), ("a2a", CollectiveOp.ALL_TO_ALL),
    ("bcast", CollectiveOp.BROADCAST), ("sendrecv", CollectiveOp.SEND_RECV),
    ("PERMUTE", CollectiveOp.PERMUTE),
])
def test_parse_op(name: str, op: CollectiveOp) -> None:
    assert parse_op(name) is op


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownCollectiveError, match="ALL_REDUCE"):
        parse_op("ALL_SUM")
    with pytest.raises(UnknownCollectiveError, match="ring_bidir"):
        parse_algorithm("tree")
    # "mesh" is the runtime's chip-aware mesh; "direct" the every-peer write
    assert parse_algorithm("mesh") is Algorithm.MESH
    assert parse_algorithm("rdh") is Algorithm.RHD
    assert parse_algorithm("kanga-ring") is Algorithm.KANGARING
    assert parse_algorithm("RDH") is Algorithm.RHD


@pytest.mark.parametrize(("op", "n", "factor"), [
    (CollectiveOp.ALL_REDUCE, 16, 2 * 15 / 16), (CollectiveOp.ALL_GATHER, 16, 15 / 16),
    (CollectiveOp.REDUCE_SCATTER, 4, 3 / 4), (CollectiveOp.ALL_TO_ALL, 8, 7 / 8),
    (CollectiveOp.SEND_RECV, 2, 1.0), (CollectiveOp.PERMUTE, 8, 1.0),
    (CollectiveOp.ALL_REDUCE, 2, 1.0),
])
def test_bus_factor(op: CollectiveOp, n: int, factor: float) -> None:
    assert bus_factor(op, n) == pytest.approx(factor)


def test_calibration_has_provenance_for_every_constant() -> None:
    cal = load_calibration()
    assert 0 < cal.neuronlink_efficiency <= 1
    assert cal.neuron_collective_overhead_s > 0
    assert set(cal.sources) >= {"neuron_collective_overhead_s", "neuronlink_efficiency"}
    assert all(src.strip() for src in cal.sources.values())
    with pytest.raises(CalibrationError, match="no calibration constant"):
        cal.with_overrides(magic_s=1.0)


def test_calibration_rejects_missing_keys(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("schema: 1\nconstants:\n  neuron_collective_overhead_s: {value: 1e-6, "
                   "source: x, fitted_on: y, status: fitted}\n")
    with pytest.raises(CalibrationError, match="missing keys"):
        load_calibration(bad)
