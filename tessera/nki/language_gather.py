"""`nl.gather_flattened`.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


gather_flattened = _nl("gather_flattened", "gather helper is not modelled")

__all__ = ["gather_flattened"]
