"""Beta-1 pattern, selection and top-8 instructions: iota, affine_select, range_select,
select_reduce, sequence_bounds, max8, nc_find_index8, nc_match_replace8.

The Neuron 2.26 pages ("nki.isa.iota", "nki.isa.affine_select") describe the GpSimd
pattern as an affine expression of `nl.arange` indices; the Beta-2 instructions take it
as `pattern` / `offset` / `channel_multiplier`. The expression's values over the tile give
those numbers: the value at the origin is the offset, one step down the partitions the
multiplier, one step along each free axis that axis's step (`isa_base.affine_form`).
"""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki import ops as _ops
from tessera.nki.beta1.index import IndexExpr, Mask
from tessera.nki.beta1.isa_base import (
    affine_form,
    box_of,
    check_dtype,
    in_place,
    masked,
    name_arg,
    new_tile,
    op_arg,
    out_dtype,
    tile_arg,
)
from tessera.nki.beta1.misc import fp32  # nisa.fp32 is nl.fp32
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import KernelUsageError
from tessera.nki.runtime import add_note, current, kernel_api
from tessera.nki.tensor import NkiTensor

# the comparison names a single-comparison Mask records (`Mask.affine`)
_COMPARE = {"lt": _ops.less, "le": _ops.less_equal, "gt": _ops.greater,
            "ge": _ops.greater_equal, "eq": _ops.equal, "ne": _ops.not_equal}


def _cut_expr(values: np.ndarray, shape: tuple[int, ...], box: tuple[slice, ...] | None
              ) -> tuple[np.ndarray, tuple[int, ...]]:
    """The expression's values over the instruction's region (the mask's box); an
    expression over fewer axes covers the leading ones, as masks do."""
    if values.ndim < len(shape):
        values = values.reshape(values.shape + (1,) * (len(shape) - values.ndim))
    try:
        full = np.broadcast_to(values, shape)
    except ValueError:
        raise KernelUsageError(f"an index expression over {list(values.shape)} does not fit "
                               f"the tile {list(shape)}") from None
    if box is None:
        return full, shape
    cut = full[box]
    return cut, cut.shape


# --------------------------------------------------------------------- GpSimd patterns
@kernel_api
def iota(expr: object, dtype: object, *, mask: object = None, **kwargs: object) -> NkiTensor:
    """A new SBUF tile of `dtype` holding the affine index expression `expr` (int32 math);
    the tile has the expression's shape (`nl.arange(512)[None, :]` gives [1, 512])."""
    fn = "nisa.iota"
    name = name_arg(fn, kwargs)
    if not isinstance(expr, IndexExpr):
        raise KernelUsageError(f"{fn}: expr must be an affine expression of nl.arange / "
                               f"nl.mgrid indices, got {type(expr).__name__}")
    shape = tuple(expr.shape)
    if len(shape) < 2:
        raise KernelUsageError(f"{fn}: expr has shape {list(shape)}; place it on the "
                               "partition or free axis with [:, None] or [None, :]")
    p = box_of(mask, shape, fn)
    values, region = _cut_expr(expr.values, shape, None if p is None else p.box)

    def call(d: NkiTensor) -> None:
        pattern, offset, mult = affine_form(values, region, fn)
        isa.iota(d, pattern, offset=offset, channel_multiplier=mult, name=name)

    return new_tile(fn, shape, dt.to_dtype(dtype), Buffer.SBUF, masked(mask, (), call, fn))


