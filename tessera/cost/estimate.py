"""`estimate(op, shapes, dtype, chip, fidelity)`: the one question the planner and compiler ask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tessera import hw
from tessera.cost.fidelity import CostError, CostEstimate, Fidelity
from tessera.cost.roofline import roofline
from tessera.cost.simulated import simulated
from tessera.hw import FrozenMap, HwError
from tessera.kernels.registry import KernelDef, Op
from tessera.kernels.tune import TuneStep, check_shapes, resolve
from tessera.nki.dtypes import DType, to_dtype
from tessera.nki.errors import DTypeError
from tessera.nki.runtime import default_chip


def estimate(op: Op | str | KernelDef, shapes: Mapping[str, int], dtype: object = "bfloat16",
             chip: str | None = None, fidelity: Fidelity | str = Fidelity.ROOFLINE, *,
             cache: bool = True, progress: Callable[[TuneStep], None] | None = None
             ) -> CostEstimate:
    """Time and breakdown (compute, memory, fixed overheads) of one library op on one core.

    `op` is an `Op`, its name (`"matmul"`), or a `KernelDef`; `shapes` names exactly the
    kernel's `shape_keys`; `dtype` is a dtype name or `DType`; `chip` a chip preset
    (default `nki.default_chip()`).
    ROOFLINE is a formula over `tessera.hw`; SIMULATED tunes and profiles the library kernel
    (minutes for large shapes the first time; memoised in memory and on disk unless
    `cache=False`; `progress` receives the tuner's steps). Raises `CostError` for an op,
    shape, dtype or chip it cannot estimate."""
    fid = Fidelity(fidelity)
    try:
        defn = resolve(op)
    except KeyError as err:
        raise CostError(str(err.args[0]) if err.args else str(err)) from None
    try:
        frozen = check_shapes(defn, shapes)
    except (KeyError, ValueError) as err:
        raise CostError(str(err.args[0]) if err.args else str(err)) from None
    dt = _dtype(defn, dtype)
    try:
        spec = hw.load_chip(chip or default_chip())
    except HwError as err:
        raise CostError(f"chip {chip!r}: {err}") from None
    if fid is Fidelity.ROOFLINE:
        return roofline(defn, frozen, dt, spec)
    return simulated(defn, FrozenMap(frozen), dt, spec, cache=cache, progress=progress)


def _dtype(defn: KernelDef, dtype: object) -> DType:
    try:
        dt = to_dtype(dtype)
    except DTypeError as err:
        raise CostError(str(err)) from None
    supported = tuple(to_dtype(d).name for d in defn.dtypes)
    if dt.name not in supported:
        raise CostError(f"{defn.name} supports dtypes {', '.join(supported)}; got {dt.name}")
    return dt
