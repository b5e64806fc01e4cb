"""MX (OCP microscaling) matmul and quantisation: nc_matmul_mx, quantize_mx.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_REGISTER = "engine registers and register-driven control flow are not modelled"
_RANDOM = "random number generation is not modelled"
_GATHER = "on-chip gathers are not modelled"


def _nisa(name: str, reason: str) -> Refused:
    return Refused(f"nisa.{name}", reason)


nc_matmul_mx = _nisa("nc_matmul_mx", "MX (OCP MXFP8/MXFP4) matmul with dequantisation")
quantize_mx = _nisa("quantize_mx", "MX (OCP MXFP8/MXFP4) quantisation")

__all__ = ["nc_matmul_mx", "quantize_mx"]
