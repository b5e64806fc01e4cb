"""Options several commands share: the chip preset."""

from __future__ import annotations

from tessera import hw
from tessera.cli.errors import fail
from tessera.nki.runtime import default_chip

CHIP_HELP = ("Target chip preset: trn1, inf2, trn2, trn3 (default: "
             "NEURON_PLATFORM_TARGET_OVERRIDE, else trn2).")


def chip_preset(chip: str | None) -> str:
    """The chip preset name to use (`default_chip()` when none is given), or a one-line
    error naming the choices."""
    name = chip or default_chip()
    try:
        return hw.load_chip(name).name
    except hw.HwError:
        raise fail(f"--chip {name!r} is not a chip preset; choose one of: "
                   f"{', '.join(hw.preset_names('chip'))}") from None
