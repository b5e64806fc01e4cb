"""`nki.language` helpers that are compositions of `nki.isa` instructions.

Each follows its page of the current (NKI 0.3+) reference: it takes tiles and returns a new
tile, and, like the vendor's nl helpers, it issues real instructions (so a kernel that
calls `nl.softmax` is timed as the instructions it stands for):

- reductions `sum/max/min/prod/all(x, axis, ...)`: one `tensor_reduce` (Vector engine);
  `mean` adds a `tensor_scalar` scale, `var` is mean, centre, square, sum, scale;
- `softmax(x, axis=-1)`: max, exp(x - max) with the row sum, reciprocal, scale;
- `rms_norm(x, w, axis, n, epsilon)`: x / sqrt(sum(x^2) / n + epsilon) * w;
- `where(condition, x, y)`: copy y, then a predicated copy of x where condition != 0.

`axis` names trailing free dimensions only ("must be free dimensions, not partition
dimension (0); can only be the last contiguous dim(s) of the tile"). Statistics are kept in
float32 (the engines compute in float32); the result is cast to `dtype` (default x's).
A reduction that drops every free axis returns [P, 1]: on-chip tiles stay at least 2-D.
Tile-movement helpers (transpose, matmul, broadcast_to, ...) are in `language_layout`.
"""

from __future__ import annotations

import builtins
import math
from numbers import Integral, Real

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as alu  # the AluOps: `max`, `sum`... here are functions
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import BufferKindError, KernelUsageError, ShapeMismatchError
from tessera.nki.isa.constants import reduce_cmd
from tessera.nki.language_layout import broadcast_to
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.tensor import NkiTensor

__all__ = ["all", "max", "mean", "min", "prod", "rms_norm", "softmax", "sum", "var", "where"]

_F32 = dt.float32
_MAX_REDUCED_AXES = 4  # "[1], [1,2], [1,2,3], [1,2,3,4]"


def tile_arg(x: object, what: str, fn: str) -> NkiTensor:
    """`x` as an on-chip tile (SBUF or PSUM), or the error naming the nl function."""
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"nl.{fn}: {what} must be a tile (an NKI tensor in SBUF or "
                               f"PSUM), got {type(x).__name__}")
    if not x.buffer.on_chip:
        raise BufferKindError(f"nl.{fn}: {what} {x.name}{list(x.shape)} is in "
                              f"{x.buffer.value}; it must be a tile in SBUF or PSUM (load it "
                              "with nl.load or nisa.dma_copy)")
    return x


def free_axes(x: NkiTensor, axis: object, fn: str) -> int:
    """Validate `axis` (trailing free dimensions of x); returns how many it names."""
    items = tuple(axis) if isinstance(axis, tuple | list) else (axis,)
    n = x.ndim
    axes = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, Integral):
            raise KernelUsageError(f"nl.{fn}: axis must be an int or a tuple/list of ints, "
                                   f"got {axis!r}")
        a = int(a)
        if not -n <= a < n:
            raise KernelUsageError(f"nl.{fn}: axis {a} is out of range for the {n}-D tile "
                                   f"{x.name}{list(x.shape)}")
        axes.append(a % n)
    if not axes:
        raise KernelUsageError(f"nl.{fn}: axis names no dimension")
    if 0 in axes:
        raise KernelUsageError(f"nl.{fn}: axis 0 is the partition dimension of {x.name}"
                               f"{list(x.shape)}; only free dimensions can be reduced")
    k = len(axes)
    if len(set(axes)) != k or sorted(axes) != list(range(n - k, n)):
        raise KernelUsageError(f"nl.{fn}: axis={axis!r} must name the last contiguous free "
                               f"dimension(s) of the {n}-D tile, e.g. {n - 1} or "
                               f"{tuple(range(1, n))}")
    if k > _MAX_REDUCED_AXES:
        raise KernelUsageError(f"nl.{fn}: axis={axis!r} names {k} dimensions; at most "
                               f"{_MAX_REDUCED_AXES} free axes can be reduced")
    return k


def stretch(t: NkiTensor, shape: tuple[int, ...], fn: str) -> NkiTensor:
    """t, of the same rank as `shape`, broadcast to `shape` as a view: size-1 free
    dimensions get stride 0; the partition dimension must already match."""
    if t.ndim != len(shape):
        raise ShapeMismatchError(f"nl.{fn}: {t.name}{list(t.shape)} cannot broadcast to "
                                 f"{list(shape)} (the ranks differ)")
    view = t
    for d, (have, want) in enumerate(zip(t.shape, shape, strict=True)):
        if have == want:
            continue
        if have != 1 or d == 0:
            raise ShapeMismatchError(f"nl.{fn}: {t.name}{list(t.shape)} cannot broadcast to "
                                     f"{list(shape)} (dimension {d}: {have} vs {want})")
        view = view.broadcast(d, want)
    return view


