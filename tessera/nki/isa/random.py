"""Random numbers: rng, rand2, rand_set_state, rand_get_state, set_rng_seed, dropout.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_REGISTER = "engine registers and register-driven control flow are not modelled"
_RANDOM = "random number generation is not modelled"
_GATHER = "on-chip gathers are not modelled"


def _nisa(name: str, reason: str) -> Refused:
    return Refused(f"nisa.{name}", reason)


dropout = _nisa("dropout", _RANDOM)
rng = _nisa("rng", _RANDOM)
rand2 = _nisa("rand2", _RANDOM)
rand_set_state = _nisa("rand_set_state", _RANDOM)
rand_get_state = _nisa("rand_get_state", _RANDOM)
set_rng_seed = _nisa("set_rng_seed", _RANDOM)

__all__ = ["dropout", "rand2", "rand_get_state", "rand_set_state", "rng", "set_rng_seed"]
