"""Strict loading: unknown/missing keys, units, statuses and plausibility checks."""

from __future__ import annotations

import copy

import pytest
import yaml

from tessera import hw


def preset_data(filename: str) -> dict:
    """The parsed YAML of a built-in preset file."""
    return yaml.safe_load((hw.PRESET_DIR / filename).read_text())


def _core() -> dict:
    return copy.deepcopy(preset_data("core_nc-v2.yaml"))


def _load_error(write_preset, data) -> hw.PresetError:
    path = write_preset(data)
    with pytest.raises(hw.PresetError) as info:
        hw.load_file(path)
    assert str(path) in str(info.value)
    assert info.value.file == str(path)
    return info.value


def test_builtin_copy_loads_from_file(write_preset) -> None:
    spec = hw.load_file(write_preset(_core()))
    assert spec == hw.load_core("nc-v2")


def test_unknown_key_names_file_and_key(write_preset) -> None:
    data = _core()
    data["sbuf"]["bytes_per_partiton"] = {"value": 1, "source": "typo"}
    err = _load_error(write_preset, data)
    assert err.key_path == "sbuf.bytes_per_partiton"
    assert "unknown key" in str(err)


def test_unknown_top_level_key(write_preset) -> None:
    data = _core()
    data["colour"] = "blue"
    assert _load_error(write_preset, data).key_path == "colour"


def test_unknown_key_inside_entry(write_preset) -> None:
    data = _core()
    data["tensor"]["clock_hz"]["units"] = "GHz"
    assert _load_error(write_preset, data).key_path == "tensor.clock_hz.units"


def test_missing_key(write_preset) -> None:
    data = _core()
    del data["tile"]["bn_stats_fmax"]
    err = _load_error(write_preset, data)
    assert err.key_path == "tile.bn_stats_fmax" and "missing" in str(err)


def test_missing_source(write_preset) -> None:
    data = _core()
    del data["psum"]["banks"]["source"]
    assert _load_error(write_preset, data).key_path == "psum.banks.source"


def test_empty_source(write_preset) -> None:
    data = _core()
    data["psum"]["banks"]["source"] = "  "
    assert "non-empty" in str(_load_error(write_preset, data))


def test_unknown_source_key(write_preset) -> None:
    data = _core()
    data["psum"]["banks"]["source"] = "[NOPE] somewhere"
    assert "unknown source key" in str(_load_error(write_preset, data))


def test_unit_must_match_field_dimension(write_preset) -> None:
    data = _core()
    data["tensor"]["clock_hz"]["unit"] = "GB/s"
    err = _load_error(write_preset, data)
    assert err.key_path == "tensor.clock_hz.unit" and "GHz" in str(err)


def test_null_value_needs_unknown_status(write_preset) -> None:
    data = _core()
    data["costs"]["semaphore_latency_s"]["status"] = "published"
    assert "status: unknown" in str(_load_error(write_preset, data))


def test_required_field_cannot_be_unknown(write_preset) -> None:
    data = _core()
    data["tile"]["pmax"] = {"value": None, "source": "x", "status": "unknown", "note": "?"}
    assert "must be known" in str(_load_error(write_preset, data))


def test_uncertain_needs_a_note(write_preset) -> None:
    data = _core()
    data["tile"]["pmax"]["status"] = "uncertain"
    assert _load_error(write_preset, data).key_path == "tile.pmax.note"


def test_derived_needs_a_formula(write_preset) -> None:
    data = _core()
    data["tile"]["pmax"]["status"] = "derived"
    assert "formula" in str(_load_error(write_preset, data))


def test_wrong_types(write_preset) -> None:
    data = _core()
    data["tile"]["pmax"]["value"] = 127.5
    assert "whole number" in str(_load_error(write_preset, data))
    data = _core()
    data["access"]["vector_gpsimd_share_sbuf_port"]["value"] = 1
    assert "true or false" in str(_load_error(write_preset, data))
    data = _core()
    data["tensor"]["kind"] = "matrix"
    assert "one of" in str(_load_error(write_preset, data))
    data = _core()
    data["tensor"]["rate_by_precision"]["int3"] = {"value": 1, "source": "x"}
    assert _load_error(write_preset, data).key_path == "tensor.rate_by_precision.int3"


def test_text_number_hint(write_preset) -> None:
    data = _core()
    data["dma"]["engine_bytes_per_s"] = {"value": "27.2e9", "source": "x"}
    assert "1.0e+9" in str(_load_error(write_preset, data))