def expand_to(t: NkiTensor, shape: tuple[int, ...], fn: str) -> NkiTensor:
    """t broadcast to `shape`: a view along free dimensions, and a copy (`broadcast_to`,
    a DMA) when one partition must be repeated across partitions."""
    if t.ndim == len(shape) and t.shape[0] == 1 and shape[0] > 1:
        t = broadcast_to(t, (shape[0], *t.shape[1:]))
    return stretch(t, shape, fn)


def _keep_shape(x: NkiTensor, k: int) -> tuple[int, ...]:
    """x's shape with the k trailing axes set to 1 (the keepdims shape)."""
    return x.shape[:x.ndim - k] + (1,) * k


def _reduced_shape(x: NkiTensor, k: int, keepdims: bool) -> tuple[int, ...]:
    """The result shape: the reduced axes dropped (numpy), or kept as 1 with keepdims. An
    on-chip tile stays at least 2-D, so dropping every free axis leaves [P, 1] (as an
    integer index does on a tile view)."""
    if keepdims:
        return _keep_shape(x, k)
    shape = x.shape[:x.ndim - k]
    return shape if len(shape) >= 2 else (*shape, 1)


def _axes(x: NkiTensor, k: int) -> tuple[int, ...]:
    return tuple(range(x.ndim - k, x.ndim))


def _out_dtype(dtype: object, default: dt.DType) -> dt.DType:
    return default if dtype is None else dt.to_dtype(dtype)


def _tile(ctx: CoreContext, shape: tuple[int, ...], dtype: dt.DType) -> NkiTensor:
    return new_tensor(ctx, shape, dtype, Buffer.SBUF, None)


def _reduce(fn: str, op: object, x: object, axis: object, dtype: object,
            keepdims: bool) -> NkiTensor:
    """One tensor_reduce over the trailing axes, written as `dtype` (default x's)."""
    ctx = current()
    x = tile_arg(x, "x", fn)
    k = free_axes(x, axis, fn)
    shape = _reduced_shape(x, k, keepdims)
    out = _tile(ctx, shape, _out_dtype(dtype, x.dtype))
    isa.tensor_reduce(out, op, x, _axes(x, k), keepdims=bool(keepdims))
    return out


@kernel_api
def sum(x: NkiTensor, axis: object, dtype: object = None,  # noqa: A001 - NKI's name
        keepdims: bool = False) -> NkiTensor:
    """Sum along the trailing free axes `axis` (numpy.sum), in float32, cast to `dtype`."""
    return _reduce("sum", alu.add, x, axis, dtype, keepdims)


@kernel_api
def max(x: NkiTensor, axis: object, dtype: object = None,  # noqa: A001 - NKI's name
        keepdims: bool = False) -> NkiTensor:
    """Maximum along the trailing free axes `axis` (numpy.max)."""
    return _reduce("max", alu.maximum, x, axis, dtype, keepdims)


@kernel_api
def min(x: NkiTensor, axis: object, dtype: object = None,  # noqa: A001 - NKI's name
        keepdims: bool = False) -> NkiTensor:
    """Minimum along the trailing free axes `axis` (numpy.min)."""
    return _reduce("min", alu.minimum, x, axis, dtype, keepdims)


@kernel_api
def prod(x: NkiTensor, axis: object, dtype: object = None,
         keepdims: bool = False) -> NkiTensor:
    """Product along the trailing free axes `axis` (numpy.prod)."""
    return _reduce("prod", alu.multiply, x, axis, dtype, keepdims)


@kernel_api
def all(x: NkiTensor, axis: object, dtype: object = None) -> NkiTensor:  # noqa: A001
    """1 where every element along `axis` is nonzero, else 0 (numpy.all; the page has no
    keepdims, so the reduced axes are dropped)."""
    return _reduce("all", alu.logical_and, x, axis, dtype, False)


@kernel_api
def mean(x: NkiTensor, axis: object, dtype: object = None,
         keepdims: bool = False) -> NkiTensor:
    """Arithmetic mean along `axis`: a float32 sum, then one scale by 1/count."""
    ctx = current()
    x = tile_arg(x, "x", "mean")
    k = free_axes(x, axis, "mean")
    shape = _reduced_shape(x, k, keepdims)
    total = _tile(ctx, shape, _F32)
    isa.tensor_reduce(total, alu.add, x, _axes(x, k), keepdims=bool(keepdims))
    out = _tile(ctx, shape, _out_dtype(dtype, x.dtype))
    isa.tensor_scalar(out, total, alu.multiply, 1.0 / math.prod(x.shape[x.ndim - k:]))
    return out


