"""Beta-1 compute instructions: matmul, transpose, activation, element-wise, reductions.

Each call follows its Neuron 2.26 page ("nki.isa.<name>"): inputs are tiles, the result is
a new tile (SBUF, PSUM for the Tensor engine), `dtype=` picks its type and `mask=` cuts the
instruction. The checks, values and the recorded instruction are those of the Beta-2
function of the same name (`tessera.nki.isa`), issued into the new tile.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.beta1.elementwise import result_dtype
from tessera.nki.beta1.index import Mask, new_iter
from tessera.nki.beta1.isa_base import (
    box_of,
    masked,
    name_arg,
    new_tile,
    op_arg,
    out_dtype,
    reduced,
    tile_arg,
)
from tessera.nki.beta1.masking import run_masked
from tessera.nki.beta1.values import produce, require_beta1, sbuf_operand
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError
from tessera.nki.isa import reduce as _reduce
from tessera.nki.runtime import kernel_api
from tessera.nki.stream import Engine
from tessera.nki.tensor import NkiTensor

_VECTOR_TRANSPOSE_MAX = 32  # "nki.isa.nc_transpose": the Vector engine's limit per side


def _cut_free(t: NkiTensor, cut: slice, what: str, fn: str) -> NkiTensor:
    """`t` cut along its (single) free axis for a mask over the output."""
    if cut == slice(0, t.free_size):
        return t
    if t.ndim != 2:
        raise KernelUsageError(f"{fn}: a mask over the output cuts {what}'s free axis; "
                               f"{what} {t.name}{list(t.shape)} must be 2-D for that")
    return t[:, cut]


# --------------------------------------------------------------------- Tensor engine
@kernel_api
def nc_matmul(stationary: NkiTensor, moving: NkiTensor, *, is_stationary_onezero: bool = False,
              is_moving_onezero: bool = False, is_transpose: bool = False,
              tile_position: tuple = (), tile_size: tuple = (), mask: object = None,
              **kwargs: object) -> NkiTensor:
    """`stationary.T @ moving` as a new fp32 PSUM tile [stationary free, moving free].

    `psum[...] += nisa.nc_matmul(...)` accumulates in the matmul itself and `psum[...] =`
    overwrites ("nki.isa.nc_matmul"). `mask` is over the output: its rows select
    stationary's free elements, its columns moving's.
    """
    fn = "nisa.nc_matmul"
    name = name_arg(fn, kwargs)
    ctx = require_beta1(fn)
    st = sbuf_operand(tile_arg(stationary, "stationary", fn), fn)
    mv = sbuf_operand(tile_arg(moving, "moving", fn), fn)
    m, n = st.free_size, mv.free_size
    p = box_of(mask, (m, n), fn)
    if p is not None and p.box is not None:
        st, mv = _cut_free(st, p.box[0], "stationary", fn), _cut_free(mv, p.box[1], "moving", fn)

    def compute(dst: NkiTensor, accumulate: bool) -> None:
        def call(d: NkiTensor) -> None:
            isa.nc_matmul(d, st, mv, is_stationary_onezero=is_stationary_onezero,
                          is_moving_onezero=is_moving_onezero, is_transpose=is_transpose,
                          tile_position=tile_position, tile_size=tile_size,
                          accumulate=accumulate, name=name)

        run_masked(mask, dst, (), call, fn, (m, n))

    # a stationary wider than the PE array gets the Beta-2 shape error, not an allocation one
    shape = (min(m, ctx.run.limits.pmax), n)
    return produce(shape, dt.float32, Buffer.PSUM, compute, accumulates=True)


@kernel_api
def nc_transpose(data: NkiTensor, *, mask: object = None, dtype: object = None,
                 engine: object = Engine.UNKNOWN, **kwargs: object) -> NkiTensor:
    """data [P, F] (free axes flattened) transposed into a new [F, P] tile. The Tensor
    engine (up to 128 x 128) writes PSUM, the Vector engine (up to 32 x 32) SBUF; with
    `engine` unknown, tiles within 32 x 32 go to the Vector engine."""
    fn = "nisa.nc_transpose"
    name = name_arg(fn, kwargs)
    ctx = require_beta1(fn)
    data = tile_arg(data, "data", fn)
    p, f = data.partitions, data.free_size
    eng = engine
    if engine is None or engine is Engine.UNKNOWN:
        small = max(p, f) <= _VECTOR_TRANSPOSE_MAX
        eng = Engine.VECTOR if small else Engine.TENSOR
    buffer = Buffer.PSUM if eng is Engine.TENSOR else Buffer.SBUF
    mask = _transposed_mask(mask, data)
    plan_ = box_of(mask, (f, p), fn)
    src = data
    if plan_ is not None and plan_.box is not None:
        rows, cols = plan_.box
        src = _cut_free(data, rows, "data", fn)[cols]

    def call(d: NkiTensor) -> None:
        isa.nc_transpose(d, src, engine=eng, name=name)

    return new_tile(fn, (min(f, ctx.run.limits.pmax), p), out_dtype(dtype, data.dtype), buffer,
                    masked(mask, (), call, fn, (f, p)))


def _transposed_mask(mask: object, data: NkiTensor) -> object:
    """A mask written over the input's iterators (`nc_transpose(x[i, j], mask=f(i, j))`, as
    the samples' ragged transposes do) as the same predicate over the [F, P] output."""
    ids = data._vars
    if not isinstance(mask, Mask) or ids is None or data.ndim != 2:
        return mask
    over = mask.over(ids)
    if over is None:
        return mask
    p, f = data.shape
    out = np.broadcast_to(over, (p, f)).T
    return Mask(out, (new_iter(f, 0, 2), new_iter(p, 1, 2)))


