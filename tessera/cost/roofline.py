"""ROOFLINE: time = max(compute, memory) + one DMA's fixed latency, from `tessera.hw` alone.

- compute_s = `KernelDef.flops` / the peak of the engine that does them: the Tensor engine
  peak for the dtype's precision (`core.tensor.peak_flops`) for matmul and attention; for
  every other op the Vector, Scalar and GpSimd engines together, each at
  `elements_per_cycle_for(precision) x clock_hz`, times the fastest per-element rule of
  the cost model (bf16 add/max reduce and zero memset at N/2 cycles, `sim` calibration),
  counting one FLOP per element per ALU or activation function.
- memory_s = `KernelDef.hbm_bytes` (read inputs once, write outputs once) / the smaller of
  the core's HBM share (`chip.hbm_bytes_per_s_per_core`) and its DMA engines' theoretical
  rate (`core.dma.core_bytes_per_s`; the HBM share is the smaller on trn1 and trn2).
- overhead_s = one DMA fixed latency (`core.dma.fixed_latency_s`, or the hardware-DGE
  latency where the core has one, whichever is smaller): no byte moves before the first
  DMA starts, and no engine works before its data arrives.

Every term is a lower bound on what the simulator can achieve, so ROOFLINE <= SIMULATED.
"""

from __future__ import annotations

from collections.abc import Mapping

from tessera import hw
from tessera.cost.fidelity import Bound, CostError, CostEstimate, Fidelity, Latency
from tessera.hw import Engine, FrozenMap, MemoryKind, Precision
from tessera.kernels.registry import KernelDef, Op
from tessera.nki.dtypes import DType
from tessera.sim.cost_rules import precision_of
from tessera.sim.timing_calibration import calibration_for

# ops whose FLOPs are matmuls on the Tensor engine (their element-wise parts are a small
# fraction and run concurrently on the other engines)
TENSOR_OPS = frozenset({Op.MATMUL, Op.BATCHED_MATMUL, Op.FLASH_ATTENTION,
                        Op.DECODE_ATTENTION})
_STREAMING = ("vector", "scalar", "gpsimd")


def precision(dtype: DType) -> Precision:
    """The rate class of a dtype (integer data counts at the BF16 rate)."""
    return precision_of(dtype.name) or Precision.BF16


def tensor_peak_flops(chip: hw.ChipSpec, dtype: DType) -> float:
    """Dense Tensor engine peak of one core for `dtype`, in FLOP/s."""
    return chip.core.tensor.peak_flops(precision(dtype))


def streaming_peak_per_s(chip: hw.ChipSpec, dtype: DType) -> float:
    """Element operations per second of the Vector, Scalar and GpSimd engines together, at
    the fastest per-element rule the cost model has (an upper bound for any kernel)."""
    core = chip.core
    cal = calibration_for(core.name, core.version)
    fastest_cycles_per_element = min(cal.fast_reduce_per_element,
                                     cal.fast_memset_per_element,
                                     cal.one_input_per_element)
    p = precision(dtype)
    total = 0.0
    for name in _STREAMING:
        engine = getattr(core, name)
        total += engine.elements_per_cycle_for(p) * engine.clock_hz
    return total / fastest_cycles_per_element


def fixed_overhead_s(chip: hw.ChipSpec) -> float:
    """The smallest fixed latency of a DMA on this core."""
    dma = chip.core.dma
    latencies = [dma.fixed_latency_s]
    if dma.hw_dge_per_core and dma.hw_dge_latency_s is not None:
        latencies.append(dma.hw_dge_latency_s)
    return min(latencies)


def memory_term(hbm_bytes: float, chip: hw.ChipSpec) -> tuple[float, Bound]:
    """Seconds to move `hbm_bytes` through one core and what bounds it: the HBM share, or
    the core's DMA engines at their theoretical rate when those are slower (every HBM byte
    crosses them)."""
    hbm_share = chip.hbm_bytes_per_s_per_core
    dma_rate = chip.core.dma.core_bytes_per_s
    bound = MemoryKind.HBM if hbm_share <= dma_rate else Engine.DMA
    return hbm_bytes / min(hbm_share, dma_rate), bound


def roofline(defn: KernelDef, shapes: Mapping[str, int], dtype: DType,
             chip: hw.ChipSpec) -> CostEstimate:
    """The ROOFLINE estimate of `defn` at `shapes` (already checked) on one core of `chip`."""
    flops = float(defn.flops(shapes))
    hbm_bytes = float(defn.hbm_bytes(shapes, dtype.itemsize))
    if flops < 0 or hbm_bytes < 0:
        raise CostError(f"{defn.name}: negative work at {dict(shapes)} "
                        f"(flops={flops}, hbm_bytes={hbm_bytes})")
    on_tensor = defn.op in TENSOR_OPS
    peak = tensor_peak_flops(chip, dtype) if on_tensor else streaming_peak_per_s(chip, dtype)
    compute_s = flops / peak
    memory_s, memory_bound = memory_term(hbm_bytes, chip)
    overhead_s = fixed_overhead_s(chip)
    if overhead_s > max(compute_s, memory_s):
        bound = Latency.FIXED
    elif compute_s >= memory_s:
        bound = Engine.TENSOR if on_tensor else Engine.VECTOR
    else:
        bound = memory_bound
    return CostEstimate(
        op=defn.op, kernel=defn.name, shapes=FrozenMap(shapes), dtype=dtype.name,
        chip=chip.name, fidelity=Fidelity.ROOFLINE,
        time_s=max(compute_s, memory_s) + overhead_s, compute_s=compute_s,
        memory_s=memory_s, overhead_s=overhead_s, bound=bound, flops=flops,
        hbm_bytes=hbm_bytes, peak_compute_per_s=peak,
        peak_hbm_bytes_per_s=chip.hbm_bytes_per_s_per_core)