@kernel_api
def var(x: NkiTensor, axis: object, dtype: object = None,
        keepdims: bool = False) -> NkiTensor:
    """Population variance along `axis` (numpy.var, ddof=0): mean((x - mean(x))^2).

    As the page says, `keepdims` is ignored: the result always has the keepdims shape."""
    ctx = current()
    x = tile_arg(x, "x", "var")
    k = free_axes(x, axis, "var")
    axes, shape = _axes(x, k), _keep_shape(x, k)
    inv = 1.0 / math.prod(x.shape[x.ndim - k:])
    total = _tile(ctx, shape, _F32)
    isa.tensor_reduce(total, alu.add, x, axes, keepdims=True)
    squares = _tile(ctx, shape, _F32)
    if k == x.ndim - 1:
        # whole rows: the Scalar engine squares (x - mean) and sums the row in one pass
        neg_mean = _tile(ctx, shape, _F32)
        isa.tensor_scalar(neg_mean, total, alu.multiply, -inv)
        scratch = _tile(ctx, x.shape, _F32)
        isa.activation(scratch, alu.square, x, bias=neg_mean, reduce_op=alu.add,
                       reduce_res=squares, reduce_cmd=reduce_cmd.reset_reduce)
    else:
        avg = _tile(ctx, shape, _F32)
        isa.tensor_scalar(avg, total, alu.multiply, inv)
        centred = _tile(ctx, x.shape, _F32)
        isa.tensor_tensor(centred, x, stretch(avg, x.shape, "var"), alu.subtract)
        sq = _tile(ctx, x.shape, _F32)
        isa.tensor_tensor(sq, centred, centred, alu.multiply)
        isa.tensor_reduce(squares, alu.add, sq, axes, keepdims=True)
    out = _tile(ctx, shape, _out_dtype(dtype, x.dtype))
    isa.tensor_scalar(out, squares, alu.multiply, inv)
    return out


@kernel_api
def softmax(x: NkiTensor, axis: object = -1, dtype: object = None) -> NkiTensor:
    """exp(x - max(x)) / sum(exp(x - max(x))) along the trailing free axes `axis`.

    Over whole rows this is the fused form kernels use: a negated max, one activation that
    exponentiates with that bias and sums the row, a reciprocal and a per-row scale."""
    ctx = current()
    x = tile_arg(x, "x", "softmax")
    k = free_axes(x, axis, "softmax")
    axes, shape = _axes(x, k), _keep_shape(x, k)
    out = _tile(ctx, x.shape, _out_dtype(dtype, x.dtype))
    expo = _tile(ctx, x.shape, _F32)
    total = _tile(ctx, shape, _F32)
    if k == x.ndim - 1:
        neg_max = _tile(ctx, shape, _F32)
        isa.tensor_reduce(neg_max, alu.maximum, x, axes, negate=True, keepdims=True)
        isa.activation(expo, alu.exp, x, bias=neg_max, reduce_op=alu.add,
                       reduce_res=total, reduce_cmd=reduce_cmd.reset_reduce)
        inv = _tile(ctx, shape, _F32)
        isa.reciprocal(inv, total)
        isa.tensor_scalar(out, expo, alu.multiply, inv)
        return out
    # part of each row: the per-group statistics are broadcast back as stride-0 views
    peak = _tile(ctx, shape, _F32)
    isa.tensor_reduce(peak, alu.maximum, x, axes, keepdims=True)
    shifted = _tile(ctx, x.shape, _F32)
    isa.tensor_tensor(shifted, x, stretch(peak, x.shape, "softmax"), alu.subtract)
    isa.activation(expo, alu.exp, shifted)
    isa.tensor_reduce(total, alu.add, expo, axes, keepdims=True)
    inv = _tile(ctx, shape, _F32)
    isa.reciprocal(inv, total)
    isa.tensor_tensor(out, expo, stretch(inv, x.shape, "softmax"), alu.multiply)
    return out


