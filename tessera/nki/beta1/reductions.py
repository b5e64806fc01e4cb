"""Beta-1 reductions: `nl.sum/max/min/prod/mean(x, axis, *, dtype, mask, keepdims)`,
`nl.all(x, axis, *, dtype=bool, mask)` and `nl.var(x, axis, *, dtype, mask)`.

Per the Beta-1 pages ("nki.language.sum", ...): `axis` names free dimensions only, the
last contiguous run of them ([1], [1, 2], ... up to four); the result drops them (keeps
them as size 1 with keepdims; `all` and `var` have no keepdims). Each is the instruction
sequence of the Beta-2 helper (`tessera.nki.language_compose`): one Vector-engine
`tensor_reduce` (statistics in float32, cast to the output dtype); `mean` adds a scale by
1/count and gives float32 for integer input ("uses fp32 for integer input"); `var`
(population variance) is mean, centre, square, sum, scale.

A mask is over the input's index space (`i_p < n` cuts the partitions, `i_f < w` the
reduced elements): the reduction runs over the box of true elements, the output's
partitions outside it are not written. A mask that is not a box is refused (a reduction
cannot leave single input elements out). A reduction that drops every free axis gives
[P, 1]: on-chip tiles stay 2-D.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as alu
from tessera.nki.beta1.masking import plan, run_masked
from tessera.nki.beta1.values import produce, require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError
from tessera.nki.isa.constants import reduce_cmd
from tessera.nki.language_compose import free_axes, stretch, tile_arg
from tessera.nki.runtime import current, kernel_api
from tessera.nki.tensor import NkiTensor

__all__ = ["all", "max", "mean", "min", "prod", "sum", "var"]

_F32 = dt.float32
Issue = Callable[[NkiTensor, NkiTensor, tuple[int, ...]], None]  # (dst, x, axes)


def _scratch(shape: tuple[int, ...], dtype: object) -> NkiTensor:
    return new_tensor(current(), shape, dtype, Buffer.SBUF, None)


def _out_shape(x: NkiTensor, k: int, keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return x.shape[:x.ndim - k] + (1,) * k
    kept = x.shape[:x.ndim - k]
    return kept if len(kept) >= 2 else (*kept, 1)


def _reduction(fn: str, x: object, axis: object, dtype: object, mask: object,
               keepdims: bool, default: Callable[[NkiTensor], dt.DType],
               issue: Issue) -> NkiTensor:
    """A new SBUF tile computed by `issue(dst, x, axes)` under a mask over x's indices."""
    require_beta1(f"nl.{fn}")
    x = tile_arg(x, "x", fn)
    x, axis = _to_trailing(x, axis, mask)
    k = free_axes(x, axis, fn)
    axes = tuple(range(x.ndim - k, x.ndim))
    p = plan(mask, x.shape, f"nl.{fn}", x._vars)
    if p is not None and p.residual is not None:
        raise KernelUsageError(f"nl.{fn}: the mask must bound each axis of x "
                               f"{x.name}{list(x.shape)} (a box such as i_p < n & i_f < m); "
                               "a reduction cannot skip single elements")
    out_dtype = default(x) if dtype is None else dt.to_dtype(dtype)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        # restricting dst along axes the size of x's: its kept axes lead, like x's
        run_masked(mask, dst, [x], lambda d, xs: issue(d, xs, axes), f"nl.{fn}",
                   space=x.shape)

    return produce(_out_shape(x, k, keepdims), out_dtype, Buffer.SBUF, compute)


def _to_trailing(x: NkiTensor, axis: object, mask: object) -> tuple[NkiTensor, object]:
    """Free axes that are not the last ones (`axis=[2, 4]` of a 5-D pooling view, as the
    vendor's average-pool example reduces) become the last ones by a permuted view; the
    kept axes keep their order, so the result is the same."""
    picked = list(axis) if isinstance(axis, list | tuple) else [axis]
    if any(not isinstance(a, int) or not 0 < a < x.ndim for a in picked):
        return x, axis
    if mask is not None and x._vars is None:
        return x, axis  # a positional mask could not follow the permutation
    picked = sorted(set(picked))
    if picked == list(range(x.ndim - len(picked), x.ndim)):
        return x, axis
    order = [d for d in range(x.ndim) if d not in picked] + picked
    moved = x.permute(order)
    if x._vars is not None:  # a mask follows the iterators, permuted with the axes
        moved._vars = tuple(x._vars[d] for d in order)
    return moved, list(range(x.ndim - len(picked), x.ndim))


def _same(x: NkiTensor) -> dt.DType:
    return x.dtype


def _one(op: alu.AluOp, keepdims: bool) -> Issue:
    def issue(dst: NkiTensor, x: NkiTensor, axes: tuple[int, ...]) -> None:
        isa.tensor_reduce(dst, op, x, axes, keepdims=keepdims)

    return issue


