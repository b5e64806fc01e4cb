"""`nl.fori_loop`, `nl.while_loop`: compiled loops (NKI 0.7).

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_LOOP = "compiled loops (NKI 0.7) are not modelled; use a Python loop or nl.dynamic_range"


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


fori_loop = _nl("fori_loop", _LOOP)
while_loop = _nl("while_loop", _LOOP)

__all__ = ["fori_loop", "while_loop"]