@kernel_api
def affine_select(pred: object, on_true_tile: NkiTensor, on_false_value: object, *,
                  mask: object = None, dtype: object = None, **kwargs: object) -> NkiTensor:
    """on_true_tile where the single affine comparison `pred` holds, else on_false_value
    (GpSimd engine), e.g. a causal mask `i_p >= i_f`."""
    fn = "nisa.affine_select"
    name = name_arg(fn, kwargs)
    src = tile_arg(on_true_tile, "on_true_tile", fn)
    if src.buffer is Buffer.PSUM:
        # GpSimd cannot read PSUM: the tile is copied to SBUF first (one Vector-engine copy,
        # which the compiler must insert for the samples' `affine_select(qk_psum[...])`)
        staged = new_tensor(current(), src.shape, src.dtype, Buffer.SBUF, None)
        isa.tensor_copy(staged, src)
        add_note("nisa.affine_select on a PSUM tile: copied to SBUF first (the GpSimd engine "
                 "cannot read PSUM); the copy is timed")
        src = staged
    if not isinstance(pred, Mask):
        raise KernelUsageError(f"{fn}: pred must be one comparison of nl.arange expressions "
                               f"(e.g. i_p >= i_f), got {type(pred).__name__}")
    affine = getattr(pred, "affine", None)
    if affine is None:
        raise KernelUsageError(f"{fn}: pred must be ONE comparison of affine index "
                               "expressions (no & or |, per the page); use nl.where for a "
                               "compound predicate")
    diff, cmp = affine
    if cmp not in _COMPARE:
        raise KernelUsageError(f"{fn}: pred compares with {cmp!r}; affine_select takes one "
                               f"of {', '.join(_COMPARE)}")
    shape = src.shape
    p = box_of(mask, shape, fn)
    values, region = _cut_expr(diff.values, shape, None if p is None else p.box)

    def call(d: NkiTensor, x: NkiTensor) -> None:
        pattern, offset, mult = affine_form(values, region, fn)
        isa.affine_select(d, pattern, mult, x, on_false_value, cmp_op=_COMPARE[cmp],
                          offset=offset, name=name)

    return new_tile(fn, shape, out_dtype(dtype, src.dtype), Buffer.SBUF,
                    masked(mask, (src,), call, fn))


# --------------------------------------------------------------------- Vector selects
@kernel_api
def range_select(*, on_true_tile: NkiTensor, comp_op0: object, comp_op1: object,
                 bound0: object, bound1: object, reduce_cmd: object = isa.reduce_cmd.idle,
                 reduce_res: NkiTensor | None = None, reduce_op: object = np.amax,
                 range_start: object = 0, on_false_value: object = fp32.min,
                 mask: object = None, dtype: object = None, **kwargs: object) -> NkiTensor:
    """on_true_tile where `comp_op0(i, bound0) & comp_op1(i, bound1)` for the free index
    `i = range_start + j`, else on_false_value; optional row maximum into reduce_res
    (Vector engine, NeuronCore-v3+)."""
    fn = "nisa.range_select"
    name = name_arg(fn, kwargs)
    src = tile_arg(on_true_tile, "on_true_tile", fn)

    def call(d: NkiTensor, x: NkiTensor, b0: object, b1: object, r: object) -> None:
        isa.range_select(d, x, op_arg(comp_op0), op_arg(comp_op1), b0, b1,
                         reduce_cmd=reduce_cmd, reduce_res=r, reduce_op=op_arg(reduce_op),
                         range_start=range_start, on_false_value=on_false_value, name=name)

    return new_tile(fn, src.shape, out_dtype(dtype, src.dtype), Buffer.SBUF,
                    masked(mask, (src, bound0, bound1, reduce_res), call, fn))


@kernel_api
def select_reduce(*, dst: NkiTensor, predicate: NkiTensor, on_true: NkiTensor,
                  on_false: object, reduce_res: NkiTensor | None = None,
                  reduce_cmd: object = isa.reduce_cmd.idle, reduce_op: object = np.amax,
                  reverse_pred: bool = False, mask: object = None, dtype: object = None,
                  **kwargs: object) -> None:
    """dst = on_true where predicate (else on_false), in place; optional row maximum into
    reduce_res (Vector engine)."""
    fn = "nisa.select_reduce"
    name = name_arg(fn, kwargs)
    check_dtype(dtype, tile_arg(dst, "dst", fn), fn)

    def call(d: NkiTensor, pr: NkiTensor, x: NkiTensor, f: object, r: object) -> None:
        isa.select_reduce(d, pr, x, f, reduce_res=r, reduce_cmd=reduce_cmd,
                          reduce_op=op_arg(reduce_op), reverse_pred=reverse_pred, name=name)

    in_place(fn, dst, mask, (predicate, on_true, on_false, reduce_res), call)