# --------------------------------------------------------------------- Scalar engine
@kernel_api
def activation(op: object, data: NkiTensor, *, bias: object = None, scale: object = 1.0,
               reduce_op: object = None, reduce_res: NkiTensor | None = None,
               reduce_cmd: object = isa.reduce_cmd.idle, mask: object = None,
               dtype: object = None, **kwargs: object) -> NkiTensor:
    """`op(data * scale + bias)` as a new tile (Scalar engine); `reduce_res` ([P, 1])
    receives the reduction registers in place as `reduce_cmd` leaves them."""
    fn = "nisa.activation"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)

    def call(d: NkiTensor, x: NkiTensor, b: object, s: object, r: object) -> None:
        isa.activation(d, op_arg(op), x, bias=b, scale=s, reduce_op=op_arg(reduce_op),
                       reduce_res=r, reduce_cmd=reduce_cmd, name=name)

    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data, bias, scale, reduce_res), call, fn))


@kernel_api
def activation_reduce(op: object, data: NkiTensor, *, reduce_op: object,
                      reduce_res: NkiTensor, bias: object = None, scale: object = 1.0,
                      mask: object = None, dtype: object = None, **kwargs: object
                      ) -> NkiTensor:
    """activation plus the free-axis reduction of its result written into `reduce_res`."""
    fn = "nisa.activation_reduce"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)

    def call(d: NkiTensor, x: NkiTensor, b: object, s: object, r: NkiTensor) -> None:
        isa.activation_reduce(d, op_arg(op), x, op_arg(reduce_op), r, bias=b, scale=s,
                              name=name)

    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data, bias, scale, reduce_res), call, fn))


# --------------------------------------------------------------------- Vector engine
@kernel_api
def tensor_tensor(data1: NkiTensor, data2: NkiTensor, op: object, *, dtype: object = None,
                  mask: object = None, engine: object = Engine.UNKNOWN, **kwargs: object
                  ) -> NkiTensor:
    """`data1 <op> data2` element-wise as a new tile (dtype: the wider input's)."""
    fn = "nisa.tensor_tensor"
    name = name_arg(fn, kwargs)
    a, b = tile_arg(data1, "data1", fn), tile_arg(data2, "data2", fn)

    def call(d: NkiTensor, x: NkiTensor, y: NkiTensor) -> None:
        isa.tensor_tensor(d, x, y, op_arg(op), engine=engine, name=name)

    return new_tile(fn, a.shape, result_dtype(a, b, dtype), Buffer.SBUF,
                    masked(mask, (a, b), call, fn))


