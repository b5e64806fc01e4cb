"""The cost registry: one rule per opcode, and the compute engines' costs in cycles.

`COST_RULES` says for every opcode how the timing model prices it: its scheduling kind
(compute, DMA transfer, barrier, core-to-core sendrecv) and, for compute, its cycle formula
on the Tensor engine and/or on the streaming engines. Rules read the instruction's typed
settings (`Instruction.attrs`, written by the `nki.isa` op).

The base is the published NKI cost model (ISA docstrings of Neuron 2.26; see
/work/shared/reference/hardware.md section 3), with N = elements per partition. Hardware
numbers (clocks, MIN_II, MM_INIT_LATENCY, the access overhead, GpSimd start, element rates)
are read from `tessera.hw`; the formula coefficients and unpublished latencies come from
the calibration YAML. Every opcode has a rule; an opcode without one is an error, never a
silent zero. DMA transfer costs live in `tessera.sim.dma`.

An instruction occupies its engine for `occupancy_s` (formula + the fixed SBUF/PSUM access
overhead); its result is visible `latency_s` later (pipeline depth). Back-to-back independent
instructions therefore stream at the formula rate while dependent ones pay the latency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tessera.hw import CoreSpec, EngineSpec, Precision
from tessera.nki.attrs import (
    ActivationAttrs,
    MatmulAttrs,
    MemsetAttrs,
    ScalarTensorTensorAttrs,
    TensorReduceAttrs,
    TensorTensorAttrs,
)
from tessera.nki.buffers import Buffer
from tessera.nki.stream import AccessPattern, Engine, Instruction, Opcode
from tessera.sim.collective_cost import collective_seconds
from tessera.sim.errors import ScheduleError
from tessera.sim.gather_costs import local_gather_cycles, n_gather_cycles
from tessera.sim.select_costs import (
    exponential_cycles,
    select_reduce_cycles,
    sequence_bounds_cycles,
)
from tessera.sim.timing_calibration import Calibration

MX_VALUES_PER_CONTAINER = 4  # an x4 MX type packs four values in one element
# [nisa.register_load] no cycles published: the 2.21 tensor_copy_dynamic_src page's ~140-cycle
# overhead of reading a dynamic index from SBUF into an engine
REGISTER_ACCESS_CYCLES = 140.0
# [nisa.tensor_copy_dynamic_src/dst pages, 2.26-2.29] max(MIN_II_DYNAMIC, N) engine cycles:
# "MIN_II_DYNAMIC is roughly 600 engine cycles"
MIN_II_DYNAMIC_CYCLES = 600.0

PRECISION_OF_DTYPE = {
    "float32": Precision.FP32, "tfloat32": Precision.TF32, "bfloat16": Precision.BF16,
    "float16": Precision.FP16, "float8_e4m3": Precision.FP8, "float8_e4m3fn": Precision.FP8,
    "float8_e5m2": Precision.FP8,
}
_HALF = ("bfloat16", "float16")
_FAST_TT_OPS = ("add", "subtract", "multiply")
_FAST_REDUCE_OPS = ("add", "maximum")
_DOUBLE_ROW = ("double_row", "double_row_gen3")


def precision_of(dtype: str) -> Precision | None:
    """The TensorE/VectorE rate class of a dtype name (None for integer types)."""
    return PRECISION_OF_DTYPE.get(dtype)


def _contiguous(ap: AccessPattern) -> bool:
    return ap.contiguous_bytes >= ap.elements_per_partition * ap.itemsize


def _all_half(inst: Instruction) -> bool:
    return all(ap.dtype in _HALF for ap in inst.reads + inst.writes)


def _all_sbuf_contiguous(inst: Instruction) -> bool:
    return all(ap.buffer is Buffer.SBUF and _contiguous(ap) for ap in inst.reads + inst.writes)


def matmul_cycles(inst: Instruction, core: CoreSpec, cal: Calibration) -> float:
    """nc_matmul: max(MM_INIT, min(64, N_stationary), N_moving) x the dtype's cycle factor.

    fp32 inputs run 4x slower (cycle_factor). FP8 runs at the BF16 rate unless the
    double_row perf mode packs two K rows per PE (NC-v3+): the instruction then contracts
    K x 2 rows in the time a BF16 matmul of the same free sizes takes ("K=256 takes the same
    time as BF16 K=128"); `stationary_free`/`moving_free` are per-row sizes and
    `contraction_rows` is 2. LoadStationary of the next weights runs in the background and
    only shows when it is slower than the multiply.
    """
    attrs: MatmulAttrs = inst.attrs  # type: ignore[assignment]
    n_stationary = float(attrs.stationary_free)
    n_moving = float(attrs.moving_free)
    precision = precision_of(inst.reads[-1].dtype if inst.reads else "bfloat16")
    precision = precision or Precision.BF16
    double_row = attrs.perf_mode in _DOUBLE_ROW
    rows = float(attrs.contraction_rows)
    if double_row or precision is Precision.FP8:
        factor = 1.0  # fp8 without double_row streams like bf16
    else:
        factor = core.tensor.cycle_factor(precision)
    costs = core.costs
    init = float(costs.matmul_init_cycles)
    stationary = min(cal.stationary_free_cap_cycles, n_stationary)
    multiply = max(init, stationary, n_moving) * factor
    # the stationary holds `rows` packed rows per partition in double_row mode
    load_stationary = n_stationary * rows * factor / costs.fast_load_stationary_factor
    return max(multiply, load_stationary)


def _matmul(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    return matmul_cycles(inst, core, cal)  # its own N: the moving free size


def _tensor_transpose(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    return max(float(inst.partitions), min(cal.transpose_free_cap_cycles,
                                           float(inst.free_elements)))


def _tensor_tensor(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    psum_input = any(ap.buffer is Buffer.PSUM for ap in inst.reads)
    attrs: TensorTensorAttrs = inst.attrs  # type: ignore[assignment]
    fast = psum_input or (attrs.op in _FAST_TT_OPS and _all_half(inst)
                          and _all_sbuf_contiguous(inst))
    per = cal.one_input_per_element if fast else cal.two_input_per_element
    return per * n


def _scalar_tensor_tensor(inst: Instruction, core: CoreSpec, cal: Calibration,
                          n: float) -> float:
    attrs: ScalarTensorTensorAttrs = inst.attrs  # type: ignore[assignment]
    fast = (_all_half(inst) and attrs.op0 == "subtract" and attrs.op1 == "multiply"
            and inst.free_elements % 2 == 0)
    return (cal.one_input_per_element if fast else cal.two_input_per_element) * n


def _tensor_reduce(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    attrs: TensorReduceAttrs = inst.attrs  # type: ignore[assignment]
    fast = _all_half(inst) and attrs.op in _FAST_REDUCE_OPS
    return (cal.fast_reduce_per_element if fast else cal.one_input_per_element) * n


def _memset(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    attrs: MemsetAttrs = inst.attrs  # type: ignore[assignment]
    fast = attrs.value in (0, 0.0) and _all_half(inst)
    return (cal.fast_memset_per_element if fast else cal.one_input_per_element) * n


def _predicated(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    same = len(inst.reads) == 2 and inst.reads[0].buffer is inst.reads[1].buffer
    per = cal.predicated_same_memory_per_element if same else cal.one_input_per_element
    return per * n


def _with_reduce(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    return max(float(core.costs.min_ii_cycles), cal.one_input_per_element * n) + (
        cal.reduce_extra_min_ii * core.costs.min_ii_cycles)


def _activation(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    attrs: ActivationAttrs = inst.attrs  # type: ignore[assignment]
    if attrs.reduce_op is not None:  # accumulating into the reduction registers
        return _with_reduce(inst, core, cal, n)
    return cal.one_input_per_element * n


def _gpsimd_start(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    return float(core.costs.gpsimd_start_cycles) + n


def _per(name: str) -> Rule:
    def rule(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
        return getattr(cal, name) * n
    return rule


Rule = Callable[[Instruction, CoreSpec, Calibration, float], float]
# scheduling kinds (the event loop's `FactArrays.kind`)
COMPUTE, TRANSFER, BARRIER, SENDRECV = 0, 1, 2, 3


@dataclass(frozen=True)
class CostRule:
    """How the timing model prices one opcode.

    `kind` is how it is scheduled: COMPUTE on an engine queue, TRANSFER on the DMA engines
    (`tessera.sim.dma`), BARRIER (joined with the other core, free) or SENDRECV (a
    core-to-core DMA joined with its partner). A compute opcode has a cycle formula for the
    engines it can run on: `tensor` on the Tensor engine, `stream` on Vector/Scalar/GpSimd
    (with n = N scaled by the engine's element rate, floored at MIN_II unless `floor` is
    False because the formula has its own fixed term).
    """

    kind: int
    tensor: Rule | None = None
    stream: Rule | None = None
    floor: bool = True
    # a duration in seconds instead of a cycle formula: work no engine formula describes
    # (in-kernel collectives, priced by tessera.net: `tessera.sim.collective_cost`)
    seconds: Callable[[Instruction, CoreSpec], float] | None = None


def _matmul_mx(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """nc_matmul_mx: the BF16 nc_matmul of the same container shape x 4 values per container
    x the core's MX cycle factor (see COST_RULES)."""
    attrs = inst.attrs
    as_bf16 = Instruction(inst.index, inst.core, inst.engine, Opcode.NC_MATMUL, (), (),
                          inst.partitions, inst.free_elements,
                          MatmulAttrs(attrs.stationary_free, attrs.moving_free), inst.location)
    return (matmul_cycles(as_bf16, core, cal) * MX_VALUES_PER_CONTAINER
            * core.tensor.cycle_factor(attrs.precision))


def _quantize_mx(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """quantize_mx: four input elements per partition per cycle ([A4])."""
    return inst.free_elements / MX_VALUES_PER_CONTAINER


def _register_move(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """register_alloc/move: MIN_II (the floor); a dynamic loop's control step ("loop") costs
    the calibration's dynamic_loop_control_s."""
    if inst.attrs.source != "loop":
        return 0.0
    return cal.dynamic_loop_control_s * stream_engine(core, inst.engine).clock_hz


def _register_memory(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """register_load/store: an engine's dynamic-index read, plus a DMA's fixed latency when
    the value is in HBM."""
    hbm = any(ap.buffer.is_hbm for ap in inst.reads + inst.writes)
    dma_cycles = core.dma.fixed_latency_s * stream_engine(core, inst.engine).clock_hz
    return REGISTER_ACCESS_CYCLES + (dma_cycles if hbm else 0.0)


def _dynamic_copy(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """tensor_copy_dynamic_src/dst: max(MIN_II_DYNAMIC, N), N streamed like tensor_copy."""
    return max(MIN_II_DYNAMIC_CYCLES, cal.one_input_per_element * n)


def _random_words(inst: Instruction, core: CoreSpec, cal: Calibration, n: float) -> float:
    """rng and the PRNG state moves: one word per lane per cycle; GpSimd pays its start."""
    if inst.engine is Engine.GPSIMD:
        return _gpsimd_start(inst, core, cal, n)
    return cal.one_input_per_element * n


def _compute(stream: Rule | None = None, tensor: Rule | None = None,
             floor: bool = True) -> CostRule:
    return CostRule(COMPUTE, tensor, stream, floor)


COST_RULES: dict[Opcode, CostRule] = {
    Opcode.NC_MATMUL: _compute(tensor=_matmul),
    # TensorE: max(P, min(cap, F)); VectorE 32x32 blocks: max(MIN_II, N)
    Opcode.NC_TRANSPOSE: _compute(_per("one_input_per_element"), tensor=_tensor_transpose),
    Opcode.TENSOR_TENSOR: _compute(_tensor_tensor),
    Opcode.TENSOR_SCALAR: _compute(_per("one_input_per_element")),
    Opcode.SCALAR_TENSOR_TENSOR: _compute(_scalar_tensor_tensor),
    Opcode.TENSOR_REDUCE: _compute(_tensor_reduce),
    Opcode.TENSOR_COPY: _compute(_per("one_input_per_element")),
    Opcode.MEMSET: _compute(_memset),
    Opcode.RECIPROCAL: _compute(_per("reciprocal_per_element")),
    Opcode.ACTIVATION: _compute(_activation),
    Opcode.ACTIVATION_REDUCE: _compute(_with_reduce),
    Opcode.TENSOR_SCALAR_REDUCE: _compute(_with_reduce),
    Opcode.TENSOR_TENSOR_SCAN: _compute(_per("scan_per_element")),
    Opcode.TENSOR_COPY_PREDICATED: _compute(_predicated),
    Opcode.BN_STATS: _compute(_per("one_input_per_element")),
    Opcode.BN_AGGR: _compute(_per("bn_aggr_per_element")),
    Opcode.IOTA: _compute(_gpsimd_start, floor=False),
    Opcode.AFFINE_SELECT: _compute(_gpsimd_start, floor=False),
    # not documented: charged like the other GpSimd cross-lane ops (start + N)
    Opcode.TENSOR_PARTITION_REDUCE: _compute(_gpsimd_start, floor=False),
    # [ISA226] max8 / nc_find_index8: "N engine cycles" (no MIN_II term), N = elements per
    # partition of the searched tensor
    Opcode.MAX8: _compute(_per("one_input_per_element"), floor=False),
    Opcode.NC_FIND_INDEX8: _compute(_per("one_input_per_element"), floor=False),
    # [ISA226] nc_match_replace8 prints "min(MIN_II, N)"; read as max(MIN_II, N) (the MIN_II
    # floor): a min would price a 16,384-element search at 64 cycles although the engine
    # streams every element once, and the 2.25 page gives plain N
    Opcode.NC_MATCH_REPLACE8: _compute(_per("one_input_per_element")),
    # not documented: charged like the other GpSimd ops (start + N over the src elements);
    # the eight GpSimd cores each scan one partition's N elements in parallel
    Opcode.NONZERO_WITH_COUNT: _compute(_gpsimd_start, floor=False),
    # [A4] "An MX matmul ... runs at 4x the throughput compared to a BF16/FP16 matmul": a PE
    # multiplies the four values of an x4 container pair per cycle, so nc_matmul_mx over
    # [K, M] x [K, N] containers is priced as the BF16 nc_matmul of that container shape
    # (matmul_cycles) x 4 values per container x the core's MX cycle factor ([NC4] 315
    # MXFP8/MXFP4 vs 79 BF16 TFLOPS: 0.25): the same time for 4x the BF16 work
    Opcode.NC_MATMUL_MX: _compute(tensor=_matmul_mx),
    # [A4] the Vector engine's QuantizeMX "can quantize four input elements per partition,
    # per cycle": N/4 cycles over src's elements per partition (floored at MIN_II)
    Opcode.QUANTIZE_MX: _compute(_quantize_mx),
    # [nisa.register_*] the pages give no cycles. A move of a constant or a register touches
    # no memory: assumed MIN_II (the rule's floor). A load/store: ~140 cycles to bring a
    # value from SBUF into an engine (the 2.21 tensor_copy_dynamic_src page's dynamic-index
    # overhead), plus for HBM the DMA fixed latency (assumed: same path as a DMA).
    # A dynamic loop's control step ("loop": counter update, compare-and-branch, semaphore
    # reset; the drain and barrier themselves are the iteration fence in the trace): no
    # figure; calibration's dynamic_loop_control_s, fitted on the "NKI Dynamic Loops" page's
    # trn1 example (sim/calibration/trn.yaml)
    Opcode.REGISTER_ALLOC: _compute(_register_move),
    Opcode.REGISTER_MOVE: _compute(_register_move),
    Opcode.REGISTER_LOAD: _compute(_register_memory),
    Opcode.REGISTER_STORE: _compute(_register_memory),
    # on-chip copies with one side at a runtime offset: max(MIN_II_DYNAMIC, N) (see above)
    Opcode.TENSOR_COPY_DYNAMIC_SRC: _compute(_dynamic_copy),
    Opcode.TENSOR_COPY_DYNAMIC_DST: _compute(_dynamic_copy),
    # [nisa.rng] and the PRNG state instructions give no throughput: assumed one random
    # word (or state word) per lane per cycle: GpSimd start + N on GpSimd (like iota),
    # max(MIN_II, N) on the Vector engine
    Opcode.RNG: _compute(_random_words),
    Opcode.RAND_SET_STATE: _compute(_random_words),
    Opcode.RAND_GET_STATE: _compute(_random_words),
    # [nisa.rand2], [nisa.dropout] (Vector engine): no figure on the pages; assumed one
    # streaming pass over the N elements, like tensor_scalar
    Opcode.RAND2: _compute(_per("one_input_per_element")),
    Opcode.DROPOUT: _compute(_per("one_input_per_element")),
    # [nisa.set_rng_seed]: one [1, 1] seed on the Vector engine; assumed MIN_II
    Opcode.SET_RNG_SEED: _compute(_per("one_input_per_element")),
    # [nisa.local_gather 2.26] 150 + n_idx x e x C GpSimd cycles (see gather_costs)
    Opcode.LOCAL_GATHER: _compute(local_gather_cycles, floor=False),
    # nc_n_gather: undocumented; ceil(data/512) groups x (GpSimd start + N) (gather_costs)
    Opcode.NC_N_GATHER: _compute(n_gather_cycles, floor=False),
    # [ISA226] nc_stream_shuffle: max(MIN_II, N) Vector cycles, N = elements per partition
    Opcode.NC_STREAM_SHUFFLE: _compute(_per("one_input_per_element")),
    # a DMA transfer reading every source (tessera.sim.dma: dma_compute traffic and rate)
    Opcode.DMA_COMPUTE: CostRule(TRANSFER),
    # [ISA226] range_select: max(MIN_II, N) Vector cycles (the row maximum included)
    Opcode.RANGE_SELECT: _compute(_per("one_input_per_element")),
    # select_reduce, exponential, sequence_bounds: see tessera.sim.select_costs
    Opcode.SELECT_REDUCE: _compute(select_reduce_cycles),
    Opcode.EXPONENTIAL: _compute(exponential_cycles),
    Opcode.SEQUENCE_BOUNDS: _compute(sequence_bounds_cycles, floor=False),
    # not documented: one input streamed like tensor_scalar, max(MIN_II, N) [ISA226] (the
    # 2N of tensor_tensor_scan reads two tensors); the running value stays in the lane
    Opcode.TENSOR_SCALAR_CUMULATIVE: _compute(_per("one_input_per_element")),
    # nki.collectives: each occupies its core's DMA-engine queue for the time tessera.net
    # gives that collective inside a compiled graph (tessera.sim.collective_cost)
    **{op: CostRule(COMPUTE, seconds=collective_seconds) for op in (
        Opcode.ALL_REDUCE, Opcode.ALL_GATHER, Opcode.REDUCE_SCATTER, Opcode.ALL_TO_ALL,
        Opcode.ALL_TO_ALL_V, Opcode.COLLECTIVE_PERMUTE, Opcode.COLLECTIVE_PERMUTE_IMPLICIT,
        Opcode.COLLECTIVE_PERMUTE_IMPLICIT_REDUCE)},
    Opcode.DMA_COPY: CostRule(TRANSFER),
    Opcode.DMA_TRANSPOSE: CostRule(TRANSFER),
    Opcode.SENDRECV: CostRule(SENDRECV),
    # nki.lnc.sendrecv_compute: joined with the peer core like sendrecv; the DMA engines
    # reduce on the way (its attrs are DmaComputeAttrs, so tessera.sim.dma runs it at the
    # dma_compute rate: full on NC-v4, half before). The page gives no figure of its own.
    Opcode.SENDRECV_COMPUTE: CostRule(SENDRECV),
    Opcode.CORE_BARRIER: CostRule(BARRIER),
}


def stream_engine(core: CoreSpec, engine: Engine) -> EngineSpec:
    """The spec of a Vector/Scalar/GpSimd engine."""
    if engine is Engine.VECTOR:
        return core.vector
    if engine is Engine.SCALAR:
        return core.scalar
    if engine is Engine.GPSIMD:
        return core.gpsimd
    raise ScheduleError(f"{engine.value} is not a streaming compute engine")


def element_scale(inst: Instruction, spec: EngineSpec, cal: Calibration) -> float:
    """Cycles per element relative to one element per lane per cycle (NC-v2 = 1.0).

    NC-v3 VectorE streams 256 elements/cycle (2x) for every dtype and 512 (4x) for bf16/fp16
    only in perf mode: copy / tensor_scalar on contiguous SBUF data (per the calibration).
    """
    rate = spec.elements_per_cycle_for(None)
    if (inst.opcode.value in cal.bf16_perf_mode_opcodes and _all_half(inst)
            and _all_sbuf_contiguous(inst)):
        rate = spec.elements_per_cycle_for(Precision.BF16)
    return spec.lanes / rate


def engine_cycles(inst: Instruction, core: CoreSpec, cal: Calibration) -> float:
    """The formula cost of a compute instruction in its engine's cycles (no overheads)."""
    op = inst.opcode
    rule = COST_RULES[op]
    if inst.engine is Engine.TENSOR:
        if rule.tensor is None:
            raise ScheduleError(f"no Tensor-engine cost rule for {op.value} "
                                f"(at {inst.location})")
        return rule.tensor(inst, core, cal, float(inst.free_elements))
    if rule.stream is None:
        raise ScheduleError(f"no {inst.engine.value}-engine cost rule for {op.value} "
                            f"(at {inst.location})")
    spec = stream_engine(core, inst.engine)
    n = float(inst.free_elements) * element_scale(inst, spec, cal)
    cycles = rule.stream(inst, core, cal, n)
    if not rule.floor:
        return cycles
    return max(float(core.costs.min_ii_cycles), cycles)


def engine_cost(inst: Instruction, core: CoreSpec, cal: Calibration) -> tuple[float, float]:
    """(occupancy_s, result latency_s) of a compute-engine instruction (a barrier: free)."""
    rule = COST_RULES[inst.opcode]
    if rule.seconds is not None:  # occupies its queue for that long; no extra latency
        return rule.seconds(inst, core), 0.0
    if rule.kind == BARRIER:
        return 0.0, 0.0
    cycles = engine_cycles(inst, core, cal)
    if inst.engine is Engine.TENSOR:
        clock = core.tensor.clock_hz
        return cycles / clock, cal.tensor_result_latency_cycles / clock
    clock = stream_engine(core, inst.engine).clock_hz
    occupancy = cycles + core.costs.access_overhead_cycles
    return occupancy / clock, cal.engine_dependency_latency_cycles / clock


def matmul_flops(inst: Instruction) -> float:
    """2 x K x M x N of an nc_matmul (0 for anything else)."""
    if inst.opcode is not Opcode.NC_MATMUL:
        return 0.0
    attrs: MatmulAttrs = inst.attrs  # type: ignore[assignment]
    m = float(attrs.stationary_free)
    n = float(attrs.moving_free)
    # double_row contracts `contraction_rows` (2) packed rows per partition
    rows = float(attrs.contraction_rows)
    return 2.0 * inst.partitions * rows * m * n
