"""Cycle formulas of the GpSimd gathers (local_gather, nc_n_gather), in GpSimd cycles.

Rules have the `tessera.sim.cost_rules.Rule` signature (inst, core, cal, n), with n the
instruction's elements per partition scaled by the engine's element rate; they include
the GpSimd start and are therefore not floored at MIN_II.
"""

from __future__ import annotations

import math

from tessera.hw import CoreSpec
from tessera.nki.attrs import LocalGatherAttrs
from tessera.nki.stream import Instruction
from tessera.sim.timing_calibration import Calibration

LOCAL_GATHER_T = 4  # the page's constant t ("currently a constant 4")
LOCAL_GATHER_FIXED = 28  # the page's fixed term in C
N_GATHER_GROUP = 512  # nc_n_gather: one ISA instruction group per 512 data elements


def local_gather_cycles(inst: Instruction, core: CoreSpec, cal: Calibration,
                        n: float) -> float:
    """GPSIMD_START + (num_valid_indices x num_elem_per_idx) x C, with
    C = ((28 + t e) / (t e)) / min(4 / dtype_size, e), t = 4, e = num_elem_per_idx.

    The nki.isa.local_gather page ("Estimated instruction cost", Neuron 2.26) prints the
    product divided by C. Tessera multiplies: C falls from 8 (e = 1, fp32) to 1.2
    (e = 32), so a division would make one-element gathers 6.5x cheaper per element than
    32-element ones, against the page's own advice that gathering several contiguous
    elements per index improves throughput; multiplied, C reads as cycles per element.
    n is num_valid_indices x num_elem_per_idx (the instruction's elements per partition);
    the eight GpSimd cores gather in parallel, so one core's share is the cost.
    """
    attrs: LocalGatherAttrs = inst.attrs  # type: ignore[assignment]
    e = float(attrs.num_elem_per_idx)
    dtype_bytes = float(inst.reads[0].itemsize if inst.reads else 4)
    per_element = ((LOCAL_GATHER_FIXED + LOCAL_GATHER_T * e) / (LOCAL_GATHER_T * e)) / min(
        4.0 / dtype_bytes, e)
    return float(core.costs.gpsimd_start_cycles) + n * per_element


def n_gather_cycles(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """groups x (GPSIMD_START + n), groups = ceil(data elements per partition / 512).

    The nki.isa.nc_n_gather page gives no cost, only that the instruction is
    `ceil(elems_per_partition / 512)` groups of ISA instructions. Assumed: each group
    starts like any GpSimd instruction (the iota/affine_select start) and streams the
    indices once at one element per lane per cycle (n = indices per partition).
    """
    data_elements = inst.reads[0].elements_per_partition if inst.reads else 0
    groups = max(1, math.ceil(data_elements / N_GATHER_GROUP))
    return groups * (float(core.costs.gpsimd_start_cycles) + n)
