"""`neuronxcc.nki.isa` (Beta 1): the instruction calls of the first-generation NKI API.

Every name of the Neuron 2.26 `nki.isa` reference is here with its Beta-1 signature:
instruction calls take tiles and return a new tile (`dtype=`, `mask=` keywords); the few
with a `dst` (or `reduce_res`, `dst_idx`) argument write it in place. Each issues the
Beta-2 instruction of the same name (`tessera.nki.isa`), so checks, values and timing are
shared; `tessera.nki.beta1.values` makes `t[...] = nisa.f(...)` and
`psum[...] += nisa.nc_matmul(...)` write the target directly.

The enums are the Beta-2 ones: they hold every Beta-1 member under the same name (their
values are strings where the Beta-1 stubs number them, `reduce_cmd` adds `load_reduce`,
`nc_version` adds `gen4`, `engine` adds `dma`).
"""

from __future__ import annotations

from tessera.nki.beta1.isa_compute import (
    activation,
    activation_reduce,
    bn_aggr,
    bn_stats,
    dropout,
    nc_matmul,
    nc_transpose,
    reciprocal,
    scalar_tensor_tensor,
    tensor_partition_reduce,
    tensor_reduce,
    tensor_scalar,
    tensor_scalar_reduce,
    tensor_tensor,
    tensor_tensor_scan,
)
from tessera.nki.beta1.isa_move import (
    dma_copy,
    dma_transpose,
    local_gather,
    memset,
    nc_stream_shuffle,
    tensor_copy,
    tensor_copy_dynamic_dst,
    tensor_copy_dynamic_src,
    tensor_copy_predicated,
)
from tessera.nki.beta1.isa_select import (
    affine_select,
    fp32,
    iota,
    max8,
    nc_find_index8,
    nc_match_replace8,
    range_select,
    select_reduce,
    sequence_bounds,
)
from tessera.nki.isa import (
    dge_mode,
    engine,
    get_nc_version,
    gpsimd_engine,
    nc_version,
    oob_mode,
    reduce_cmd,
    scalar_engine,
    tensor_engine,
    unknown_engine,
    vector_engine,
)
from tessera.nki.refusals import Refused
from tessera.nki.stream import Engine as _Engine

# the Beta-1 engine selector of DMA transfers (Beta 2's `nisa.dma_engine` is a queue enum)
dma_engine = _Engine.DMA

builtin_custom_op = Refused(
    "neuronxcc.nki.isa.builtin_custom_op",
    "an undocumented hook into the vendor's compiled micro-code libraries")

__all__ = [
    "activation", "activation_reduce", "affine_select", "bn_aggr", "bn_stats",
    "builtin_custom_op", "dge_mode", "dma_copy", "dma_engine", "dma_transpose", "dropout",
    "engine", "fp32", "get_nc_version", "gpsimd_engine", "iota", "local_gather", "max8",
    "memset", "nc_find_index8", "nc_match_replace8", "nc_matmul", "nc_stream_shuffle",
    "nc_transpose", "nc_version", "oob_mode", "range_select", "reciprocal", "reduce_cmd",
    "scalar_engine", "scalar_tensor_tensor", "select_reduce", "sequence_bounds",
    "tensor_copy", "tensor_copy_dynamic_dst", "tensor_copy_dynamic_src",
    "tensor_copy_predicated", "tensor_engine", "tensor_partition_reduce", "tensor_reduce",
    "tensor_scalar", "tensor_scalar_reduce", "tensor_tensor", "tensor_tensor_scan",
    "unknown_engine", "vector_engine",
]