@kernel_api
def sum(x: object, axis: object, *, dtype: object = None,  # noqa: A001 - NKI's name
        mask: object = None, keepdims: bool = False) -> NkiTensor:
    """Sum along the trailing free axes `axis` (numpy.sum), one tensor_reduce."""
    return _reduction("sum", x, axis, dtype, mask, keepdims, _same, _one(alu.add, keepdims))


@kernel_api
def max(x: object, axis: object, *, dtype: object = None,  # noqa: A001 - NKI's name
        mask: object = None, keepdims: bool = False) -> NkiTensor:
    """Maximum along the trailing free axes `axis` (numpy.max)."""
    return _reduction("max", x, axis, dtype, mask, keepdims, _same,
                      _one(alu.maximum, keepdims))


@kernel_api
def min(x: object, axis: object, *, dtype: object = None,  # noqa: A001 - NKI's name
        mask: object = None, keepdims: bool = False) -> NkiTensor:
    """Minimum along the trailing free axes `axis` (numpy.min)."""
    return _reduction("min", x, axis, dtype, mask, keepdims, _same,
                      _one(alu.minimum, keepdims))


@kernel_api
def prod(x: object, axis: object, *, dtype: object = None, mask: object = None,
         keepdims: bool = False) -> NkiTensor:
    """Product along the trailing free axes `axis` (numpy.prod)."""
    return _reduction("prod", x, axis, dtype, mask, keepdims, _same,
                      _one(alu.multiply, keepdims))


@kernel_api
def all(x: object, axis: object, *, dtype: object = dt.bool_,  # noqa: A001 - NKI's name
        mask: object = None) -> NkiTensor:
    """1 where every element along `axis` is nonzero, else 0 (numpy.all); bool by default.
    The page has no keepdims: the reduced axes are dropped."""
    return _reduction("all", x, axis, dtype, mask, False, _same,
                      _one(alu.logical_and, False))


def _mean_dtype(x: NkiTensor) -> dt.DType:
    return x.dtype if x.dtype.is_float else _F32


@kernel_api
def mean(x: object, axis: object, *, dtype: object = None, mask: object = None,
         keepdims: bool = False) -> NkiTensor:
    """Arithmetic mean along `axis`: a float32 sum, then one scale by 1/count (the count
    of elements the mask leaves). Integer input gives float32."""
    def issue(dst: NkiTensor, xs: NkiTensor, axes: tuple[int, ...]) -> None:
        total = _scratch(dst.shape, _F32)
        isa.tensor_reduce(total, alu.add, xs, axes, keepdims=bool(keepdims))
        count = math.prod(xs.shape[a] for a in axes)
        isa.tensor_scalar(dst, total, alu.multiply, 1.0 / count)

    return _reduction("mean", x, axis, dtype, mask, keepdims, _mean_dtype, issue)


def _var(dst: NkiTensor, x: NkiTensor, axes: tuple[int, ...]) -> None:
    """Population variance into dst: the Beta-2 helper's instructions (`var`)."""
    k = len(axes)
    shape = x.shape[:x.ndim - k] + (1,) * k  # the statistics, with the reduced axes kept
    inv = 1.0 / math.prod(x.shape[a] for a in axes)
    total = _scratch(shape, _F32)
    isa.tensor_reduce(total, alu.add, x, axes, keepdims=True)
    squares = _scratch(shape, _F32)
    if k == x.ndim - 1:
        # whole rows: the Scalar engine squares (x - mean) and sums the row in one pass
        neg_mean = _scratch(shape, _F32)
        isa.tensor_scalar(neg_mean, total, alu.multiply, -inv)
        sq = _scratch(x.shape, _F32)
        isa.activation(sq, alu.square, x, bias=neg_mean, reduce_op=alu.add,
                       reduce_res=squares, reduce_cmd=reduce_cmd.reset_reduce)
    else:
        avg = _scratch(shape, _F32)
        isa.tensor_scalar(avg, total, alu.multiply, inv)
        centred = _scratch(x.shape, _F32)
        isa.tensor_tensor(centred, x, stretch(avg, x.shape, "var"), alu.subtract)
        sq = _scratch(x.shape, _F32)
        isa.tensor_tensor(sq, centred, centred, alu.multiply)
        isa.tensor_reduce(squares, alu.add, sq, axes, keepdims=True)
    isa.tensor_scalar(dst, squares.reshape(dst.shape), alu.multiply, inv)


@kernel_api
def var(x: object, axis: object, *, dtype: object = None, mask: object = None
        ) -> NkiTensor:
    """Population variance along `axis` (numpy.var, ddof=0), the reduced axes dropped."""
    return _reduction("var", x, axis, dtype, mask, False, _same, _var)
