"""Matmul / linear and batched matmul: C = op(a) @ op(b) (+ bias) with a fused activation.

    out = matmul(a, b, bias=None, activation=None, transpose_a=False, transpose_b=False,
                 out_dtype=None, block_m=None, block_n=None, block_k=None, double_row=False)

Layouts (BLAS convention, op(x) = x^T when its flag is set):
- `a` is A [M, K], or A^T stored [K, M] with `transpose_a=True`;
- `b` is B [K, N], or B^T stored [N, K] with `transpose_b=True` (a Linear weight
  [out_features, in_features]; `x @ W.T` is `matmul(x, W, transpose_b=True)`).
Operands stored K-major ([K, M] / [K, N]) go to the Tensor engine as they are; the others
are transposed on the way in (DMA transposer for 2/4-byte dtypes, Tensor engine for fp8).

`bias` is [N] (per output column) and is added to the fp32 accumulator before `activation`
(any unary activation: nl.relu, nl.gelu, nl.gelu_apprx_tanh, nl.silu, nl.sigmoid, ...),
which runs on the PSUM -> SBUF copy. Inputs: fp32, bf16, fp16, fp8 (e4m3/e5m2); sums are
fp32 in PSUM. `out_dtype` defaults to the input dtype (16-bit and fp32 inputs) and to bf16
for fp8 inputs. `double_row=True` (fp8 on NeuronCore-v3+) contracts 256 K rows per
instruction. Any M, K, N >= 1 work; partial tiles are sliced, never padded in HBM.

Block sizes (keyword parameters; None picks a shape- and chip-aware default, see
`make_plan`): for M > 128 `block_n` columns of B stay in SBUF per N block (default 1024,
or 512 for large K), `block_m` rows of A stream per A panel (256, or 128), and `block_k`
caps the K rows per panel (default: all of K when it fits in SBUF). For M <= 128 (decode)
a weight-stationary body is used (`matmul_skinny.py`), where `block_n` is the N columns
per PSUM sweep and `block_k` the K rows moved per B DMA.
"""

from __future__ import annotations

import math

import numpy as np

from tessera.kernels.hardware import pmax, stationary_fmax
from tessera.kernels.matmul_parts import (
    MatmulPlan,
    blocked_body,
    chunks,
)
from tessera.kernels.matmul_skinny import skinny_body
from tessera.kernels.registry import KernelDef, Op, register
from tessera.nki import dtypes as dt
from tessera.nki import isa as nisa
from tessera.nki import jit
from tessera.nki import language as nl
from tessera.nki.errors import DTypeError, EngineAccessError, KernelUsageError, ShapeMismatchError
from tessera.nki.ops import OpKind, to_op
from tessera.nki.runtime import current

_WIDE = (dt.float32, dt.tfloat32)
_SBUF_SHARE = 0.9  # of SBUF per partition the plan may fill (the rest: allocator slack)
# block_n / block_m candidates of the blocked body, in order of preference
_BLOCK_N_CHOICES = (1024, 512)
_BLOCK_M_CHOICES = (256, 128)
_SKINNY_DMA_BYTES = 32 * 1024  # per partition per B DMA in the skinny body


def _operand_dims(a, b, transpose_a: bool, transpose_b: bool) -> tuple[int, int, int]:
    for t, what in ((a, "a"), (b, "b")):
        if t.ndim != 2:
            raise ShapeMismatchError(f"matmul: {what}{list(t.shape)} must be 2-D")
    k, m = a.shape if transpose_a else a.shape[::-1]
    n, k2 = b.shape if transpose_b else b.shape[::-1]
    if k != k2:
        raise ShapeMismatchError(
            f"matmul: contraction mismatch: op(a) is [{m}, {k}] (a{list(a.shape)}, "
            f"transpose_a={transpose_a}) but op(b) is [{k2}, {n}] (b{list(b.shape)}, "
            f"transpose_b={transpose_b})")
    return m, k, n


def _check_dtypes(a, b, double_row: bool) -> None:
    for t, what in ((a, "a"), (b, "b")):
        if not t.dtype.is_float:
            raise DTypeError(f"matmul: {what} is {t.dtype.name}; the Tensor engine takes "
                             "fp32/bf16/fp16/fp8 inputs")
    if (a.dtype in _WIDE) != (b.dtype in _WIDE):
        raise DTypeError(f"matmul: fp32 inputs cannot be mixed with narrower ones "
                         f"({a.dtype.name} x {b.dtype.name}); cast one first")
    if double_row:
        if nisa.get_nc_version() < nisa.nc_version.gen3:
            raise EngineAccessError(
                f"matmul: double_row needs NeuronCore-v3 or later (trn2); this kernel runs on "
                f"{current().run.limits.chip}")
        if a.dtype.kind is not dt.DTypeKind.FLOAT8 or b.dtype.kind is not dt.DTypeKind.FLOAT8:
            raise DTypeError(f"matmul: double_row needs fp8 operands, got {a.dtype.name} x "
                             f"{b.dtype.name}")


