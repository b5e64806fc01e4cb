"""Lookup by name and alias, error messages for unknown names, caching."""

from __future__ import annotations

import pytest

from tessera import hw


@pytest.mark.parametrize(
    ("loader", "alias", "name"),
    [
        (hw.load_core, "NeuronCore-v2", "nc-v2"),
        (hw.load_core, "nc-v3", "nc-v3"),
        (hw.load_chip, " Trainium2 ", "trn2"),
        (hw.load_chip, "TRN1", "trn1"),
        (hw.load_chip, "inferentia2", "inf2"),
        (hw.load_gpu, "h100", "h100-sxm"),
        (hw.load_gpu, "a100", "a100-40gb"),
        (hw.load_instance, "trn2u.48xlarge", "trn2.48xlarge"),
        (hw.load_instance, "p5", "p5.48xlarge"),
    ],
)
def test_aliases(loader, alias: str, name: str) -> None:
    assert loader(alias).name == name


def test_loads_are_cached_and_shared() -> None:
    assert hw.load_chip("trn1") is hw.load_chip("trainium")
    # The chip's core is the same object as the core preset (one place per number).
    assert hw.load_chip("trn1").core is hw.load_core("nc-v2")
    assert hw.load_instance("trn1.32xlarge").chip is hw.load_chip("trn1")


def test_unknown_name_lists_available() -> None:
    with pytest.raises(hw.UnknownPresetError) as info:
        hw.load_chip("trn9")
    message = str(info.value)
    assert "trn9" in message and "trn1" in message and "trn2" in message
    assert "nc-v2" not in message  # only names of the requested kind
    assert info.value.available == hw.preset_names("chip")
    assert isinstance(info.value, LookupError) and isinstance(info.value, hw.HwError)


def test_wrong_kind_is_unknown() -> None:
    with pytest.raises(hw.UnknownPresetError):
        hw.load_instance("trn1")


def test_load_preset_any_kind() -> None:
    assert isinstance(hw.load_preset("trn1"), hw.ChipSpec)
    assert isinstance(hw.load_preset("trn1.32xlarge"), hw.InstanceSpec)


def test_list_presets_by_kind() -> None:
    assert [i.name for i in hw.list_presets("core")] == ["nc-v2", "nc-v3", "nc-v4"]
    kinds = [i.kind for i in hw.list_presets()]
    assert kinds == sorted(kinds, key=["core", "chip", "gpu", "instance"].index)
    with pytest.raises(ValueError, match="unknown preset kind"):
        hw.list_presets("router")


def test_source_table_entries_are_cited() -> None:
    table = hw.source_table()
    assert table["A2"].url.startswith("https://")
    assert "Trainium/Inferentia2" in table["A2"].cite("x")
