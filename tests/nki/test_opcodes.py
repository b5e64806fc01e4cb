"""Every opcode has an ISA entry point, and the public modules have the NKI layout."""

from __future__ import annotations

import importlib

import pytest

from tessera.nki import collectives, isa, lnc
from tessera.nki.opcodes import OPCODES
from tessera.nki.stream import Opcode


@pytest.mark.parametrize("opcode", list(Opcode), ids=lambda o: o.value)
def test_every_opcode_has_an_isa_function(opcode: Opcode) -> None:
    spec = OPCODES[opcode]  # collectives live in nki.collectives / nki.lnc, the rest in nki.isa
    fn = (getattr(isa, spec.isa, None) or getattr(collectives, spec.isa, None)
          or getattr(lnc, spec.isa, None))
    assert callable(fn), f"{opcode.value}: no nisa / nki.collectives / nki.lnc function {spec.isa}"
    assert fn.__doc__, f"{spec.isa} has no docstring"


def test_compat_install_makes_nki_importable() -> None:
    import sys

    from tessera.nki import compat

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "nki" or
             k.startswith("nki.")}
    try:
        assert compat.install(force=True)
        nki = importlib.import_module("nki")
        nl = importlib.import_module("nki.language")
        nisa = importlib.import_module("nki.isa")
        consts = importlib.import_module("nki.isa.constants")
        assert nki.jit is importlib.import_module("tessera.nki").jit
        assert nl.sbuf.value == "sbuf"
        assert nisa.nc_matmul is isa.nc_matmul
        assert consts.nc_version.gen2 == 2
        # with Tessera's module already installed, install() keeps it and reports True
        assert compat.install()
        compat.uninstall()
        assert "nki" not in sys.modules
    finally:
        compat.uninstall()
        sys.modules.update(saved)


def test_compat_leaves_a_real_nki_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from tessera.nki import compat

    fake = types.ModuleType("nki")
    monkeypatch.setitem(sys.modules, "nki", fake)
    assert compat.install() is False
    assert sys.modules["nki"] is fake
    assert compat.install(force=True) is True
    assert sys.modules["nki"].__name__ == "tessera.nki"
    compat.uninstall()
