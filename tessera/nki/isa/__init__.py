"""`nki.isa` (nisa): the NeuronCore instruction set, destination-passing style."""

from __future__ import annotations

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
from tessera.nki.isa.gpsimd import affine_select, iota
from tessera.nki.isa.reduce import (
    bn_aggr,
    bn_stats,
    tensor_partition_reduce,
    tensor_reduce,
    tensor_scalar_reduce,
    tensor_tensor_scan,
)
from tessera.nki.isa.scalar import activation, activation_reduce
from tessera.nki.isa.sync import core_barrier, get_nc_version, sendrecv
from tessera.nki.isa.tensor_engine import nc_matmul, nc_transpose
from tessera.nki.isa.vector import memset, tensor_copy, tensor_tensor
from tessera.nki.scheduling import NkiInstruction, dependency
from tessera.nki.stream import Engine

tensor_engine = Engine.TENSOR
vector_engine = Engine.VECTOR
scalar_engine = Engine.SCALAR
gpsimd_engine = Engine.GPSIMD
sync_engine = Engine.SYNC
unknown_engine = Engine.UNKNOWN

__all__ = [
    "NkiInstruction", "activation", "activation_reduce", "affine_select", "bn_aggr", "bn_stats",
    "core_barrier", "dependency", "dge_mode", "dma_copy", "dma_engine", "dma_transpose", "engine",
    "get_nc_version", "iota", "matmul_perf_mode", "memset", "nc_matmul", "nc_transpose",
    "nc_version", "oob_mode", "reciprocal", "reduce_cmd", "scalar_tensor_tensor", "sendrecv",
    "tensor_copy", "tensor_copy_predicated", "tensor_partition_reduce", "tensor_reduce",
    "tensor_scalar", "tensor_scalar_reduce", "tensor_tensor", "tensor_tensor_scan",
    "gpsimd_engine", "scalar_engine", "sync_engine", "tensor_engine", "unknown_engine",
    "vector_engine",
]
