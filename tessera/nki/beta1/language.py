"""`neuronxcc.nki.language` (Beta 1): the nl namespace of the first-generation NKI API.

Every public name here is a name of the Beta-1 API reference
(tessera/nki/beta1/reference_names.yaml; tests/nki/beta1/test_beta1_coverage.py keeps the
two in step). Names whose meaning did not change from Beta 2 (dtypes, buffers, loops,
`nl.ds`, `tile_size`, constants) are the Beta-2 objects; the tile-valued calls, masks,
affine indexing, block dimensions and N-D grids are the Beta-1 front end's.
"""

from __future__ import annotations

from tessera.nki import language as _b2
from tessera.nki.beta1 import reductions as _red
from tessera.nki.beta1.elementwise import FUNCTIONS as _F
from tessera.nki.beta1.index import arange, mgrid
from tessera.nki.beta1.kernel import nc, num_programs, program_id, program_ndim, spmd_dim
from tessera.nki.beta1.layout import (
    broadcast_to,
    copy,
    expand_dims,
    load_transpose2d,
    matmul,
    transpose,
)
from tessera.nki.beta1.loops import affine_range, sequential_range, static_range
from tessera.nki.beta1.memory import (
    empty_like,
    full,
    load,
    ndarray,
    ones,
    par_dim,
    shared_identity_matrix,
    store,
    zeros,
    zeros_like,
)
from tessera.nki.beta1.misc import (
    all_reduce,
    atomic_rmw,
    bfp16,
    dropout,
    finfo,
    fp32,
    gather_flattened,
    gemm_grid,
    gemm_stationary_grid,
    loop_reduce,
    rand,
    rms_norm,
    softmax,
    where,
)
from tessera.nki.buffers import Buffer as _Buffer

# ------------------------------------------------------------------ unchanged from Beta 2
bool_ = _b2.bool_
int8, int16, int32 = _b2.int8, _b2.int16, _b2.int32
uint8, uint16, uint32 = _b2.uint8, _b2.uint16, _b2.uint32
float16, float32, bfloat16, tfloat32 = _b2.float16, _b2.float32, _b2.bfloat16, _b2.tfloat32
float8_e4m3, float8_e5m2 = _b2.float8_e4m3, _b2.float8_e5m2
tile_size = _b2.tile_size
sbuf, psum = _Buffer.SBUF, _Buffer.PSUM
# the Beta-1 pages: nl.hbm is the per-instance (private) HBM
hbm = private_hbm = _Buffer.PRIVATE_HBM
shared_hbm = _Buffer.SHARED_HBM
ds = _b2.ds
random_seed = _b2.random_seed
shared_constant = _b2.shared_constant
static_cast = _b2.static_cast
device_print = _b2.device_print

# ------------------------------------------------------------------ element-wise functions
abs = _F["abs"]  # noqa: A001 - NKI's name
arctan, ceil, cos, erf, erf_dx = _F["arctan"], _F["ceil"], _F["cos"], _F["erf"], _F["erf_dx"]
exp, floor, gelu, gelu_dx = _F["exp"], _F["floor"], _F["gelu"], _F["gelu_dx"]
gelu_apprx_sigmoid, gelu_apprx_tanh = _F["gelu_apprx_sigmoid"], _F["gelu_apprx_tanh"]
invert, log, mish, negative = _F["invert"], _F["log"], _F["mish"], _F["negative"]
reciprocal, relu, rsqrt, sigmoid = _F["reciprocal"], _F["relu"], _F["rsqrt"], _F["sigmoid"]
sign, silu, silu_dx, sin = _F["sign"], _F["silu"], _F["silu_dx"], _F["sin"]
softplus, sqrt, square, tan = _F["softplus"], _F["sqrt"], _F["square"], _F["tan"]
tanh, trunc, logical_not = _F["tanh"], _F["trunc"], _F["logical_not"]
add, subtract, multiply, divide = _F["add"], _F["subtract"], _F["multiply"], _F["divide"]
maximum, minimum, power = _F["maximum"], _F["minimum"], _F["power"]
bitwise_and, bitwise_or, bitwise_xor = _F["bitwise_and"], _F["bitwise_or"], _F["bitwise_xor"]
left_shift, right_shift, fmod, mod = (_F["left_shift"], _F["right_shift"], _F["fmod"],
                                      _F["mod"])
equal, not_equal, greater = _F["equal"], _F["not_equal"], _F["greater"]
greater_equal, less, less_equal = _F["greater_equal"], _F["less"], _F["less_equal"]
logical_and, logical_or, logical_xor = _F["logical_and"], _F["logical_or"], _F["logical_xor"]

# ------------------------------------------------------------------ reductions
sum = _red.sum  # noqa: A001 - NKI's name
max = _red.max  # noqa: A001
min = _red.min  # noqa: A001
mean, prod, var = _red.mean, _red.prod, _red.var
all = _red.all  # noqa: A001

__all__ = [
    "abs", "add", "affine_range", "all", "all_reduce", "arange", "arctan", "atomic_rmw",
    "bfloat16", "bfp16", "bitwise_and", "bitwise_or", "bitwise_xor", "bool_", "broadcast_to",
    "ceil", "copy", "cos", "device_print", "divide", "dropout", "ds", "empty_like", "equal",
    "erf", "erf_dx", "exp", "expand_dims", "finfo", "float16", "float32", "float8_e4m3",
    "float8_e5m2", "floor", "fmod", "fp32", "full", "gather_flattened", "gelu",
    "gelu_apprx_sigmoid", "gelu_apprx_tanh", "gelu_dx", "gemm_grid", "gemm_stationary_grid",
    "greater", "greater_equal", "hbm", "int16", "int32", "int8", "invert", "left_shift",
    "less", "less_equal", "load", "load_transpose2d", "log", "logical_and", "logical_not",
    "logical_or", "logical_xor", "loop_reduce", "matmul", "max", "maximum", "mean", "mgrid",
    "min", "minimum", "mish", "mod", "multiply", "nc", "ndarray", "negative", "not_equal",
    "num_programs", "ones", "par_dim", "power", "private_hbm", "prod", "program_id",
    "program_ndim", "psum", "rand", "random_seed", "reciprocal", "relu", "right_shift",
    "rms_norm", "rsqrt", "sbuf", "sequential_range", "shared_constant", "shared_hbm",
    "shared_identity_matrix", "sigmoid", "sign", "silu", "silu_dx", "sin", "softmax",
    "softplus", "spmd_dim", "sqrt", "square", "static_cast", "static_range", "store",
    "subtract", "sum", "tan", "tanh", "tfloat32", "tile_size", "transpose", "trunc",
    "uint16", "uint32", "uint8", "var", "where", "zeros", "zeros_like",
]
