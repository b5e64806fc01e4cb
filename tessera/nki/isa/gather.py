"""On-chip gathers and shuffles: local_gather, nc_n_gather, nc_stream_shuffle, dma_compute.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_REGISTER = "engine registers and register-driven control flow are not modelled"
_RANDOM = "random number generation is not modelled"
_GATHER = "on-chip gathers are not modelled"


def _nisa(name: str, reason: str) -> Refused:
    return Refused(f"nisa.{name}", reason)


local_gather = _nisa("local_gather", _GATHER)
nc_n_gather = _nisa("nc_n_gather", _GATHER)
nc_stream_shuffle = _nisa("nc_stream_shuffle",
                          "cross-partition shuffle within 32-partition quadrants")
dma_compute = _nisa("dma_compute", "DMA with read-modify-write reduction")

__all__ = ["dma_compute", "local_gather", "nc_n_gather", "nc_stream_shuffle"]
