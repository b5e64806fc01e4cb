"""The Vector engine's accumulation registers: one float32 per partition lane, shared by
the accumulating Vector instructions (exponential, range_select, select_reduce and
tensor_scalar_cumulative; the pages of all four say the registers are shared).

`reduce_cmd` decides what an instruction does with them: `reset_reduce` starts from the
operator's identity, `load_reduce` from a given value, `reduce` continues from what the
previous accumulating instruction left, and `idle` does not accumulate. The pages warn that
an `idle` instruction may still change the registers ("accumulator state unknown"), so
Tessera marks the lanes undefined after one and rejects a following `reduce` on them, as it
does a `reduce` before anything set them. The registers persist across the instructions of
one core and are modelled per core; the check also runs in symbolic traces.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from tessera.nki.errors import KernelUsageError, ShapeMismatchError
from tessera.nki.isa.constants import reduce_cmd as ReduceCmd
from tessera.nki.runtime import CoreContext
from tessera.nki.tensor import NkiTensor

LOAD_REDUCE = ReduceCmd.load_reduce


class _Lanes:
    """Register values and whether each lane holds a defined value."""

    __slots__ = ("defined", "values")

    def __init__(self, lanes: int) -> None:
        self.values = np.zeros(lanes, dtype=np.float32)
        self.defined = np.zeros(lanes, dtype=bool)


_REGS: weakref.WeakKeyDictionary[CoreContext, _Lanes] = weakref.WeakKeyDictionary()


def _lanes(ctx: CoreContext) -> _Lanes:
    regs = _REGS.get(ctx)
    if regs is None:
        regs = _Lanes(ctx.run.limits.pmax)
        _REGS[ctx] = regs
    return regs


def start_partition(t: NkiTensor) -> int:
    """The first partition (register lane) a tile occupies."""
    per = t.storage.partition_elems
    return t.offset // per if per else 0


def lanes(t: NkiTensor) -> slice:
    """The register lanes of a tile's partitions."""
    start = start_partition(t)
    return slice(start, start + t.partitions)


def reduce_command(cmd: object, allowed: Iterable[ReduceCmd | None], op: str) -> ReduceCmd:
    """`cmd` as a nisa.reduce_cmd member that the instruction's page lists."""
    if not isinstance(cmd, ReduceCmd):
        raise KernelUsageError(f"{op}: reduce_cmd must be a nisa.reduce_cmd member, got "
                               f"{cmd!r}")
    names = [c.value for c in allowed if c is not None]
    if cmd.value not in names:
        raise KernelUsageError(f"{op}: reduce_cmd={cmd.value} is not supported; use one of "
                               f"{', '.join(names)}")
    return cmd


def reduce_result(res: NkiTensor | None, partitions: int, cmd: ReduceCmd, op: str) -> None:
    """reduce_res, when given, is [P, 1] and reads an accumulator this instruction set."""
    if res is None:
        return
    if res.partitions != partitions or res.free_size != 1:
        raise ShapeMismatchError(f"{op}: reduce_res {res.name}{list(res.shape)} must be "
                                 f"[{partitions}, 1] (one value per partition)")
    if cmd is ReduceCmd.idle:
        raise KernelUsageError(f"{op}: reduce_res needs an accumulating reduce_cmd "
                               "(reset_reduce or reduce); with idle the Vector engine's "
                               "accumulator is undefined")


def advance(ctx: CoreContext, lanes: slice, cmd: ReduceCmd, op: str) -> None:
    """Check that `reduce` continues defined lanes, then record what `cmd` leaves."""
    regs = _lanes(ctx)
    if cmd is ReduceCmd.reduce and not regs.defined[lanes].all():
        raise KernelUsageError(f"{op}: reduce_cmd=reduce continues the Vector engine's "
                               "accumulator, but nothing has set it since the kernel started "
                               "or since an instruction ran with reduce_cmd=idle; start with "
                               "reset_reduce")
    regs.defined[lanes] = cmd is not ReduceCmd.idle


def initial(ctx: CoreContext, lanes: slice, cmd: ReduceCmd, identity: float,
            loaded: np.ndarray | float | None = None) -> np.ndarray:
    """The [P] float32 values the accumulation starts from: the operator's identity after
    reset_reduce, `loaded` after load_reduce, the registers' values after reduce."""
    regs = _lanes(ctx)
    p = lanes.stop - lanes.start
    if cmd is ReduceCmd.reduce:
        return regs.values[lanes].copy()
    if cmd is LOAD_REDUCE:
        start = 0.0 if loaded is None else loaded
        return np.broadcast_to(np.asarray(start, dtype=np.float32).reshape(-1), (p,)).copy()
    return np.full(p, identity, dtype=np.float32)


def store(ctx: CoreContext, lanes: slice, values: np.ndarray) -> np.ndarray:
    """Leave `values` ([P] float32) in the registers; returns them as a [P, 1] column."""
    regs = _lanes(ctx)
    regs.values[lanes] = values
    return values.reshape(-1, 1)


def fold_max(ctx: CoreContext, lanes: slice, cmd: ReduceCmd, values: np.ndarray,
             res: NkiTensor | None) -> None:
    """Fold each row's maximum of `values` ([P, F] float32) into the registers unless `cmd`
    is idle (reset_reduce starts from -inf); reduce_res, if given, receives the result."""
    if cmd is ReduceCmd.idle:
        return
    start = initial(ctx, lanes, cmd, -np.inf)
    total = store(ctx, lanes, np.maximum(start, values.max(axis=1)))
    if res is not None:
        res.write(total)
