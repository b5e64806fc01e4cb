"""Beta-1 `nl.where`, `nl.softmax` and `nl.rms_norm`: tile-returning calls with `dtype=`
and `mask=`.

Same instructions as the Beta-2 forms (`tessera.nki.language_compose`), issued through
`produce` so that the last instruction writes the assignment's target (no copy), and
through `run_masked` so that a mask cuts every instruction to its box. From the Beta-1
pages:

- "nki.language.where": elements of x where condition holds, of y elsewhere; y may be a
  number; the result dtype is the inputs' promoted type unless `dtype` is given.
- "nki.language.softmax": along the trailing free axes `axis`; `dtype` and
  `compute_dtype` "currently behave the same": either sets both the internal and the
  returned dtype (giving both with different values is refused).
- "nki.language.rms_norm": `x / RMS(x) * w`, RMS over `n` values plus `epsilon`; same
  `dtype` / `compute_dtype` rule.

Intermediate statistics (row max, row sum, mean square) stay float32, as the engines
compute them; the per-element intermediates take the chosen dtype.
"""

from __future__ import annotations

import builtins
from numbers import Real

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as alu
from tessera.nki.beta1.masking import run_masked
from tessera.nki.beta1.values import produce, require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError, ShapeMismatchError
from tessera.nki.isa.constants import reduce_cmd
from tessera.nki.language_compose import expand_to, free_axes, stretch, tile_arg
from tessera.nki.runtime import current, kernel_api
from tessera.nki.tensor import NkiTensor

_F32 = dt.float32


def _tile(shape: tuple[int, ...], dtype: dt.DType) -> NkiTensor:
    return new_tensor(current(), shape, dtype, Buffer.SBUF, None)


def _keep(shape: tuple[int, ...], k: int) -> tuple[int, ...]:
    """`shape` with its k trailing axes set to 1 (a per-row statistic)."""
    return shape[:len(shape) - k] + (1,) * k


def chosen_dtype(fn: str, dtype: object, compute_dtype: object) -> dt.DType | None:
    """The one dtype `dtype` / `compute_dtype` name (the pages: they behave the same)."""
    picked = [dt.to_dtype(d) for d in (dtype, compute_dtype) if d is not None]
    if len(picked) == 2 and picked[0] != picked[1]:
        raise KernelUsageError(f"nl.{fn}: dtype={picked[0]} and compute_dtype={picked[1]} "
                               "differ; the page says both set the compute and result dtype, "
                               "give one")
    return picked[0] if picked else None


# ------------------------------------------------------------------ where
def _where_into(out: NkiTensor, cond: NkiTensor, x: NkiTensor, y: object) -> None:
    shape = out.shape
    if isinstance(y, NkiTensor):
        isa.tensor_copy(out, expand_to(y, shape, "where"))
    else:
        isa.memset(out, float(y))  # type: ignore[arg-type]
    pred = expand_to(cond, shape, "where")
    if pred.dtype.kind not in (dt.DTypeKind.UINT, dt.DTypeKind.BOOL):
        # the predicated copy reads an unsigned predicate: condition != 0 as uint8
        flags = _tile(shape, dt.uint8)
        isa.tensor_scalar(flags, pred, alu.not_equal, 0.0)
        pred = flags
    src = expand_to(x, shape, "where")
    if src.dtype != out.dtype:
        cast = _tile(shape, out.dtype)
        isa.tensor_copy(cast, src)
        src = cast
    isa.tensor_copy_predicated(out, src, pred)


@kernel_api
def where(condition: object, x: object, y: object, *, dtype: object = None,
          mask: object = None, **kwargs: object) -> NkiTensor:
    """`nl.where(condition, x, y, dtype=None, mask=None)`: a new tile of x where condition
    is nonzero and y (a tile or a number) elsewhere; tiles broadcast numpy-style."""
    fn = "where"
    require_beta1(f"nl.{fn}")
    cond = tile_arg(condition, "condition", fn)
    xt = tile_arg(x, "x", fn)
    yt = tile_arg(y, "y", fn) if isinstance(y, NkiTensor) else None
    if yt is None and (isinstance(y, bool) or not isinstance(y, Real)):
        raise KernelUsageError(f"nl.{fn}: y must be a tile or a number, got "
                               f"{type(y).__name__}")
    tiles = [t for t in (cond, xt, yt) if t is not None]
    if len({t.ndim for t in tiles}) != 1:
        raise ShapeMismatchError(f"nl.{fn}: condition, x and y must have the same rank; got "
                                 f"{[list(t.shape) for t in tiles]}")
    shape = tuple(builtins.max(d) for d in zip(*(t.shape for t in tiles), strict=True))
    default = xt.dtype if yt is None else dt.promote(xt.dtype, yt.dtype)
    out_dtype = default if dtype is None else dt.to_dtype(dtype)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        def call(d: NkiTensor, c: NkiTensor, a: NkiTensor, *rest: NkiTensor) -> None:
            _where_into(d, c, a, rest[0] if rest else y)

        run_masked(mask, dst, [t for t in (cond, xt, yt) if t is not None], call,
                   f"nl.{fn}")

    return produce(shape, out_dtype, Buffer.SBUF, compute)