def _default_out_dtype(a, b) -> dt.DType:
    if dt.DTypeKind.FLOAT8 in (a.dtype.kind, b.dtype.kind):
        return dt.bfloat16
    return a.dtype if a.dtype == b.dtype else dt.float32


def _activation(activation: object):
    if activation is None:
        return None
    op = to_op(activation, "activation")
    if op.arity != 1 or op.kind is not OpKind.ACTIVATION:
        raise KernelUsageError(f"matmul: activation={op.name} is not a unary activation "
                               "function (nl.relu, nl.gelu, nl.silu, ...)")
    return op


def _round_to(value: int, step: int) -> int:
    return max(step, (value // step) * step)


def make_plan(a, b, bias, activation, transpose_a: bool, transpose_b: bool, out_dtype,
              block_m, block_n, block_k, double_row: bool) -> MatmulPlan:
    """Validate the arguments and choose the body and block sizes (None = default).

    Defaults for M > 128: see `_fit_blocks`.
    For M <= 128: `block_n` = as many columns as 4 PSUM banks of C^T hold, `block_k` = the
    K rows that make a 32 KiB-per-partition DMA of B.
    """
    m, k, n = _operand_dims(a, b, transpose_a, transpose_b)
    _check_dtypes(a, b, double_row)
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != n):
        raise ShapeMismatchError(f"matmul: bias{list(bias.shape)} must be [{n}] (one value "
                                 "per output column)")
    out = dt.to_dtype(out_dtype) if out_dtype is not None else _default_out_dtype(a, b)
    skinny = m <= stationary_fmax()
    if skinny:
        per_bank = max(1, 512 // m)
        bn = _round_to(block_n, pmax()) if block_n else min(n, 4 * per_bank * pmax())
        nw = min(bn, n)
        bk = block_k or pmax() * max(1, _SKINNY_DMA_BYTES // (nw * b.dtype.itemsize))
        bk = _round_to(bk, pmax())
    else:
        bm, bn, bk = _fit_blocks(m, k, n, block_m, block_n, block_k, a.dtype.itemsize,
                                 b.dtype.itemsize, out.itemsize, double_row)
    return MatmulPlan(m=m, k=k, n=n, a_k_major=bool(transpose_a),
                      b_k_major=not transpose_b, in_dtype=a.dtype, out_dtype=out,
                      activation=_activation(activation), block_m=pmax() if skinny else bm,
                      block_n=bn, block_k=bk, double_row=bool(double_row), skinny=skinny)


def _fit_blocks(m: int, k: int, n: int, block_m, block_n, block_k, isz_a: int, isz_b: int,
                osz: int, double_row: bool) -> tuple[int, int, int]:
    """(block_m, block_n, block_k) for the blocked body.

    Prefers all of K per panel (PSUM holds the whole sum, and an A panel of whole rows of
    A is one contiguous HBM range), then the widest B panel (A is re-read N / block_n
    times), then the taller A panel: the first of (1024, 256), (1024, 128), (512, 256),
    (512, 128) whose two B panels and two A panels fit in 90% of SBUF. Otherwise K is cut
    into the largest fitting multiple of 512 rows.
    """
    step = 2 * pmax() if double_row else pmax()
    budget = _SBUF_SHARE * nl.tile_size.sbuf_fmax_bytes

    def need(bm: int, bn: int, bk: int) -> float:
        j, bn = chunks(bk, double_row), min(bn, n)
        total = 2 * j * bn * isz_b + 2 * j * bm * isz_a + 2 * bn * osz + 4 * bn
        if bk < k:  # K blocks add up in an fp32 accumulator of all M rows
            total += math.ceil(m / pmax()) * bn * 4
        return total

    bms = [_round_to(block_m, pmax())] if block_m else list(_BLOCK_M_CHOICES)
    bns = [block_n] if block_n else list(_BLOCK_N_CHOICES)
    options = [(bn, bm) for bn in bns for bm in bms]
    if block_k:
        return options[0][1], options[0][0], _round_to(block_k, step)
    for bn, bm in options:
        if need(bm, bn, k) <= budget:
            return bm, bn, k
    bn, bm = options[-1]
    bk = k
    while need(bm, bn, bk) > budget and bk > 512:
        bk = _round_to(min(bk // 2, k), 512)
    return bm, bn, bk


def _body(out, a, b, bias, plan: MatmulPlan) -> None:
    (skinny_body if plan.skinny else blocked_body)(out, a, b, bias, plan)


@jit
def matmul(a, b, bias=None, activation=None, transpose_a=False, transpose_b=False,
           out_dtype=None, block_m=None, block_n=None, block_k=None, double_row=False):
    """C[M, N] = op(a) @ op(b) (+ bias[N]), then `activation`; see the module docstring."""
    plan = make_plan(a, b, bias, activation, transpose_a, transpose_b, out_dtype, block_m,
                     block_n, block_k, double_row)
    out = nl.ndarray((plan.m, plan.n), plan.out_dtype, buffer=nl.shared_hbm)
    _body(out, a, b, bias, plan)
    return out


@jit
def batched_matmul(a, b, bias=None, activation=None, transpose_a=False, transpose_b=False,
                   out_dtype=None, block_m=None, block_n=None, block_k=None,
                   double_row=False):
    """C[i] = op(a[i]) @ op(b[i]) (+ bias) for a [B, M, K] ([B, K, M] with transpose_a).

    `b` is [B, K, N] ([B, N, K] with transpose_b), or 2-D to share one B across the batch.
    Each batch element runs the 2-D body on HBM views (no copies).
    """
    if a.ndim != 3 or b.ndim not in (2, 3):
        raise ShapeMismatchError(f"batched_matmul: a{list(a.shape)} must be 3-D and "
                                 f"b{list(b.shape)} 2-D or 3-D")
    batch = a.shape[0]
    if b.ndim == 3 and b.shape[0] != batch:
        raise ShapeMismatchError(f"batched_matmul: a has {batch} batch elements but b has "
                                 f"{b.shape[0]}")
    b0 = b[0] if b.ndim == 3 else b
    plan = make_plan(a[0], b0, bias, activation, transpose_a, transpose_b, out_dtype,
                     block_m, block_n, block_k, double_row)
    out = nl.ndarray((batch, plan.m, plan.n), plan.out_dtype, buffer=nl.shared_hbm)
    for i in range(batch):
        _body(out[i], a[i], b[i] if b.ndim == 3 else b, bias, plan)
    return out


# ----------------------------------------------------------------------- registry
def _act_reference(y: np.ndarray, activation: object) -> np.ndarray:
    """The activation in float64 (the common ones exactly; others via the op's rule)."""
    if activation is None:
        return y
    name = to_op(activation, "activation").name
    sig = 1.0 / (1.0 + np.exp(-y))
    if name in ("copy", "identity"):
        return y
    if name == "relu":
        return np.maximum(y, 0.0)
    if name == "sigmoid":
        return sig
    if name == "silu":
        return y * sig
    if name == "tanh":
        return np.tanh(y)
    if name == "gelu":
        erf = np.frompyfunc(math.erf, 1, 1)
        return 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)).astype(np.float64))
    if name == "gelu_apprx_tanh":
        return 0.5 * y * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (y + 0.044715 * y ** 3)))
    return to_op(activation).apply(y.astype(np.float32)).astype(np.float64)