@kernel_api
def rms_norm(x: NkiTensor, w: NkiTensor, axis: object, n: int, epsilon: float = 1e-06,
             dtype: object = None, compute_dtype: object = None) -> NkiTensor:
    """x / RMS(x) * w with RMS(x) = sqrt(sum(x^2 over axis) / n + epsilon).

    `n` is the count the sum is divided by (the page's "total number of values"); `w`
    broadcasts to x (a [1, F] weight row is repeated across partitions by a DMA).
    `compute_dtype` (default float32) is the dtype of the normalised x before the weight
    multiply; `dtype` that of the result (default x's)."""
    fn = "rms_norm"
    ctx = current()
    x = tile_arg(x, "x", fn)
    w = tile_arg(w, "w", fn)
    k = free_axes(x, axis, fn)
    if isinstance(n, bool) or not isinstance(n, Real) or not n > 0:
        raise KernelUsageError(f"nl.{fn}: n must be a positive number (the count of values "
                               f"in the root mean square), got {n!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real):
        raise KernelUsageError(f"nl.{fn}: epsilon must be a number, got {epsilon!r}")
    axes, shape = _axes(x, k), _keep_shape(x, k)
    weight = expand_to(w, x.shape, fn)
    squares = _tile(ctx, shape, _F32)
    if k == x.ndim - 1:
        # whole rows: square and sum in one Scalar-engine pass
        scratch = _tile(ctx, x.shape, _F32)
        isa.activation(scratch, alu.square, x, reduce_op=alu.add, reduce_res=squares,
                       reduce_cmd=reduce_cmd.reset_reduce)
    else:
        sq = _tile(ctx, x.shape, _F32)
        isa.tensor_tensor(sq, x, x, alu.multiply)
        isa.tensor_reduce(squares, alu.add, sq, axes, keepdims=True)
    ms = _tile(ctx, shape, _F32)
    isa.tensor_scalar(ms, squares, alu.multiply, 1.0 / float(n), op1=alu.add,
                      operand1=float(epsilon))
    inv_rms = _tile(ctx, shape, _F32)
    isa.activation(inv_rms, alu.rsqrt, ms)
    normed = _tile(ctx, x.shape, _out_dtype(compute_dtype, _F32))
    if k == x.ndim - 1:
        isa.tensor_scalar(normed, x, alu.multiply, inv_rms)
    else:
        isa.tensor_tensor(normed, x, stretch(inv_rms, x.shape, fn), alu.multiply)
    out = _tile(ctx, x.shape, _out_dtype(dtype, x.dtype))
    isa.tensor_tensor(out, normed, weight, alu.multiply)
    return out


@kernel_api
def where(condition: NkiTensor, x: NkiTensor, y: object, dtype: object = None) -> NkiTensor:
    """Elements of x where condition is nonzero (1.0 is True), of y elsewhere (numpy.where).

    The tiles broadcast (numpy rules, same rank); y may also be a number. The result dtype
    defaults to x's promoted with y's. Issued as: copy y into the result, turn a float
    condition into a uint8 predicate, copy x where the predicate is set (bit-exact)."""
    fn = "where"
    ctx = current()
    cond = tile_arg(condition, "condition", fn)
    x = tile_arg(x, "x", fn)
    y_tile = tile_arg(y, "y", fn) if isinstance(y, NkiTensor) else None
    if y_tile is None and (isinstance(y, bool) or not isinstance(y, Real)):
        raise KernelUsageError(f"nl.{fn}: y must be a tile or a number, got "
                               f"{type(y).__name__}")
    tiles = [t for t in (cond, x, y_tile) if t is not None]
    if len({t.ndim for t in tiles}) != 1:
        raise ShapeMismatchError(f"nl.{fn}: condition, x and y must have the same rank; got "
                                 f"{[list(t.shape) for t in tiles]}")
    shape = tuple(builtins.max(dims) for dims in zip(*(t.shape for t in tiles), strict=True))
    default = x.dtype if y_tile is None else dt.promote(x.dtype, y_tile.dtype)
    out = _tile(ctx, shape, _out_dtype(dtype, default))
    if y_tile is None:
        isa.memset(out, float(y))
    else:
        isa.tensor_copy(out, expand_to(y_tile, shape, fn))
    pred = expand_to(cond, shape, fn)
    if pred.dtype.kind not in (dt.DTypeKind.UINT, dt.DTypeKind.BOOL):
        # the predicated copy takes an unsigned predicate: condition != 0 as uint8
        flags = _tile(ctx, shape, dt.uint8)
        isa.tensor_scalar(flags, pred, alu.not_equal, 0.0)
        pred = flags
    src = expand_to(x, shape, fn)
    if src.dtype != out.dtype:
        cast = _tile(ctx, shape, out.dtype)
        isa.tensor_copy(cast, src)
        src = cast
    isa.tensor_copy_predicated(out, src, pred)
    return out
