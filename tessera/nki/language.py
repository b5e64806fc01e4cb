"""`nki.language` (nl): dtypes, buffers, tensor creation, loops, tile sizes, operators."""

from __future__ import annotations

import numpy as np

from tessera.nki.buffers import Buffer
from tessera.nki.calls import OPERATORS, load, store
from tessera.nki.creation import (
    full,
    ndarray,
    ones,
    shared_constant,
    shared_identity_matrix,
    zeros,
)
from tessera.nki.dtypes import (
    DType,
    bfloat16,
    bool_,
    float8_e4m3,
    float8_e4m3fn,
    float8_e5m2,
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
from tessera.nki.errors import KernelUsageError
from tessera.nki.indexing import DynSlice, ds
from tessera.nki.runtime import core_limits, default_chip, maybe_current
from tessera.nki.scheduling import no_reorder
from tessera.nki.tensor import NkiTensor

sbuf = Buffer.SBUF
psum = Buffer.PSUM
hbm = Buffer.HBM
shared_hbm = Buffer.SHARED_HBM
private_hbm = Buffer.PRIVATE_HBM
bool = bool_  # noqa: A001 - NKI exposes nl.bool_; numpy-style alias
tensor = NkiTensor

__all__ = [
    "DType", "DynSlice", "NkiTensor", "abs", "abs_max", "abs_min", "add", "affine_range",
    "arctan", "bfloat16", "bitwise_and", "bitwise_or", "bitwise_xor", "bool_", "ceil", "copy",
    "cos", "divide", "ds", "dynamic_range", "equal", "erf", "exp", "float16", "float32",
    "float8_e4m3", "float8_e4m3fn", "float8_e5m2", "floor", "full", "gelu",
    "gelu_apprx_sigmoid", "gelu_apprx_tanh", "gelu_dx", "greater", "greater_equal", "hbm",
    "identity", "int16", "int32", "int8", "invert", "left_shift", "less", "less_equal", "load",
    "log", "logical_and", "logical_not", "logical_or", "logical_xor", "maximum", "minimum",
    "mish", "mod", "multiply", "ndarray", "negative", "no_reorder", "not_equal", "num_programs",
    "ones",
    "power", "private_hbm", "program_id", "program_ndim", "psum", "reciprocal", "relu",
    "right_shift", "rsqrt", "sbuf", "sequential_range", "shared_constant", "shared_hbm",
    "shared_identity_matrix", "sigmoid", "sign", "silu", "silu_dx", "sin", "softplus", "sqrt",
    "square", "static_range", "store", "subtract", "tanh", "tfloat32", "tile_size", "uint16",
    "uint32", "uint8", "zeros",
]

# the element-wise operators: callable, and usable as op= codes (tessera.nki.calls)
abs = OPERATORS["abs"]  # noqa: A001 - NKI's name
abs_max = OPERATORS["abs_max"]
abs_min = OPERATORS["abs_min"]
add = OPERATORS["add"]
arctan = OPERATORS["arctan"]
bitwise_and = OPERATORS["bitwise_and"]
bitwise_or = OPERATORS["bitwise_or"]
bitwise_xor = OPERATORS["bitwise_xor"]
ceil = OPERATORS["ceil"]
copy = OPERATORS["copy"]
cos = OPERATORS["cos"]
divide = OPERATORS["divide"]
equal = OPERATORS["equal"]
erf = OPERATORS["erf"]
exp = OPERATORS["exp"]
floor = OPERATORS["floor"]
gelu = OPERATORS["gelu"]
gelu_apprx_sigmoid = OPERATORS["gelu_apprx_sigmoid"]
gelu_apprx_tanh = OPERATORS["gelu_apprx_tanh"]
gelu_dx = OPERATORS["gelu_dx"]
greater = OPERATORS["greater"]
greater_equal = OPERATORS["greater_equal"]
identity = OPERATORS["copy"]
invert = OPERATORS["invert"]
left_shift = OPERATORS["left_shift"]
less = OPERATORS["less"]
less_equal = OPERATORS["less_equal"]
log = OPERATORS["log"]
logical_and = OPERATORS["logical_and"]
logical_not = OPERATORS["logical_not"]
logical_or = OPERATORS["logical_or"]
logical_xor = OPERATORS["logical_xor"]
maximum = OPERATORS["maximum"]
minimum = OPERATORS["minimum"]
mish = OPERATORS["mish"]
mod = OPERATORS["mod"]
multiply = OPERATORS["multiply"]
negative = OPERATORS["negative"]
not_equal = OPERATORS["not_equal"]
power = OPERATORS["power"]
reciprocal = OPERATORS["reciprocal"]
relu = OPERATORS["relu"]
right_shift = OPERATORS["right_shift"]
rsqrt = OPERATORS["rsqrt"]
sigmoid = OPERATORS["sigmoid"]
sign = OPERATORS["sign"]
silu = OPERATORS["silu"]
silu_dx = OPERATORS["silu_dx"]
sin = OPERATORS["sin"]
softplus = OPERATORS["softplus"]
sqrt = OPERATORS["sqrt"]
square = OPERATORS["square"]
subtract = OPERATORS["subtract"]
tanh = OPERATORS["tanh"]


def affine_range(*args: int) -> range:
    """Loop whose iterations are independent (a scheduling hint; runs as `range`)."""
    return range(*args)


def sequential_range(*args: int) -> range:
    """Loop with a carried dependency (runs as `range`)."""
    return range(*args)


def static_range(*args: int) -> range:
    """Fully unrolled loop (runs as `range`)."""
    return range(*args)


def dynamic_range(*args: int) -> range:
    """Runtime loop on hardware (runs as `range` here)."""
    return range(*args)


def program_id(axis: int = 0) -> int:
    """Index of this program on launch axis `axis`: the logical core id for LNC=2."""
    ctx = maybe_current()
    if ctx is None:
        raise KernelUsageError("nl.program_id must be called inside a kernel")
    if axis != 0:
        raise KernelUsageError(f"program_id({axis}): NKI 0.3 launches have one axis (0)")
    return ctx.core_id


def num_programs(axes: int | None = None) -> int:
    """Number of programs in the launch (the LNC count)."""
    ctx = maybe_current()
    if ctx is None:
        raise KernelUsageError("nl.num_programs must be called inside a kernel")
    return ctx.run.num_cores


def program_ndim() -> int:
    """Number of launch axes (always 1 in NKI 0.3+)."""
    return 1


class _TileSize:
    """`nl.tile_size`: hardware tile limits of the core the kernel runs on."""

    def _limits(self):  # noqa: ANN202
        ctx = maybe_current()
        return ctx.run.limits if ctx is not None else core_limits(default_chip())

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

    def __repr__(self) -> str:
        return (f"tile_size(pmax={self.pmax}, psum_fmax={self.psum_fmax}, "
                f"gemm_stationary_fmax={self.gemm_stationary_fmax}, "
                f"gemm_moving_fmax={self.gemm_moving_fmax})")


tile_size = _TileSize()
_ = np  # numpy is part of the language namespace for host-side helpers
