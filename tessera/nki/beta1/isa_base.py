"""Plumbing shared by the Beta-1 `nisa.*` calls (`tessera.nki.beta1.isa`).

A Beta-1 instruction call returns a new tile ("nki.isa" pages of Neuron 2.26: "Returns: an
output tile"); here it allocates the tile, issues the Beta-2 destination-passing function
into it (`tessera.nki.isa`) and hands it to `values.produce`, so that an assignment that
follows issues the call straight into its target. `mask=` cuts the instruction to the
mask's box (`masking.run_masked`).

A call that touches engine state (reduction registers, accumulators, random number
generators) is issued a second time when its result is assigned; `values.produce` puts
that state back before the second issue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import ops
from tessera.nki.beta1.masking import MaskPlan, plan, run_masked
from tessera.nki.beta1.values import produce, require_beta1
from tessera.nki.buffers import Buffer
from tessera.nki.errors import DTypeError, KernelUsageError
from tessera.nki.tensor import NkiTensor

# numpy functions Beta-1 kernels pass as `op=` that `ops.to_op` does not know yet
# ("NKI API Common Fields": the ALU operator table lists their numpy equivalents)
_NUMPY_OPS: dict[object, ops.AluOp] = {
    np.amax: ops.maximum, np.amin: ops.minimum, np.less_equal: ops.less_equal,
    np.greater_equal: ops.greater_equal, np.not_equal: ops.not_equal,
    np.bitwise_or: ops.bitwise_or, np.bitwise_xor: ops.bitwise_xor,
    np.left_shift: ops.left_shift, np.invert: ops.invert, np.logical_and: ops.logical_and,
    np.logical_or: ops.logical_or, np.logical_xor: ops.logical_xor,
    np.logical_not: ops.logical_not, np.mod: ops.mod, np.fmod: ops.fmod, np.copy: ops.copy,
    np.tanh: ops.tanh, np.log: ops.log, np.abs: ops.abs, np.negative: ops.negative,
    np.sin: ops.sin, np.cos: ops.cos, np.tan: ops.tan, np.square: ops.square,
    np.reciprocal: ops.reciprocal, np.sign: ops.sign, np.floor: ops.floor,
    np.ceil: ops.ceil, np.trunc: ops.trunc, np.arctan: ops.arctan,
    # reductions name their operator by the numpy reduction (`reduce_op=np.sum`)
    np.sum: ops.add, np.max: ops.maximum, np.min: ops.minimum, np.prod: ops.multiply,
}


_BY_REDUCTION: dict[object, ops.AluOp] = {}


def op_arg(value: object) -> object:
    """An `op=` argument as the Beta-2 functions take it (numpy functions mapped, and the
    nl reductions a reduce_op may name: "reduce_op can be nl.add, ..., nl.max or nl.min")."""
    if not _BY_REDUCTION:  # filled once: the nl reductions build on this package
        from tessera.nki.beta1 import reductions

        _BY_REDUCTION.update({reductions.max: ops.maximum, reductions.min: ops.minimum,
                              reductions.sum: ops.add, reductions.prod: ops.multiply})
    try:
        return _BY_REDUCTION.get(value) or _NUMPY_OPS.get(value, value)  # type: ignore
    except TypeError:  # unhashable: let the Beta-2 check name it
        return value


def name_arg(fn: str, kwargs: dict[str, object]) -> str | None:
    """The `name=` among a call's extra keywords; any other one is a mistake."""
    extra = sorted(k for k in kwargs if k != "name")
    if extra:
        raise KernelUsageError(f"{fn}: unexpected keyword argument(s) {', '.join(extra)}")
    name = kwargs.get("name")
    return name if isinstance(name, str) else None


def tile_arg(value: object, what: str, fn: str) -> NkiTensor:
    if not isinstance(value, NkiTensor):
        raise KernelUsageError(f"{fn}: {what} must be a tile, got {type(value).__name__}")
    return value


def out_dtype(dtype: object, default: dt.DType) -> dt.DType:
    return default if dtype is None else dt.to_dtype(dtype)


def check_dtype(dtype: object, dst: NkiTensor, fn: str) -> None:
    """`dtype=` of a call writing in place must be dst's (the destination decides)."""
    if dtype is not None and dt.to_dtype(dtype) != dst.dtype:
        raise DTypeError(f"{fn}: dtype={dt.to_dtype(dtype).name} differs from dst "
                         f"{dst.name}'s {dst.dtype.name}; the output is written in place")