@kernel_api
def tensor_scalar(data: NkiTensor, op0: object, operand0: object, reverse0: bool = False,
                  op1: object = None, operand1: object = None, reverse1: bool = False, *,
                  dtype: object = None, mask: object = None, engine: object = Engine.UNKNOWN,
                  **kwargs: object) -> NkiTensor:
    """`(data <op0> operand0) <op1> operand1` with number or [P, 1] operands."""
    fn = "nisa.tensor_scalar"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)

    def call(d: NkiTensor, x: NkiTensor, o0: object, o1: object) -> None:
        isa.tensor_scalar(d, x, op_arg(op0), o0, reverse0=reverse0, op1=op_arg(op1),
                          operand1=o1, reverse1=reverse1, engine=engine, name=name)

    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data, operand0, operand1), call, fn))


@kernel_api
def scalar_tensor_tensor(*, data: NkiTensor, op0: object, operand0: object, op1: object,
                         operand1: NkiTensor, reverse0: bool = False, reverse1: bool = False,
                         dtype: object = None, mask: object = None, **kwargs: object
                         ) -> NkiTensor:
    """`(data <op0> operand0) <op1> operand1`, operand0 a number or [P, 1], operand1 a tile."""
    fn = "nisa.scalar_tensor_tensor"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    other = tile_arg(operand1, "operand1", fn)

    def call(d: NkiTensor, x: NkiTensor, o0: object, o1: NkiTensor) -> None:
        isa.scalar_tensor_tensor(d, x, op_arg(op0), o0, op_arg(op1), o1, reverse0=reverse0,
                                 reverse1=reverse1, name=name)

    return new_tile(fn, data.shape, result_dtype(data, other, dtype), Buffer.SBUF,
                    masked(mask, (data, operand0, other), call, fn))


@kernel_api
def tensor_scalar_reduce(*, data: NkiTensor, op0: object, operand0: object, reduce_op: object,
                         reduce_res: NkiTensor, reverse0: bool = False, dtype: object = None,
                         mask: object = None, **kwargs: object) -> NkiTensor:
    """`data <op0> operand0` as a new tile; its free-axis `reduce_op` goes to `reduce_res`."""
    fn = "nisa.tensor_scalar_reduce"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)

    def call(d: NkiTensor, x: NkiTensor, o0: object, r: NkiTensor) -> None:
        isa.tensor_scalar_reduce(d, x, op_arg(op0), o0, op_arg(reduce_op), r,
                                 reverse0=reverse0, name=name)

    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data, operand0, reduce_res), call, fn))


@kernel_api
def tensor_tensor_scan(data0: NkiTensor, data1: NkiTensor, initial: object, op0: object,
                       op1: object, reverse0: bool = False, reverse1: bool = False, *,
                       dtype: object = None, mask: object = None, **kwargs: object
                       ) -> NkiTensor:
    """The per-partition scan `r[i] = (data0[i] <op0> r[i-1]) <op1> data1[i]`."""
    fn = "nisa.tensor_tensor_scan"
    name = name_arg(fn, kwargs)
    a, b = tile_arg(data0, "data0", fn), tile_arg(data1, "data1", fn)

    def call(d: NkiTensor, x: NkiTensor, y: NkiTensor, init: object) -> None:
        isa.tensor_tensor_scan(d, x, y, init, op_arg(op0), op_arg(op1), reverse0=reverse0,
                               reverse1=reverse1, name=name)

    return new_tile(fn, a.shape, result_dtype(a, b, dtype), Buffer.SBUF,
                    masked(mask, (a, b, initial), call, fn))


