"""The inference-size instances: each loads, its chip and logical-core counts are what the
docs say, and an unpublished price is None (status unknown), never 0."""

from __future__ import annotations

import pytest

from tessera import hw

# name -> (chip, chips, physical cores, logical cores at the chip's default LNC)
INFERENCE_SIZES = {
    "trn2.3xlarge": ("trn2", 1, 8, 4),  # [HP] 1 Trainium2; [LNC] 4 logical cores at LNC=2
    "trn2.48xlarge": ("trn2", 16, 128, 64),  # [TRN2] 16 chips; 64 ranks at LNC=2
    "trn3-ultraserver": ("trn3", 64, 512, 256),  # [TRN3] Gen1: 4 servers x 16
    "trn3-ultra-gen2": ("trn3", 144, 1152, 576),  # [TRN3] Gen2: 36 servers x 4
    "inf2.xlarge": ("inf2", 1, 2, 2),  # [INF2] instance table; Inf2 has no LNC grouping
    "inf2.8xlarge": ("inf2", 1, 2, 2),
    "inf2.24xlarge": ("inf2", 6, 12, 12),
    "inf2.48xlarge": ("inf2", 12, 24, 24),
}

# [PR_INF2] On-Demand column, us-east-1, commit 277baef4 (2023-09-28)
INF2_ON_DEMAND = {"inf2.xlarge": 0.758, "inf2.8xlarge": 1.97, "inf2.24xlarge": 6.49,
                  "inf2.48xlarge": 12.981}

UNPRICED = ("trn2.3xlarge", "trn2.48xlarge", "trn2u.48xlarge", "trn3-ultraserver",
            "trn3-ultra-gen2", "p5en.48xlarge")


@pytest.mark.parametrize("name", sorted(INFERENCE_SIZES))
def test_inference_size_chip_and_core_counts(name: str) -> None:
    chip, chips, physical, logical = INFERENCE_SIZES[name]
    inst = hw.load_instance(name)
    assert inst.name == name and inst.chip.name == chip
    assert inst.chip_count == chips == inst.topology.size
    assert inst.physical_cores == physical
    assert inst.logical_cores() == logical


def test_trn2_3xlarge_is_one_chip_without_chip_links() -> None:
    inst = hw.load_instance("trn2.3xlarge")
    assert inst.topology.kind is hw.TopologyKind.NONE and inst.topology.dims == (1,)
    assert inst.links == () and inst.nodes == 1
    assert inst.vcpus == 12 and inst.host_memory_bytes == 128 * 2**30
    assert inst.logical_cores(1) == 8
    assert inst.hbm_bytes == 96 * 2**30
    assert inst.network.node_efa_bytes_per_s is None
    assert inst.efa_bytes_per_s_per_chip is None


def test_trn2u_48xlarge_is_the_trn2_48xlarge_column() -> None:
    # The TRN2 table prints one column "trn2.48xlarge / trn2u.48xlarge"; four trn2u form an
    # UltraServer, whose inter-server ring lives in the trn2-ultraserver preset.
    assert hw.load_instance("trn2u.48xlarge") is hw.load_instance("trn2.48xlarge")
    ultra = hw.load_instance("trn2-ultraserver")
    single = hw.load_instance("trn2u.48xlarge")
    assert ultra.chip_count == ultra.nodes * single.chip_count
    assert ultra.vcpus == ultra.nodes * single.vcpus


def test_trn3_gen2_ultraserver_table() -> None:
    inst = hw.load_instance("trn3-gen2-ultraserver")
    assert inst.name == "trn3-ultra-gen2"
    assert inst.nodes == 36 and inst.chip_count // inst.nodes == 4
    assert inst.vcpus == 2304 and inst.host_memory_bytes == 27648 * 2**30
    assert inst.topology.kind is hw.TopologyKind.SWITCH
    assert inst.published_hbm_bytes == 20736 * 2**30
    assert inst.published_peak_flops[hw.Precision.MXFP8] == pytest.approx(362448e12)
    efa = inst.network.sourced("node_efa_bytes_per_s")
    assert efa.status is hw.Status.DERIVED and "=" in efa.source
    assert inst.network.node_efa_bytes_per_s * inst.nodes == pytest.approx(28800e9 / 8)


@pytest.mark.parametrize("name", sorted(INF2_ON_DEMAND))
def test_inf2_on_demand_prices_are_the_neuron_csv(name: str) -> None:
    price = hw.load_instance(name).price
    assert price.on_demand_usd_per_hour == pytest.approx(INF2_ON_DEMAND[name])
    assert price.as_of == "2023-09-28" and price.region == "us-east-1"
    assert "277baef4" in price.sourced("on_demand_usd_per_hour").source


@pytest.mark.parametrize("name", UNPRICED)
def test_unpublished_prices_are_none_not_zero(name: str) -> None:
    price = hw.load_instance(name).price
    s = price.sourced("on_demand_usd_per_hour")
    assert price.on_demand_usd_per_hour is None and s.value is None
    assert s.status is hw.Status.UNKNOWN and s.note.strip()
    assert price.as_of == "n/a"