def test_duplicate_yaml_key(tmp_path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("schema: 1\nkind: core\nname: a\nname: b\n")
    with pytest.raises(hw.PresetError, match="duplicate key"):
        hw.load_file(path)


def test_bad_header(write_preset) -> None:
    data = _core()
    data["kind"] = "router"
    assert _load_error(write_preset, data).key_path == "kind"
    data = _core()
    data["schema"] = 2
    assert _load_error(write_preset, data).key_path == "schema"


def test_implausible_tensor_peak(write_preset) -> None:
    data = _core()
    data["tensor"]["published_peak_flops"]["bf16"]["value"] = 150
    err = _load_error(write_preset, data)
    assert err.key_path == "tensor.published_peak_flops.bf16"
    assert "limit 10%" in str(err)


def test_uncertain_figures_get_the_looser_limit(write_preset) -> None:
    data = _core()
    entry = data["tensor"]["published_peak_flops"]["bf16"]
    entry["value"] = 105  # 14% above the 91.75 TFLOPS model
    _load_error(write_preset, data)
    entry.update(status="uncertain", note="test")
    assert hw.load_file(write_preset(data)).tensor.published_peak_flops


def test_implausible_sbuf_total(write_preset) -> None:
    data = _core()
    data["sbuf"]["published_total_bytes"]["value"] = 25
    err = _load_error(write_preset, data)
    assert err.key_path == "sbuf.published_total_bytes" and "partitions" in str(err)


def test_psum_banks_must_fill_the_partition(write_preset) -> None:
    data = _core()
    data["psum"]["banks"]["value"] = 4
    assert _load_error(write_preset, data).key_path == "psum.bytes_per_partition"


def test_implausible_chip_peak(write_preset) -> None:
    data = copy.deepcopy(preset_data("chip_trn2.yaml"))
    data["published_peak_flops"]["bf16"]["value"] = 800  # 27% above 8 x 78.6
    err = _load_error(write_preset, data)
    assert err.key_path == "published_peak_flops.bf16" and "8 cores" in str(err)


def test_chip_dma_engine_count(write_preset) -> None:
    data = copy.deepcopy(preset_data("chip_trn1.yaml"))
    data["published_dma_engines"]["value"] = 30
    assert _load_error(write_preset, data).key_path == "published_dma_engines"


def test_lnc_default_must_be_allowed(write_preset) -> None:
    data = copy.deepcopy(preset_data("chip_trn2.yaml"))
    data["lnc_default"]["value"] = 4
    assert _load_error(write_preset, data).key_path == "lnc_default"


def test_unknown_chip_reference(write_preset) -> None:
    data = copy.deepcopy(preset_data("chip_trn2.yaml"))
    data["core"] = "nc-v9"
    err = _load_error(write_preset, data)
    assert err.key_path == "core" and "nc-v2" in str(err)


def test_instance_topology_must_match_chip_count(write_preset) -> None:
    data = copy.deepcopy(preset_data("instance_trn1.32xlarge.yaml"))
    data["chip_count"]["value"] = 8
    assert _load_error(write_preset, data).key_path == "chip_count"


def test_instance_totals_must_match_chips(write_preset) -> None:
    data = copy.deepcopy(preset_data("instance_trn1.32xlarge.yaml"))
    data["published_hbm_bytes"]["value"] = 1024
    err = _load_error(write_preset, data)
    assert err.key_path == "published_hbm_bytes" and "16 x chip HBM" in str(err)


def test_inline_whatif_chip(write_preset) -> None:
    data = copy.deepcopy(preset_data("chip_trn1.yaml"))
    core = _core()
    core["sbuf"]["bytes_per_partition"] = {"value": 256, "unit": "KiB", "source": "what-if"}
    core["sbuf"]["published_total_bytes"] = {"value": 32, "unit": "MiB", "source": "what-if"}
    data["core"] = core
    data["published_sbuf_bytes"]["value"] = 64
    chip = hw.load_file(write_preset(data))
    assert chip.core.sbuf.bytes_per_partition == 256 * 1024
    assert chip.sbuf_bytes == 64 * 2**20


def test_missing_file() -> None:
    with pytest.raises(hw.PresetError, match="cannot read"):
        hw.load_file("/nonexistent/preset.yaml")