@kernel_api
def tensor_reduce(op: object, data: NkiTensor, axis: object, *, mask: object = None,
                  dtype: object = None, negate: bool = False, keepdims: bool = False,
                  **kwargs: object) -> NkiTensor:
    """`op` over the free axes `axis` as a new tile; the reduced axes are dropped unless
    `keepdims` (then kept with size 1). `mask` is over data's index space."""
    fn = "nisa.tensor_reduce"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    k = _reduce._reduced_axes(axis, data.ndim, fn)  # the Beta-2 axis rules
    kept = data.shape[:data.ndim - k]
    # on-chip tiles stay at least 2-D: a reduction of every free axis is [P, 1]
    shape = kept + (1,) * k if keepdims or len(kept) < 2 else kept

    def call(d: NkiTensor, x: NkiTensor) -> None:
        isa.tensor_reduce(d, op_arg(op), x, axis, negate=negate, keepdims=keepdims,
                          name=name)

    return new_tile(fn, shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    reduced(mask, data, call, fn, range(len(kept))))


@kernel_api
def tensor_partition_reduce(op: object, data: NkiTensor, *, mask: object = None,
                            dtype: object = None, **kwargs: object) -> NkiTensor:
    """`op` across the partitions of data, as a new [1, free...] tile (GpSimd engine)."""
    fn = "nisa.tensor_partition_reduce"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)

    def call(d: NkiTensor, x: NkiTensor) -> None:
        isa.tensor_partition_reduce(d, op_arg(op), x, name=name)

    return new_tile(fn, (1, *data.shape[1:]), out_dtype(dtype, data.dtype), Buffer.SBUF,
                    reduced(_free_only(mask, data, fn), data, call, fn, range(1, data.ndim)))


def _free_only(mask: object, data: NkiTensor, fn: str) -> object:
    """A mask over data's space that leaves every partition in (a partition reduction
    cannot be cut along the axis it reduces)."""
    p = box_of(mask, data.shape, fn, data)
    if p is not None and p.box is not None and p.box[0] != slice(0, data.shape[0]):
        raise KernelUsageError(f"{fn}: the mask excludes partitions of the reduced axis; "
                               "slice data instead")
    return mask


@kernel_api
def reciprocal(data: NkiTensor, *, dtype: object = None, mask: object = None,
               **kwargs: object) -> NkiTensor:
    """`1 / data` element-wise as a new tile (Vector engine)."""
    fn = "nisa.reciprocal"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data,), lambda d, x: isa.reciprocal(d, x, name=name), fn))


@kernel_api
def dropout(data: NkiTensor, prob: object, *, mask: object = None, dtype: object = None,
            **kwargs: object) -> NkiTensor:
    """data with elements zeroed with probability `prob` (a number or [P, 1] tile)."""
    fn = "nisa.dropout"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    return new_tile(fn, data.shape, out_dtype(dtype, data.dtype), Buffer.SBUF,
                    masked(mask, (data, prob), lambda d, x, pr: isa.dropout(d, x, pr, name=name),
                           fn))


@kernel_api
def bn_stats(data: NkiTensor, *, mask: object = None, dtype: object = None,
             **kwargs: object) -> NkiTensor:
    """Per-partition (count, mean, count * variance) of the even and odd elements: [P, 6]."""
    fn = "nisa.bn_stats"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    return new_tile(fn, (data.shape[0], 6), out_dtype(dtype, data.dtype), Buffer.SBUF,
                    reduced(mask, data, lambda d, x: isa.bn_stats(d, x, name=name), fn, (0,)))


@kernel_api
def bn_aggr(data: NkiTensor, *, mask: object = None, dtype: object = None,
            **kwargs: object) -> NkiTensor:
    """bn_stats triples aggregated into per-partition (mean, variance): [P, 2]."""
    fn = "nisa.bn_aggr"
    name = name_arg(fn, kwargs)
    data = tile_arg(data, "data", fn)
    return new_tile(fn, (data.shape[0], 2), out_dtype(dtype, data.dtype), Buffer.SBUF,
                    reduced(mask, data, lambda d, x: isa.bn_aggr(d, x, name=name), fn, (0,)))

