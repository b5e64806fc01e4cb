"""`nki.isa` instructions from the NKI API reference that Tessera refuses for now.

Each is a `Refused` placeholder (tessera.nki.refusals): kernels that import or mention the
instruction load, and calling it raises a `KernelUsageError` at the kernel's line naming
the instruction and the reason (docs/nki_coverage.md lists every refusal).
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
exponential = _nisa("exponential", "the NeuronCore-v4 exponential with max subtraction")
tensor_scalar_cumulative = _nisa("tensor_scalar_cumulative",
                                 "tensor-scalar operation with a cumulative reduction")
dma_compute = _nisa("dma_compute", "DMA with read-modify-write reduction")
dropout = _nisa("dropout", _RANDOM)
range_select = _nisa("range_select", "selection by value range with max reduction")
select_reduce = _nisa("select_reduce", "predicated selection with max reduction")
sequence_bounds = _nisa("sequence_bounds", "sequence bounds from segment ids")
local_gather = _nisa("local_gather", _GATHER)
nc_n_gather = _nisa("nc_n_gather", _GATHER)
nc_stream_shuffle = _nisa("nc_stream_shuffle",
                          "cross-partition shuffle within 32-partition quadrants")
register_alloc = _nisa("register_alloc", _REGISTER)
register_load = _nisa("register_load", _REGISTER)
register_move = _nisa("register_move", _REGISTER)
register_store = _nisa("register_store", _REGISTER)
VirtualRegister = _nisa("VirtualRegister", _REGISTER)
rng = _nisa("rng", _RANDOM)
rand2 = _nisa("rand2", _RANDOM)
rand_set_state = _nisa("rand_set_state", _RANDOM)
rand_get_state = _nisa("rand_get_state", _RANDOM)
set_rng_seed = _nisa("set_rng_seed", _RANDOM)
tensor_copy_dynamic_src = _nisa("tensor_copy_dynamic_src", "copies with runtime addresses")
tensor_copy_dynamic_dst = _nisa("tensor_copy_dynamic_dst", "copies with runtime addresses")

__all__ = [
    "VirtualRegister", "dma_compute", "dropout", "exponential", "local_gather", "nc_matmul_mx",
    "nc_n_gather", "nc_stream_shuffle", "quantize_mx", "rand2", "rand_get_state",
    "rand_set_state", "range_select", "register_alloc", "register_load", "register_move",
    "register_store", "rng", "select_reduce", "sequence_bounds", "set_rng_seed",
    "tensor_copy_dynamic_dst", "tensor_copy_dynamic_src", "tensor_scalar_cumulative",
]