@kernel_api
def sequence_bounds(*, segment_ids: NkiTensor, dtype: object = None) -> NkiTensor:
    """[1, 2, N] (start, end) of each element's segment of the [1, N] ids (GpSimd)."""
    fn = "nisa.sequence_bounds"
    ids = tile_arg(segment_ids, "segment_ids", fn)
    n = ids.free_size
    return new_tile(fn, (1, 2, n), out_dtype(dtype, ids.dtype), Buffer.SBUF,
                    lambda d: isa.sequence_bounds(d, ids))


# --------------------------------------------------------------------- top-8
@kernel_api
def max8(*, src: NkiTensor, mask: object = None, dtype: object = None,
         **kwargs: object) -> NkiTensor:
    """The 8 largest values of each partition, descending: [P, 8]."""
    fn = "nisa.max8"
    name = name_arg(fn, kwargs)
    src = tile_arg(src, "src", fn)
    return new_tile(fn, (src.shape[0], 8), out_dtype(dtype, src.dtype), Buffer.SBUF,
                    _rows_only(mask, src, lambda d, x: isa.max8(d, x, name=name), fn))


@kernel_api
def nc_find_index8(*, data: NkiTensor, vals: NkiTensor, mask: object = None,
                   dtype: object = None, **kwargs: object) -> NkiTensor:
    """Index of the first occurrence of each of the 8 vals per partition: [P, 8] uint32
    (or uint16)."""
    fn = "nisa.nc_find_index8"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    vals = tile_arg(vals, "vals", fn)

    def call(d: NkiTensor, x: NkiTensor) -> None:
        isa.nc_find_index8(d, x, vals if d.partitions == vals.partitions
                           else vals[0:d.partitions], name=name)

    return new_tile(fn, (data.shape[0], 8), out_dtype(dtype, dt.uint32), Buffer.SBUF,
                    _rows_only(mask, data, call, fn))


@kernel_api
def nc_match_replace8(*, data: NkiTensor, vals: NkiTensor, imm: object,
                      dst_idx: NkiTensor | None = None, mask: object = None,
                      dtype: object = None, **kwargs: object) -> NkiTensor:
    """data with the first occurrence of each of the 8 vals replaced by imm, as a new tile;
    dst_idx, if given, receives the matched positions in place."""
    fn = "nisa.nc_match_replace8"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    vals = tile_arg(vals, "vals", fn)

    def call(d: NkiTensor, x: NkiTensor) -> None:
        rows = slice(0, d.partitions)
        idx = dst_idx if dst_idx is None or dst_idx.partitions == d.partitions \
            else dst_idx[rows]
        isa.nc_match_replace8(d, x, vals if vals.partitions == d.partitions else vals[rows],
                              imm, dst_idx=idx, name=name)

    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    _rows_only(mask, data, call, fn))


def _rows_only(mask: object, data: NkiTensor, call: object, fn: str) -> object:
    """The top-8 instructions read whole rows: a mask may only drop partitions (from the
    first); the other operands follow data's first rows."""
    p = box_of(mask, data.shape, fn, data)
    if p is not None and p.box is not None and (
            p.residual is not None or p.box[0].start != 0
            or any(b != slice(0, n) for b, n in zip(p.box[1:], data.shape[1:], strict=True))):
        raise KernelUsageError(f"{fn}: the mask may only bound the partitions (i_p < n); "
                               "the instruction reads whole rows")

    def issue(dst: NkiTensor) -> None:
        if p is None:
            call(dst, data)  # type: ignore[operator]
        elif p.box is not None:
            rows = p.box[0]
            call(dst[rows], data[rows])  # type: ignore[operator]

    return issue
