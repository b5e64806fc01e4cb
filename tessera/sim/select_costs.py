"""Cycle formulas of select_reduce, exponential and sequence_bounds, in their engine's cycles.

Rules have the `tessera.sim.cost_rules.Rule` signature (inst, core, cal, n), with n the
instruction's elements per partition scaled by the engine's element rate. range_select and
tensor_scalar_cumulative need no formula of their own (see COST_RULES).
"""

from __future__ import annotations

from tessera.hw import CoreSpec
from tessera.nki.attrs import ExponentialAttrs, SelectReduceAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.stream import Instruction
from tessera.sim.timing_calibration import Calibration

# [A4] (NeuronCore-v4 architecture page, "Fast Exponential Evaluation"): the Vector
# engine's exponential runs "at 4x the throughput compared to the nisa.activation(op=nl.exp)
# instruction on the Scalar Engine"
EXP_SPEEDUP_OVER_SCALAR = 4.0
BOUNDS_PASSES = 2  # sequence_bounds: a forward pass for the starts, a backward one for ends


def _reduce_extra(core: CoreSpec, cal: Calibration, cycles: float) -> float:
    """The accumulation's extra MIN_II, as [ISA226] prices tensor_scalar_reduce and
    activation_reduce: max(MIN_II, N) + MIN_II."""
    min_ii = float(core.costs.min_ii_cycles)
    return max(min_ii, cycles) + cal.reduce_extra_min_ii * min_ii


def select_reduce_cycles(inst: Instruction, core: CoreSpec, cal: Calibration,
                         n: float) -> float:
    """Not documented. Priced as the two-input Vector instructions it resembles
    (tensor_tensor / tensor_copy_predicated [ISA226]): N when predicate or on_true is read
    from PSUM, 2N when both come from SBUF; an accumulating reduce_cmd adds the
    tensor_scalar_reduce MIN_II."""
    attrs: SelectReduceAttrs = inst.attrs  # type: ignore[assignment]
    psum_input = any(ap.buffer is Buffer.PSUM for ap in inst.reads[:2])
    per = cal.one_input_per_element if psum_input else cal.two_input_per_element
    cycles = per * n
    return cycles if attrs.reduce_cmd == "idle" else _reduce_extra(core, cal, cycles)


def exponential_cycles(inst: Instruction, core: CoreSpec, cal: Calibration,
                       n: float) -> float:
    """[A4] a quarter of the Scalar engine's exp (activation: max(MIN_II, N) at its element
    rate [ISA226]), converted to Vector cycles; an accumulating reduce_cmd adds the
    activation_reduce MIN_II. n (the Vector element rate) is not used: the page states the
    rate relative to the Scalar engine."""
    attrs: ExponentialAttrs = inst.attrs  # type: ignore[assignment]
    scalar = core.scalar
    scalar_cycles = (cal.one_input_per_element * inst.free_elements * scalar.lanes
                     / scalar.elements_per_cycle_for(None))
    seconds = scalar_cycles / scalar.clock_hz / EXP_SPEEDUP_OVER_SCALAR
    cycles = seconds * core.vector.clock_hz
    return cycles if attrs.reduce_cmd == "idle" else _reduce_extra(core, cal, cycles)


def sequence_bounds_cycles(inst: Instruction, core: CoreSpec, cal: Calibration,
                           n: float) -> float:
    """Not documented. Charged like the other GpSimd instructions (GPSIMD_START + N,
    [ISA226] iota / affine_select) with one pass over the ids per output row: start + 2N.
    One GpSimd core serves the single partition."""
    return float(core.costs.gpsimd_start_cycles) + BOUNDS_PASSES * n
