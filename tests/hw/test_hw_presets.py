"""Every built-in preset loads, every number is sourced, and the key facts are right."""

from __future__ import annotations

import dataclasses

import pytest

from tessera import hw
from tessera.hw.parse import field_category, strip_optional, type_hints
from tessera.hw.spec_base import INTERNAL

ALL = hw.list_presets()


@pytest.mark.parametrize("info", ALL, ids=lambda i: f"{i.kind}:{i.name}")
def test_every_preset_loads(info: hw.PresetInfo) -> None:
    preset = hw.load_preset(info.name, info.kind)
    assert preset.name == info.name
    assert preset.kind == info.kind
    assert preset.origin.endswith(info.path.name)


def test_catalogue_has_the_required_presets() -> None:
    names = {i.name for i in ALL}
    required = {
        "nc-v2", "nc-v3", "nc-v4", "trn1", "inf2", "trn2", "trn3",
        "a100-40gb", "a100-80gb", "h100-sxm",
        "trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge", "inf2.xlarge", "inf2.8xlarge",
        "inf2.24xlarge", "inf2.48xlarge", "trn2.48xlarge", "trn2-ultraserver",
        "p4d.24xlarge", "p5.48xlarge",
    }
    assert required <= names


def _walk(spec: hw.Spec, path: str):
    """Yield (path, spec, field, value) for every YAML-backed field, recursively."""
    hints = {f.name: f for f in dataclasses.fields(spec) if not f.metadata.get(INTERNAL)}
    for name, f in hints.items():
        value = getattr(spec, name)
        yield f"{path}.{name}", spec, f, value
        items = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(items):
            if isinstance(item, hw.Spec):
                sub = f"{path}.{name}" + (f"[{i}]" if isinstance(value, tuple) else "")
                yield from _walk(item, sub)


@pytest.mark.parametrize("info", ALL, ids=lambda i: f"{i.kind}:{i.name}")
def test_every_number_has_a_source(info: hw.PresetInfo) -> None:
    preset = hw.load_preset(info.name, info.kind)
    checked = 0
    for path, spec, f, value in _walk(preset, info.name):
        cat = field_category(type_hints(type(spec))[f.name], f)
        if cat == "entry":
            prov = spec.sources[f.name]
            assert prov.source.strip(), path
            checked += 1
            if value is None:
                assert prov.status is hw.Status.UNKNOWN and prov.note, path
        elif cat == "map":
            for key in value:
                prov = spec.sources[f"{f.name}.{getattr(key, 'value', key)}"]
                assert prov.source.strip(), f"{path}.{key}"
                checked += 1
    assert checked > 5


@pytest.mark.parametrize("info", ALL, ids=lambda i: f"{i.kind}:{i.name}")
def test_sources_map_has_no_stray_keys(info: hw.PresetInfo) -> None:
    preset = hw.load_preset(info.name, info.kind)
    for _, spec, _, _ in _walk(preset, info.name):
        names = set(spec.field_names())
        for key in spec.sources:
            assert key.split(".")[0] in names, (type(spec).__name__, key)


@pytest.mark.parametrize("info", ALL, ids=lambda i: f"{i.kind}:{i.name}")
def test_uncertain_and_unknown_values_say_why(info: hw.PresetInfo) -> None:
    preset = hw.load_preset(info.name, info.kind)
    for _, spec, _, _ in _walk(preset, info.name):
        for key, prov in spec.sources.items():
            if prov.status in (hw.Status.UNCERTAIN, hw.Status.UNKNOWN):
                assert prov.note.strip(), (type(spec).__name__, key)
            if prov.status is hw.Status.DERIVED:
                assert "=" in prov.source, (type(spec).__name__, key)


@pytest.mark.parametrize("name", hw.preset_names("core"))
def test_memory_geometry(name: str) -> None:
    core = hw.load_core(name)
    assert core.sbuf.total_bytes == core.sbuf.partitions * core.sbuf.bytes_per_partition
    assert core.sbuf.total_bytes == core.sbuf.published_total_bytes
    psum = core.psum
    assert psum.partitions * psum.banks * psum.bank_bytes_per_partition == psum.total_bytes
    assert psum.total_bytes == 2 * 2**20
    assert core.tile.psum_fmax * 4 == psum.bank_bytes_per_partition


def test_nc_v2_facts_used_by_the_kernel_language() -> None:
    core = hw.load_chip("trn1").core
    assert core.version == 2
    assert (core.sbuf.partitions, core.sbuf.bytes_per_partition) == (128, 192 * 1024)
    assert (core.psum.banks, core.psum.bank_bytes_per_partition) == (8, 2048)
    tile = core.tile
    assert (tile.pmax, tile.stationary_fmax, tile.moving_fmax) == (128, 128, 512)
    assert (tile.psum_fmax, tile.bn_stats_fmax) == (512, 512)
    assert core.tensor.clock_hz == pytest.approx(2.8e9)
    assert core.tensor.cycle_factor(hw.Precision.FP32) == pytest.approx(4.0)
    assert core.costs.min_ii_cycles == 64 and core.costs.matmul_init_cycles == 64
    assert core.costs.semaphore_latency_s is None
    assert core.access.vector_gpsimd_share_sbuf_port and core.access.vector_scalar_share_psum_port
    assert core.access.allowed_partition_starts(32) == (0, 32, 64, 96)
    assert core.access.allowed_partition_starts(33) == (0, 64)
    assert core.access.allowed_partition_starts(65) == (0,)
    assert core.dma.engines_per_core == 16
    assert core.dma.engine_bytes_per_s == pytest.approx(27.2e9)
    assert core.dma.fixed_latency_s == pytest.approx(1.3e-6)