def box_of(mask: object, space: tuple[int, ...], fn: str, like: object = None
           ) -> MaskPlan | None:
    """The mask's plan over `space` (None: no mask or all true); `like` is a tile of that
    index space whose iterators name its axes (the mask then applies by iterator)."""
    layout = getattr(like, "_vars", None)
    if layout is not None and getattr(like, "shape", None) != space:
        layout = None
    return plan(mask, space, fn, layout)


# ----------------------------------------------------------------------- results
Issue = Callable[[NkiTensor], None]


def masked(mask: object, operands: Sequence[object], call: Callable[..., object], fn: str,
           space: tuple[int, ...] | None = None) -> Issue:
    """Issue `call(dst, *operands)` under `mask` (over `space`, default dst's shape), the
    operands cut to the mask's box along the axes they share with that space."""
    return lambda dst: run_masked(mask, dst, operands, call, fn, space)


def reduced(mask: object, data: NkiTensor, call: Callable[..., object], fn: str,
            shared: Sequence[int]) -> Issue:
    """Issue `call(dst, data)` for a reduction under a mask over data's index space: data
    is cut to the box, dst only along its axes `shared` with data (same position)."""
    def issue(dst: NkiTensor) -> None:
        p = box_of(mask, data.shape, fn, data)
        if p is None:
            call(dst, data)
            return
        if p.box is None:
            return
        if p.residual is not None:
            raise KernelUsageError(f"{fn}: the mask must bound each axis (a box) on a "
                                   "reduction")
        key = [slice(None)] * dst.ndim
        for axis in shared:
            key[axis] = p.box[axis]
        call(dst[tuple(key)], data[p.box])

    return issue


def new_tile(fn: str, shape: tuple[int, ...], dtype: dt.DType, buffer: Buffer, issue: Issue
             ) -> NkiTensor:
    """A new tile holding what `issue(tile)` writes, assignable without a copy."""
    require_beta1(fn)

    def compute(dst: NkiTensor, _acc: bool) -> None:
        issue(dst)

    # an SBUF result may be assigned into a pre-declared PSUM tile (the pages' rule for
    # Vector/Scalar results); Tensor-engine results stay in PSUM
    targets = (Buffer.SBUF, Buffer.PSUM) if buffer is Buffer.SBUF else (buffer,)
    return produce(shape, dtype, buffer, compute, buffers=targets)


def in_place(fn: str, dst: object, mask: object, operands: Sequence[object],
             call: Callable[..., object]) -> None:
    """`call(dst, *operands)` under `mask` for the calls that write a given tile."""
    require_beta1(fn)
    run_masked(mask, tile_arg(dst, "dst", fn), operands, call, fn)


# ----------------------------------------------------------------------- affine forms
def affine_form(values: object, shape: tuple[int, ...], fn: str
                ) -> tuple[list[list[int]], int, int]:
    """(pattern, offset, channel_multiplier) of the iota expression equal to `values`
    (an integer array over the index space, broadcast to `shape`): the offset is the value
    at the origin, the multiplier and each free step the difference one step along an
    axis; the expression must be affine (one step per axis)."""
    try:
        full = np.broadcast_to(np.asarray(values, dtype=np.int64), shape)
    except ValueError:
        raise KernelUsageError(f"{fn}: an expression over {list(np.shape(values))} does not "
                               f"fit the tile {list(shape)}") from None
    if full.size == 0:
        raise KernelUsageError(f"{fn}: empty index space {list(shape)}")
    origin = (0,) * len(shape)
    base = int(full[origin])

    def step(axis: int) -> int:
        if shape[axis] < 2:
            return 0
        at = list(origin)
        at[axis] = 1
        return int(full[tuple(at)]) - base

    steps = [step(a) for a in range(len(shape))]
    rebuilt = np.full(shape, base, dtype=np.int64)
    for axis, s in enumerate(steps):
        idx = np.arange(shape[axis], dtype=np.int64).reshape(
            [shape[axis] if a == axis else 1 for a in range(len(shape))])
        rebuilt = rebuilt + idx * s
    if not np.array_equal(rebuilt, full):
        raise KernelUsageError(f"{fn}: the expression is not affine in nl.arange indices "
                               "(one constant step per axis, e.g. i_p * 512 + i_f)")
    pattern = [[steps[a], shape[a]] for a in range(1, len(shape)) if shape[a] > 1]
    if len(pattern) > 4:
        raise KernelUsageError(f"{fn}: the expression varies along {len(pattern)} free axes; "
                               "the GpSimd pattern has at most 4")
    if not pattern:
        pattern = [[0, max(1, math.prod(shape[1:]))]]
    return pattern, base, steps[0] if shape else 0