def reference(a, b, bias=None, activation=None, transpose_a=False, transpose_b=False,
              **_: object) -> np.ndarray:
    """op(a) @ op(b) (+ bias), activated, in float64 (batched when a is 3-D)."""
    x = np.asarray(a, dtype=np.float64)
    w = np.asarray(b, dtype=np.float64)
    if transpose_a:
        x = np.swapaxes(x, -1, -2)
    if transpose_b:
        w = np.swapaxes(w, -1, -2)
    y = x @ w
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return _act_reference(y, activation)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32).astype(dt.to_dtype(dtype).storage)


def _make_inputs(shapes, dtype, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    m, k, n = shapes["M"], shapes["K"], shapes["N"]
    return _uniform(rng, (m, k), dtype), _uniform(rng, (k, n), dtype)


def _make_batched(shapes, dtype, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    bsz, m, k, n = shapes["B"], shapes["M"], shapes["K"], shapes["N"]
    return _uniform(rng, (bsz, m, k), dtype), _uniform(rng, (bsz, k, n), dtype)


def _flops(s) -> float:
    return 2.0 * s["M"] * s["N"] * s["K"] * s.get("B", 1)


def _hbm_bytes(s, itemsize: int) -> float:
    return float((s["M"] * s["K"] + s["K"] * s["N"] + s["M"] * s["N"]) * itemsize
                 * s.get("B", 1))


_TUNABLES = {"block_m": (128, 256, 512), "block_n": (512, 1024, 2048),
             "block_k": (512, 1024, 2048, 4096, 8192)}
_DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3", "float8_e5m2")

MATMUL = register(KernelDef(
    op=Op.MATMUL, name="matmul", kernel=matmul, shape_keys=("M", "K", "N"),
    make_inputs=_make_inputs, reference=reference, flops=_flops, hbm_bytes=_hbm_bytes,
    tunables=_TUNABLES, defaults={}, dtypes=_DTYPES))

BATCHED_MATMUL = register(KernelDef(
    op=Op.BATCHED_MATMUL, name="batched_matmul", kernel=batched_matmul,
    shape_keys=("B", "M", "K", "N"), make_inputs=_make_batched, reference=reference,
    flops=_flops, hbm_bytes=_hbm_bytes, tunables=_TUNABLES, defaults={}, dtypes=_DTYPES))
