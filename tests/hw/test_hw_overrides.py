"""What-if hardware through `with_overrides`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera import hw


def test_override_nested_field() -> None:
    chip = hw.load_chip("trn1")
    new = hw.with_overrides(chip, {"core.sbuf.bytes_per_partition": 262144})
    assert new.core.sbuf.bytes_per_partition == 262144
    assert new.sbuf_bytes == 2 * 128 * 262144
    assert chip.core.sbuf.bytes_per_partition == 192 * 1024  # original untouched
    prov = new.core.sbuf.sourced("bytes_per_partition")
    assert prov.status is hw.Status.OVERRIDDEN and "262144" in prov.source
    assert new.core.sbuf.sources["partitions"] == chip.core.sbuf.sources["partitions"]
    assert new.core.tensor is chip.core.tensor  # untouched branches are shared


def test_override_from_command_line_text() -> None:
    chip = hw.load_chip("trn1")
    new = hw.with_overrides(chip, {"core.tensor.clock_hz": "2.4 GHz", "physical_cores": "4"})
    assert new.tensor_clock_hz == pytest.approx(2.4e9)
    assert new.physical_cores == 4
    assert new.peak_flops() == pytest.approx(4 * 128 * 128 * 2 * 2.4e9)
    assert hw.with_overrides(chip, {"core.tensor.clock_hz": "3GHz"}).tensor_clock_hz == 3e9
    flags = hw.with_overrides(chip, {"core.access.vector_gpsimd_share_sbuf_port": "false"})
    assert not flags.core.access.vector_gpsimd_share_sbuf_port


def test_override_mapping_entry_and_unknown() -> None:
    core = hw.load_core("nc-v2")
    new = hw.with_overrides(core, {"tensor.rate_by_precision.fp32": 0.5})
    assert new.tensor.cycle_factor("fp32") == pytest.approx(2.0)
    assert new.tensor.sources["rate_by_precision.fp32"].status is hw.Status.OVERRIDDEN
    new = hw.with_overrides(core, {"costs.observed_dependent_activation_ii_s": "unknown"})
    assert new.costs.observed_dependent_activation_ii_s is None


def test_override_instance_reaches_the_core() -> None:
    inst = hw.load_instance("trn1.32xlarge")
    new = hw.with_overrides(inst, {"chip.core.tensor.clock_hz": 1.4e9})
    assert new.peak_flops() == pytest.approx(inst.peak_flops() / 2)
    price = hw.with_overrides(inst, {"price.on_demand_usd_per_hour": 10})
    assert price.price.on_demand_usd_per_hour == 10.0


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("core.sbuf.bytes_per_partiton", "no field 'bytes_per_partiton'"),
        ("core.sbuf", "is a group"),
        ("physical_cores.x", "no sub-fields"),
        ("core..sbuf", "empty path"),
        ("core.tensor.rate_by_precision", "name one key"),
        ("core.tensor.rate_by_precision.int3", "not a valid key"),
    ],
)
def test_override_rejects_bad_paths(path: str, match: str) -> None:
    with pytest.raises(hw.OverrideError, match=match):
        hw.with_overrides(hw.load_chip("trn1"), {path: 1})


def test_override_rejects_bad_values() -> None:
    chip = hw.load_chip("trn1")
    with pytest.raises(hw.OverrideError, match="whole number"):
        hw.with_overrides(chip, {"physical_cores": 2.5})
    with pytest.raises(hw.OverrideError, match="must be known"):
        hw.with_overrides(chip, {"physical_cores": "unknown"})
    with pytest.raises(hw.OverrideError, match="GHz"):
        hw.with_overrides(chip, {"core.tensor.clock_hz": "2 GB/s"})


def test_override_must_stay_consistent() -> None:
    core = hw.load_core("nc-v2")
    with pytest.raises(hw.PresetError, match="change them together"):
        hw.with_overrides(core, {"psum.banks": 4})
    with pytest.raises(hw.PresetError, match="engine_psum_fmax"):
        hw.with_overrides(core, {"psum.banks": 4, "psum.bytes_per_partition": 8192})
    ok = hw.with_overrides(
        core, {"psum.banks": 4, "psum.bytes_per_partition": 8192, "tile.engine_psum_fmax": 2048}
    )
    assert ok.psum.total_bytes == 1 << 20
    with pytest.raises(hw.PresetError, match="LNC"):
        hw.with_overrides(hw.load_chip("trn2"), {"physical_cores": 7})


@given(kib=st.integers(min_value=1, max_value=4096))
def test_sbuf_total_follows_override(kib: int) -> None:
    core = hw.with_overrides(hw.load_core("nc-v3"), {"sbuf.bytes_per_partition": kib * 1024})
    assert core.sbuf.total_bytes == 128 * kib * 1024
