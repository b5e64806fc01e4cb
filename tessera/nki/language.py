"""`nki.language` (nl): dtypes, buffers, tensor creation, loops, tile sizes, operators.

Every public name here is a name of the NKI API reference or a listed Tessera addition
(tessera/nki/reference_names.yaml; tests/nki/test_nki_coverage.py keeps the two in step):
helpers are imported under private names so they do not leak into `nl`. Names the
reference documents and Tessera does not implement yet come from `language_pending` and
raise a `KernelUsageError` when used.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import runtime as _runtime
from tessera.nki.buffers import Buffer as MemoryRegion
from tessera.nki.calls import OPERATORS as _OPERATORS
from tessera.nki.calls import load, store
from tessera.nki.creation import (
    full,
    ndarray,
    ones,
    par_dim,
    shared_constant,
    shared_identity_matrix,
    zeros,
)
from tessera.nki.dtypes import (
    DType,
    bfloat16,
    bool_,
    float4_e2m1fn_x4,
    float8_e4m3,
    float8_e4m3fn,
    float8_e4m3fn_x4,
    float8_e5m2,
    float8_e5m2_x4,
    float8_e8m0fnu,
    float16,
    float32,
    int8,
    int16,
    int32,
    tfloat32,
    uint8,
    uint16,
    uint32,
)
from tessera.nki.errors import KernelUsageError as _KernelUsageError
from tessera.nki.indexing import DynSlice, ds
from tessera.nki.language_compose import (
    all,
    max,
    mean,
    min,
    prod,
    rms_norm,
    softmax,
    sum,
    var,
    where,
)
from tessera.nki.language_extra import (
    device_print,
    empty_like,
    is_hbm,
    is_on_chip,
    is_psum,
    is_sbuf,
    static_cast,
    zeros_like,
)
from tessera.nki.language_gather import gather_flattened
from tessera.nki.language_grids import (
    NkiBlockGrid,
    NkiGrid,
    NkiStreamBuffers,
    NkiTileGrid,
    alloc_blocks,
    alloc_stream_buffers,
    alloc_tiles,
    blocks,
    tiles,
)
from tessera.nki.language_layout import (
    broadcast_to,
    expand_dims,
    load_transpose2d,
    matmul,
    transpose,
)
from tessera.nki.language_loops import dynamic_range, fori_loop, while_loop
from tessera.nki.language_pending import (
    TILE_SIZE_PENDING as _TILE_SIZE_PENDING,
)
from tessera.nki.language_pending import arange, average, bypass, mgrid, prelu
from tessera.nki.language_random import dropout, rand, random_seed
from tessera.nki.objects import NKIObject
from tessera.nki.scheduling import no_reorder
from tessera.nki.tensor import NkiTensor

sbuf = MemoryRegion.SBUF
psum = MemoryRegion.PSUM
hbm = MemoryRegion.HBM
shared_hbm = MemoryRegion.SHARED_HBM
private_hbm = MemoryRegion.PRIVATE_HBM
bool = bool_  # noqa: A001 - NKI exposes nl.bool_; numpy-style alias
tensor = NkiTensor

__all__ = [
    "DType", "DynSlice", "MemoryRegion", "NKIObject", "NkiBlockGrid", "NkiGrid",
    "NkiStreamBuffers", "NkiTensor", "NkiTileGrid", "abs", "abs_max", "abs_min", "add",
    "affine_range", "all", "alloc_blocks", "alloc_stream_buffers", "alloc_tiles", "arange",
    "arctan", "average", "bfloat16", "bitwise_and", "bitwise_or", "bitwise_xor", "blocks",
    "bool_", "broadcast_to", "bypass", "ceil", "copy", "cos", "device_print", "divide",
    "dropout", "ds", "dynamic_range", "empty_like", "equal", "erf", "erf_dx", "exp",
    "expand_dims", "float16", "float32", "float4_e2m1fn_x4", "float8_e4m3", "float8_e4m3fn",
    "float8_e4m3fn_x4", "float8_e5m2", "float8_e5m2_x4", "float8_e8m0fnu", "floor", "fmod",
    "fori_loop", "full", "gather_flattened", "gelu", "gelu_apprx_sigmoid",
    "gelu_apprx_sigmoid_dx", "gelu_apprx_tanh", "gelu_dx", "greater", "greater_equal", "hbm",
    "identity", "int16", "int32", "int8", "invert", "is_hbm", "is_on_chip", "is_psum",
    "is_sbuf", "left_shift", "less", "less_equal", "load", "load_transpose2d", "log",
    "logical_and", "logical_not", "logical_or", "logical_xor", "matmul", "max", "maximum",
    "mean", "mgrid", "min", "minimum", "mish", "mod", "multiply", "ndarray", "negative",
    "no_reorder", "not_equal", "num_programs", "ones", "par_dim", "power", "prelu",
    "private_hbm", "prod", "program_id", "program_ndim", "psum", "rand", "random_seed",
    "reciprocal", "relu", "right_shift", "rms_norm", "rsqrt", "sbuf", "sequential_range",
    "shared_constant", "shared_hbm", "shared_identity_matrix", "sigmoid", "sign", "silu",
    "silu_dx", "sin", "softmax", "softplus", "sqrt", "square", "static_cast", "static_range",
    "store", "subtract", "sum", "tan", "tanh", "tfloat32", "tile_size", "tiles", "transpose",
    "trunc", "uint16", "uint32", "uint8", "var", "where", "while_loop", "zeros", "zeros_like",
]

# the element-wise operators: callable, and usable as op= codes (tessera.nki.calls)
abs = _OPERATORS["abs"]  # noqa: A001 - NKI's name
abs_max = _OPERATORS["abs_max"]
abs_min = _OPERATORS["abs_min"]
add = _OPERATORS["add"]
arctan = _OPERATORS["arctan"]
bitwise_and = _OPERATORS["bitwise_and"]
bitwise_or = _OPERATORS["bitwise_or"]
bitwise_xor = _OPERATORS["bitwise_xor"]
ceil = _OPERATORS["ceil"]
copy = _OPERATORS["copy"]
cos = _OPERATORS["cos"]
divide = _OPERATORS["divide"]
equal = _OPERATORS["equal"]
erf = _OPERATORS["erf"]
erf_dx = _OPERATORS["erf_dx"]
exp = _OPERATORS["exp"]
floor = _OPERATORS["floor"]
fmod = _OPERATORS["fmod"]
gelu = _OPERATORS["gelu"]
gelu_apprx_sigmoid = _OPERATORS["gelu_apprx_sigmoid"]
gelu_apprx_sigmoid_dx = _OPERATORS["gelu_apprx_sigmoid_dx"]
gelu_apprx_tanh = _OPERATORS["gelu_apprx_tanh"]
gelu_dx = _OPERATORS["gelu_dx"]
greater = _OPERATORS["greater"]
greater_equal = _OPERATORS["greater_equal"]
identity = _OPERATORS["copy"]
invert = _OPERATORS["invert"]
left_shift = _OPERATORS["left_shift"]
less = _OPERATORS["less"]
less_equal = _OPERATORS["less_equal"]
log = _OPERATORS["log"]
logical_and = _OPERATORS["logical_and"]
logical_not = _OPERATORS["logical_not"]
logical_or = _OPERATORS["logical_or"]
logical_xor = _OPERATORS["logical_xor"]
maximum = _OPERATORS["maximum"]
minimum = _OPERATORS["minimum"]
mish = _OPERATORS["mish"]
mod = _OPERATORS["mod"]
multiply = _OPERATORS["multiply"]
negative = _OPERATORS["negative"]
not_equal = _OPERATORS["not_equal"]
power = _OPERATORS["power"]
reciprocal = _OPERATORS["reciprocal"]
relu = _OPERATORS["relu"]
right_shift = _OPERATORS["right_shift"]
rsqrt = _OPERATORS["rsqrt"]
sigmoid = _OPERATORS["sigmoid"]
sign = _OPERATORS["sign"]
silu = _OPERATORS["silu"]
silu_dx = _OPERATORS["silu_dx"]
sin = _OPERATORS["sin"]
softplus = _OPERATORS["softplus"]
sqrt = _OPERATORS["sqrt"]
square = _OPERATORS["square"]
subtract = _OPERATORS["subtract"]
tan = _OPERATORS["tan"]
tanh = _OPERATORS["tanh"]
trunc = _OPERATORS["trunc"]


def affine_range(*args: int) -> range:
    """Loop whose iterations are independent (a scheduling hint; runs as `range`)."""
    return range(*args)


def sequential_range(*args: int) -> range:
    """Loop with a carried dependency (runs as `range`)."""
    return range(*args)


def static_range(*args: int) -> range:
    """Fully unrolled loop (runs as `range`)."""
    return range(*args)


def program_id(axis: int = 0) -> int | None:
    """Index of this program on launch axis `axis`: the logical core id for LNC=2; None on
    the host, outside any launch."""
    ctx = _runtime.maybe_current()
    if ctx is None:
        return None  # no launch: see num_programs
    if axis != 0:
        raise _KernelUsageError(f"program_id({axis}): NKI 0.3 launches have one axis (0)")
    return ctx.core_id


def num_programs(axes: int | None = None) -> int | None:
    """Number of programs in the launch (the LNC count); None on the host, outside any
    launch."""
    ctx = _runtime.maybe_current()
    if ctx is None:
        # on the host (building a kernel's config before the launch) there is no launch;
        # the vendor's library relies on a falsy answer there (`shard_info[1] or n`)
        return None
    return ctx.run.num_cores


def program_ndim() -> int:
    """Number of launch axes (always 1 in NKI 0.3+)."""
    return 1


class _TileSize:
    """`nl.tile_size`: hardware tile limits of the core the kernel runs on."""

    def _limits(self):  # noqa: ANN202
        ctx = _runtime.maybe_current()
        if ctx is not None:
            return ctx.run.limits
        return _runtime.core_limits(_runtime.default_chip())

    @property
    def pmax(self) -> int:
        return self._limits().pmax

    @property
    def psum_fmax(self) -> int:
        return self._limits().psum_fmax

    @property
    def gemm_stationary_fmax(self) -> int:
        return self._limits().stationary_fmax

    @property
    def gemm_moving_fmax(self) -> int:
        return self._limits().moving_fmax

    @property
    def bn_stats_fmax(self) -> int:
        return self._limits().bn_stats_fmax

    @property
    def psum_bank_fmax_bytes(self) -> int:
        return self._limits().psum_bank_bytes

    @property
    def psum_bank_fmax(self) -> int:
        return self._limits().psum_bank_bytes // 4

    @property
    def psum_num_banks(self) -> int:
        lim = self._limits()
        return lim.psum_bytes_per_partition // lim.psum_bank_bytes

    @property
    def sbuf_fmax_bytes(self) -> int:
        return self._limits().sbuf_bytes_per_partition

    @property
    def sbuf_size_bytes(self) -> int:
        lim = self._limits()
        return lim.sbuf_bytes_per_partition * lim.pmax

    @property
    def psum_fmax_bytes(self) -> int:
        """PSUM tile free size in bytes (psum_fmax fp32 elements)."""
        return self.psum_fmax * 4

    @property
    def sbuf_fmax(self) -> int:
        """SBUF tile free size in fp32 elements."""
        return self.sbuf_fmax_bytes // 4

    @property
    def total_available_sbuf_size(self) -> int:
        """Deprecated in NKI 0.4: despite the name, the usable bytes *per partition*
        (sbuf_fmax_bytes), which is what kernels size their tiles from."""
        return self.sbuf_fmax_bytes

    psum_min_align = _TILE_SIZE_PENDING["psum_min_align"]
    sbuf_min_align = _TILE_SIZE_PENDING["sbuf_min_align"]

    def __repr__(self) -> str:
        return (f"tile_size(pmax={self.pmax}, psum_fmax={self.psum_fmax}, "
                f"gemm_stationary_fmax={self.gemm_stationary_fmax}, "
                f"gemm_moving_fmax={self.gemm_moving_fmax})")


tile_size = _TileSize()
_ = np  # numpy is part of the language namespace for host-side helpers