def test_nc_v3_lifts_port_conflicts_and_has_dge() -> None:
    core = hw.load_core("nc-v3")
    assert core.version == 3
    assert not core.access.vector_gpsimd_share_sbuf_port
    assert not core.access.vector_scalar_share_psum_port
    assert core.dma.hw_dge_latency_s == pytest.approx(600e-9)
    assert core.peak_flops("fp8") == pytest.approx(2 * core.peak_flops("bf16"))
    assert core.vector.elements_per_cycle_for("bf16") == 512
    assert core.vector.elements_per_cycle_for("fp32") == 256


def test_tensor_peak_is_array_times_clock() -> None:
    core = hw.load_core("nc-v2")
    assert core.peak_flops() == pytest.approx(128 * 128 * 2 * 2.8e9)
    with pytest.raises(hw.UnsupportedPrecisionError, match="mxfp8"):
        core.peak_flops("mxfp8")


def test_chip_helpers() -> None:
    trn2 = hw.load_chip("trn2")
    assert trn2.physical_cores == 8
    assert trn2.lnc_allowed == (1, 2) and trn2.lnc_default == 2
    assert trn2.logical_cores() == 4 and trn2.logical_cores(1) == 8
    with pytest.raises(hw.LncError):
        trn2.logical_cores(4)
    assert trn2.dma_engines == 128 and trn2.dma_engines_per_core == 16
    assert trn2.tensor_clock_hz == pytest.approx(2.4e9)
    assert trn2.hbm_bytes == 96 * 2**30
    assert trn2.core_peak_flops("bf16") == pytest.approx(78.6432e12)
    trn1 = hw.load_chip("trn1")
    assert trn1.logical_cores() == 2 and trn1.sbuf_bytes == 48 * 2**20
    assert trn1.peak_flops("bf16") == pytest.approx(2 * 91.7504e12)


def test_instances() -> None:
    trn1 = hw.load_instance("trn1.32xlarge")
    assert trn1.chip.name == "trn1" and trn1.chip_count == 16
    assert trn1.topology.kind is hw.TopologyKind.TORUS_2D and trn1.topology.dims == (4, 4)
    assert trn1.network.node_efa_bytes_per_s == pytest.approx(800e9 / 8)
    assert trn1.price.on_demand_usd_per_hour == pytest.approx(21.50)
    assert trn1.physical_cores == 32
    ultra = hw.load_instance("trn2-ultraserver")
    assert ultra.topology.kind is hw.TopologyKind.TORUS_3D and ultra.topology.dims == (4, 4, 4)
    assert ultra.chip_count == 64 and ultra.nodes == 4
    assert ultra.logical_cores() == 256 and ultra.logical_cores(1) == 512
    scopes = {link.scope for link in ultra.links}
    assert scopes == {hw.LinkScope.INTRA_NODE, hw.LinkScope.INTER_NODE}
    assert hw.load_instance("inf2.24xlarge").topology.kind is hw.TopologyKind.RING
    assert hw.load_instance("inf2.xlarge").topology.kind is hw.TopologyKind.NONE
    p5 = hw.load_instance("p5.48xlarge")
    assert p5.topology.kind is hw.TopologyKind.NVSWITCH and p5.chip.name == "h100-sxm"
    with pytest.raises(hw.LncError):
        p5.logical_cores()


def test_unknown_prices_are_explicit() -> None:
    for name in ("trn1n.32xlarge", "trn2.48xlarge", "trn2-ultraserver"):
        inst = hw.load_instance(name)
        s = inst.price.sourced("on_demand_usd_per_hour")
        assert s.value is None and not s.known
        assert s.status is hw.Status.UNKNOWN and s.note
    p5 = hw.load_instance("p5.48xlarge").price.sourced("on_demand_usd_per_hour")
    assert p5.status is hw.Status.UNCERTAIN and "2025" in p5.note


def test_gpus() -> None:
    h100 = hw.load_gpu("h100")
    assert h100.hbm_bytes_per_s == pytest.approx(3.35e12)
    assert h100.peak_flops("bf16") == pytest.approx(989.5e12)
    assert h100.peak_flops("fp32") == pytest.approx(67e12)
    assert hw.load_gpu("a100-80gb").hbm_bytes_per_s == pytest.approx(2.039e12)
    assert hw.load_gpu("a100-40gb").hbm_bytes_per_s == pytest.approx(1.555e12)
    with pytest.raises(hw.UnsupportedPrecisionError):
        hw.load_gpu("a100-40gb").peak_flops("fp8")


def test_specs_are_frozen_and_hashable() -> None:
    chip = hw.load_chip("trn1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        chip.physical_cores = 4  # type: ignore[misc]
    assert hash(chip) == hash(hw.load_chip("trainium"))
    assert {chip: 1}[hw.load_chip("trn1")] == 1


def test_sourced_accessor() -> None:
    core = hw.load_core("nc-v2")
    s = core.tensor.sourced("published_peak_flops.bf16")
    assert s.value == pytest.approx(92e12)
    assert "trainium_inferentia2_arch" in s.source
    with pytest.raises(KeyError):
        core.tensor.sourced("kind")
    assert strip_optional(int | None) == (int, True)