# ------------------------------------------------------------------ softmax
def _softmax_into(out: NkiTensor, x: NkiTensor, k: int, work: dt.DType) -> None:
    axes = tuple(range(x.ndim - k, x.ndim))
    stats = _keep(x.shape, k)
    expo = _tile(x.shape, work)
    total = _tile(stats, _F32)
    inv = _tile(stats, _F32)
    if k == x.ndim - 1:
        # whole rows: negated max, one exp activation that also sums the row, 1/sum, scale
        neg_max = _tile(stats, _F32)
        isa.tensor_reduce(neg_max, alu.maximum, x, axes, negate=True, keepdims=True)
        isa.activation(expo, alu.exp, x, bias=neg_max, reduce_op=alu.add,
                       reduce_res=total, reduce_cmd=reduce_cmd.reset_reduce)
        isa.reciprocal(inv, total)
        isa.tensor_scalar(out, expo, alu.multiply, inv)
        return
    # groups inside each row: the statistics are broadcast back as stride-0 views
    peak = _tile(stats, _F32)
    isa.tensor_reduce(peak, alu.maximum, x, axes, keepdims=True)
    shifted = _tile(x.shape, _F32)
    isa.tensor_tensor(shifted, x, stretch(peak, x.shape, "softmax"), alu.subtract)
    isa.activation(expo, alu.exp, shifted)
    isa.tensor_reduce(total, alu.add, expo, axes, keepdims=True)
    isa.reciprocal(inv, total)
    isa.tensor_tensor(out, expo, stretch(inv, x.shape, "softmax"), alu.multiply)


@kernel_api
def softmax(x: object, axis: object, *, dtype: object = None, compute_dtype: object = None,
            mask: object = None, **kwargs: object) -> NkiTensor:
    """`nl.softmax(x, axis, dtype=None, compute_dtype=None, mask=None)`:
    exp(x - max) / sum(exp(x - max)) along the trailing free axes `axis`."""
    fn = "softmax"
    require_beta1(f"nl.{fn}")
    xt = tile_arg(x, "x", fn)
    k = free_axes(xt, axis, fn)
    picked = chosen_dtype(fn, dtype, compute_dtype)
    work = picked or _F32

    def compute(dst: NkiTensor, _acc: bool) -> None:
        run_masked(mask, dst, [xt], lambda d, a: _softmax_into(d, a, k, work), f"nl.{fn}")

    return produce(xt.shape, picked or xt.dtype, Buffer.SBUF, compute)


# ------------------------------------------------------------------ rms_norm
def _rms_norm_into(out: NkiTensor, x: NkiTensor, w: NkiTensor, k: int, n: float, eps: float,
                   work: dt.DType) -> None:
    axes = tuple(range(x.ndim - k, x.ndim))
    stats = _keep(x.shape, k)
    weight = expand_to(w, x.shape, "rms_norm")
    squares = _tile(stats, _F32)
    if k == x.ndim - 1:
        scratch = _tile(x.shape, _F32)  # whole rows: square and sum in one activation
        isa.activation(scratch, alu.square, x, reduce_op=alu.add, reduce_res=squares,
                       reduce_cmd=reduce_cmd.reset_reduce)
    else:
        sq = _tile(x.shape, _F32)
        isa.tensor_tensor(sq, x, x, alu.multiply)
        isa.tensor_reduce(squares, alu.add, sq, axes, keepdims=True)
    ms = _tile(stats, _F32)
    isa.tensor_scalar(ms, squares, alu.multiply, 1.0 / n, op1=alu.add, operand1=eps)
    inv_rms = _tile(stats, _F32)
    isa.activation(inv_rms, alu.rsqrt, ms)
    normed = _tile(x.shape, work)
    if k == x.ndim - 1:
        isa.tensor_scalar(normed, x, alu.multiply, inv_rms)
    else:
        isa.tensor_tensor(normed, x, stretch(inv_rms, x.shape, "rms_norm"), alu.multiply)
    isa.tensor_tensor(out, normed, weight, alu.multiply)


@kernel_api
def rms_norm(x: object, w: object, axis: object, n: object, epsilon: object = 1e-06, *,
             dtype: object = None, compute_dtype: object = None, mask: object = None,
             **kwargs: object) -> NkiTensor:
    """`nl.rms_norm(x, w, axis, n, epsilon=1e-6, dtype=None, compute_dtype=None,
    mask=None)`: x / sqrt(sum(x^2 over axis) / n + epsilon) * w (w broadcasts to x)."""
    fn = "rms_norm"
    require_beta1(f"nl.{fn}")
    xt = tile_arg(x, "x", fn)
    wt = tile_arg(w, "w", fn)
    k = free_axes(xt, axis, fn)
    if isinstance(n, bool) or not isinstance(n, Real) or not n > 0:
        raise KernelUsageError(f"nl.{fn}: n must be a positive number (the count of values "
                               f"in the root mean square), got {n!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real):
        raise KernelUsageError(f"nl.{fn}: epsilon must be a number, got {epsilon!r}")
    picked = chosen_dtype(fn, dtype, compute_dtype)
    work = picked or _F32

    def compute(dst: NkiTensor, _acc: bool) -> None:
        run_masked(mask, dst, [xt, wt],
                   lambda d, a, b: _rms_norm_into(d, a, b, k, float(n), float(epsilon), work),
                   f"nl.{fn}")

    return produce(xt.shape, picked or xt.dtype, Buffer.SBUF, compute)


__all__ = ["rms_norm", "softmax", "where"]
