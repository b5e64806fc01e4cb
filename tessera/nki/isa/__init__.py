"""`nki.isa` (nisa): the NeuronCore instruction set, destination-passing style.

Instructions the NKI API reference documents and Tessera does not implement yet are `Refused`
placeholders that raise a `KernelUsageError` naming them when called (docs/nki_coverage.md).
"""

from __future__ import annotations

from tessera.nki.errors import NkiError as NkiValidationError
from tessera.nki.isa.constants import (
    dge_mode,
    dma_engine,
    engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    reduce_cmd,
)
from tessera.nki.isa.dma import dma_copy, dma_transpose
from tessera.nki.isa.elementwise import (
    reciprocal,
    scalar_tensor_tensor,
    tensor_copy_predicated,
    tensor_scalar,
)
from tessera.nki.isa.gather import dma_compute, local_gather, nc_n_gather, nc_stream_shuffle
from tessera.nki.isa.gpsimd import affine_select, iota
from tessera.nki.isa.mx import nc_matmul_mx, quantize_mx
from tessera.nki.isa.random import (
    dropout,
    rand2,
    rand_get_state,
    rand_set_state,
    rng,
    set_rng_seed,
)
from tessera.nki.isa.reduce import (
    bn_aggr,
    bn_stats,
    tensor_partition_reduce,
    tensor_reduce,
    tensor_scalar_reduce,
    tensor_tensor_scan,
)
from tessera.nki.isa.registers import (
    VirtualRegister,
    register_alloc,
    register_load,
    register_move,
    register_store,
    tensor_copy_dynamic_dst,
    tensor_copy_dynamic_src,
)
from tessera.nki.isa.scalar import activation, activation_reduce
from tessera.nki.isa.select import (
    exponential,
    range_select,
    select_reduce,
    sequence_bounds,
    tensor_scalar_cumulative,
)
from tessera.nki.isa.sync import core_barrier, get_nc_version, sendrecv
from tessera.nki.isa.tensor_engine import nc_matmul, nc_transpose
from tessera.nki.isa.topk import (
    max8,
    nc_find_index8,
    nc_match_replace8,
    nonzero_with_count,
)
from tessera.nki.isa.vector import memset, tensor_copy, tensor_tensor
from tessera.nki.scheduling import NkiInstruction, dependency
from tessera.nki.stream import Engine as _Engine

tensor_engine = _Engine.TENSOR
vector_engine = _Engine.VECTOR
scalar_engine = _Engine.SCALAR
gpsimd_engine = _Engine.GPSIMD
sync_engine = _Engine.SYNC
unknown_engine = _Engine.UNKNOWN

__all__ = [
    "NkiInstruction", "NkiValidationError", "VirtualRegister", "activation",
    "activation_reduce", "affine_select", "bn_aggr", "bn_stats", "core_barrier", "dependency",
    "dge_mode", "dma_compute", "dma_copy", "dma_engine", "dma_transpose", "dropout", "engine",
    "exponential", "get_nc_version", "gpsimd_engine", "iota", "local_gather",
    "matmul_perf_mode", "max8", "memset", "nc_find_index8", "nc_match_replace8", "nc_matmul",
    "nc_matmul_mx", "nc_n_gather", "nc_stream_shuffle", "nc_transpose", "nc_version",
    "nonzero_with_count", "oob_mode", "quantize_mx", "rand2", "rand_get_state",
    "rand_set_state", "range_select", "reciprocal", "reduce_cmd", "register_alloc",
    "register_load", "register_move", "register_store", "rng", "scalar_engine",
    "scalar_tensor_tensor", "select_reduce", "sendrecv", "sequence_bounds", "set_rng_seed",
    "sync_engine", "tensor_copy", "tensor_copy_dynamic_dst", "tensor_copy_dynamic_src",
    "tensor_copy_predicated", "tensor_engine", "tensor_partition_reduce", "tensor_reduce",
    "tensor_scalar", "tensor_scalar_cumulative", "tensor_scalar_reduce", "tensor_tensor",
    "tensor_tensor_scan", "unknown_engine", "vector_engine",
]
