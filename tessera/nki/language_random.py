"""`nl.rand`, `nl.random_seed`, `nl.dropout`: random numbers in kernels.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_RANDOM = "random number generation is not modelled"


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


dropout = _nl("dropout", _RANDOM)
rand = _nl("rand", _RANDOM)
random_seed = _nl("random_seed", _RANDOM)

__all__ = ["dropout", "rand", "random_seed"]
