"""Engine registers and copies with runtime addresses: register_alloc/load/move/store,
VirtualRegister, tensor_copy_dynamic_src/dst.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_REGISTER = "engine registers and register-driven control flow are not modelled"
_RANDOM = "random number generation is not modelled"
_GATHER = "on-chip gathers are not modelled"


def _nisa(name: str, reason: str) -> Refused:
    return Refused(f"nisa.{name}", reason)


VirtualRegister = _nisa("VirtualRegister", _REGISTER)
register_alloc = _nisa("register_alloc", _REGISTER)
register_load = _nisa("register_load", _REGISTER)
register_move = _nisa("register_move", _REGISTER)
register_store = _nisa("register_store", _REGISTER)
tensor_copy_dynamic_src = _nisa("tensor_copy_dynamic_src", "copies with runtime addresses")
tensor_copy_dynamic_dst = _nisa("tensor_copy_dynamic_dst", "copies with runtime addresses")

__all__ = ["VirtualRegister", "register_alloc", "register_load", "register_move", "register_store",
           "tensor_copy_dynamic_dst", "tensor_copy_dynamic_src"]
