"""One device of a plan (a logical NeuronCore or a GPU) and the time of one op on it.

Neuron devices ask `tessera.cost.estimate` (ROOFLINE, or SIMULATED on request) for the
library kernel the op runs; a logical core of LNC=2 (trn2, trn3) is two physical cores
sharing the op: the compiler spreads a logical core's work over its physical cores [LNC],
so the op is priced on one physical core at half its rows (`_SPLIT_KEY`), or, for a matmul
of fewer rows than the cores have partitions (decode), half its weight's columns.
GPU devices use `tessera.plan.gpu` (GEMM and bandwidth efficiency with provenance).
Layout copies (`kernel="copy"`) are priced as the compiler prices them: the bytes over the
core's HBM share (or its DMA rate) plus one DMA fixed latency.

[LNC] AWS Neuron docs, "Logical NeuronCore configuration": one logical core spans LNC
physical cores that the compiler programs together.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum

from tessera import cost, hw
from tessera.cost.roofline import fixed_overhead_s, memory_term
from tessera.hw import ChipSpec, GpuSpec, InstanceSpec, Precision
from tessera.plan import gpu
from tessera.plan.errors import PlanError
from tessera.plan.workload import TrainDtype


class DeviceKind(Enum):
    """What one rank of the plan runs on."""

    NEURON = "neuron"
    GPU = "gpu"


@dataclass(frozen=True)
class OpTime:
    """Time of one op call split as the roofline splits it (time = max + overhead)."""

    compute_s: float
    memory_s: float
    overhead_s: float
    flops: float
    hbm_bytes: float

    @property
    def time_s(self) -> float:
        """Predicted time of the call."""
        return max(self.compute_s, self.memory_s) + self.overhead_s

    def scaled(self, flops_factor: float, bytes_factor: float) -> OpTime:
        """The same op doing `flops_factor` x the FLOPs and `bytes_factor` x the bytes (a
        backward pass priced from its forward: see `backward.py`)."""
        return OpTime(self.compute_s * flops_factor, self.memory_s * bytes_factor,
                      self.overhead_s, self.flops * flops_factor, self.hbm_bytes * bytes_factor)


# the shape key a logical core of LNC physical cores divides among them (the op's rows)
_SPLIT_KEY = {"matmul": "M", "batched_matmul": "B", "flash_attention": "heads",
              "rope": "heads", "embedding": "tokens", "cross_entropy": "rows",
              "batched_transpose": "batch", "decode_attention": "heads"}
_ROWS = "rows"
_ROW_REDUCTIONS = frozenset({"rmsnorm", "add_rmsnorm", "layernorm"})
PARTITIONS = 128  # rows of one tile: fewer rows per core would leave partitions idle


@dataclass(frozen=True, eq=False)
class Device:
    """One rank: a logical NeuronCore (`lnc` physical cores) or one GPU. Equal (and hashed)
    by instance name, logical-core size and fidelity, so caches keyed by it stay cheap."""

    instance: InstanceSpec
    lnc: int  # physical cores per rank (1 on GPUs)
    fidelity: cost.Fidelity = cost.Fidelity.ROOFLINE
    # a dry run: collect the SIMULATED estimates the ops need (answering at ROOFLINE), so
    # they can be tuned side by side first (`tessera.cost.batch`)
    recorder: set[tuple[str, tuple[tuple[str, int], ...], str]] | None = None

    @property
    def key(self) -> tuple[str, int, str, int]:
        """What identifies the device (each dry run its own, so no cached answer keeps a
        step from recording what it asks)."""
        return (self.instance.name, self.lnc, self.fidelity.value,
                0 if self.recorder is None else id(self.recorder))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @classmethod
    def create(cls, instance: str | InstanceSpec, lnc: int | None = None,
               fidelity: cost.Fidelity | str = cost.Fidelity.ROOFLINE) -> Device:
        """The device of `instance` at logical-core size `lnc` (default: the chip's)."""
        spec = instance if isinstance(instance, InstanceSpec) else load_instance(instance)
        if isinstance(spec.chip, GpuSpec):
            if lnc not in (None, 1):
                raise PlanError(f"--lnc: {spec.name} has GPUs, not NeuronCores")
            return cls(spec, 1, cost.Fidelity(fidelity))
        size = spec.chip.lnc_default if lnc is None else lnc
        if size not in spec.chip.lnc_allowed:
            raise PlanError(f"--lnc: {spec.chip.name} allows {list(spec.chip.lnc_allowed)}, "
                            f"not {size}")
        return cls(spec, size, cost.Fidelity(fidelity))

    @property
    def kind(self) -> DeviceKind:
        """Neuron core or GPU."""
        return DeviceKind.GPU if isinstance(self.instance.chip, GpuSpec) else DeviceKind.NEURON

    @property
    def per_instance(self) -> int:
        """Ranks one instance holds."""
        if self.kind is DeviceKind.GPU:
            return self.instance.chip_count
        return self.instance.logical_cores(self.lnc)

    @property
    def per_chip(self) -> int:
        """Ranks one chip holds."""
        return self.per_instance // self.instance.chip_count

    @property
    def hbm_bytes(self) -> float:
        """Device memory of one rank (its share of the chip's HBM)."""
        return self.instance.chip.hbm.capacity_bytes / self.per_chip

    @property
    def hbm_bytes_per_s(self) -> float:
        """HBM bandwidth of one rank."""
        return self.instance.chip.hbm.bytes_per_s / self.per_chip

    def peak_flops(self, dtype: TrainDtype) -> float:
        """Dense matmul peak of one rank at the training precision."""
        chip = self.instance.chip
        prec = _precision(dtype)
        try:
            if isinstance(chip, GpuSpec):
                return chip.peak_flops(prec)
            return chip.core.peak_flops(prec) * self.lnc
        except hw.HwError as err:
            raise PlanError(f"--dtype {dtype.value}: {chip.name} has no {prec.value} matmul "
                            f"rate ({err})") from None

    def stream_s(self, n_bytes: float) -> float:
        """Seconds to stream `n_bytes` through this rank's HBM (a memory-bound pass such as
        the optimizer step), as the op models price memory."""
        return self.op("copy", (("bytes", int(n_bytes)),), "bfloat16").time_s

    def op(self, kernel: str, shapes: tuple[tuple[str, int], ...], dtype: str,
           matmul_dtype: TrainDtype = TrainDtype.BF16) -> OpTime:
        """Time of one call of library `kernel` at `shapes` (or `copy` of shapes' bytes)."""
        if self.recorder is not None and isinstance(self.instance.chip, ChipSpec):
            request = neuron_request(self.lnc, kernel, dict(shapes), dtype, matmul_dtype)
            if request is not None:
                self.recorder.add(request)
        return _op_time(self, kernel, shapes, dtype, matmul_dtype)

    def recording(self) -> Device:
        """A dry-run twin of this device (ROOFLINE answers, requests recorded)."""
        return Device(self.instance, self.lnc, cost.Fidelity.ROOFLINE, set())


def load_instance(name: str) -> InstanceSpec:
    """An instance preset, or a PlanError naming the known ones."""
    try:
        return hw.load_instance(name)
    except hw.HwError:
        names = ", ".join(hw.preset_names("instance"))
        raise PlanError(f"--instance: unknown instance {name!r}; known: {names}") from None


def _precision(dtype: TrainDtype) -> Precision:
    return {TrainDtype.BF16: Precision.BF16, TrainDtype.FP8: Precision.FP8,
            TrainDtype.MXFP8: Precision.MXFP8}[dtype]


@functools.lru_cache(maxsize=65536)
def _op_time(device: Device, kernel: str, shapes: tuple[tuple[str, int], ...], dtype: str,
             matmul_dtype: TrainDtype) -> OpTime:
    chip = device.instance.chip
    if isinstance(chip, GpuSpec):
        return gpu.op_time(chip, kernel, dict(shapes), dtype, matmul_dtype)
    return _neuron(chip, device.lnc, device.fidelity, kernel, dict(shapes), dtype,
                   matmul_dtype)


def neuron_request(lnc: int, kernel: str, shapes: dict[str, int], dtype: str,
                   matmul_dtype: TrainDtype
                   ) -> tuple[str, tuple[tuple[str, int], ...], str] | None:
    """The `cost.estimate` question (kernel, shapes on one physical core, dtype) one op asks
    on a Neuron rank of `lnc` physical cores; None for a layout copy (a formula)."""
    if kernel == "copy":
        return None
    split = _spread_rows(kernel, dict(shapes))
    key = _SPLIT_KEY.get(kernel, _ROWS)
    if kernel == "matmul" and split["M"] < lnc * PARTITIONS:
        key = "N"  # a few rows (decode): the cores split the weight's columns instead
    if lnc > 1 and key in split:
        split[key] = max(1, -(-split[key] // lnc))
    run_dtype = dtype
    if kernel in ("matmul", "batched_matmul") and matmul_dtype is TrainDtype.FP8:
        run_dtype = "float8_e4m3"  # the library matmul's FP8 path (TensorE FP8 rate)
    return kernel, tuple(sorted(split.items())), run_dtype


def _spread_rows(kernel: str, shapes: dict[str, int]) -> dict[str, int]:
    """A row-wise norm of a few rows (one decode token's hidden vector) laid out as the
    compiler lays it out: each row spread over partitions (rows x f, cols / f), not one
    partition streaming all its columns through 1/128 of the Vector engine. The sum across
    the f partitions is one small ones-matmul on the Tensor engine (well under 1 us), which
    is left out."""
    if kernel not in _ROW_REDUCTIONS or shapes["rows"] >= PARTITIONS:
        return shapes
    f = 1
    while (2 * f * shapes["rows"] <= PARTITIONS and shapes["cols"] % (2 * f) == 0
           and shapes["cols"] // (2 * f) >= PARTITIONS):
        f *= 2
    return {**shapes, "rows": shapes["rows"] * f, "cols": shapes["cols"] // f}


def _neuron(chip: ChipSpec, lnc: int, fidelity: cost.Fidelity, kernel: str,
            shapes: dict[str, int], dtype: str, matmul_dtype: TrainDtype) -> OpTime:
    if kernel == "copy":
        memory_s, _ = memory_term(shapes["bytes"] / lnc, chip)
        return OpTime(0.0, memory_s, fixed_overhead_s(chip), 0.0, float(shapes["bytes"]))
    request = neuron_request(lnc, kernel, shapes, dtype, matmul_dtype)
    assert request is not None
    _, split_items, run_dtype = request
    split = dict(split_items)
    is_mm = kernel in ("matmul", "batched_matmul")
    try:
        e = cost.estimate(kernel, split, run_dtype, chip.name, fidelity)
    except cost.CostError as err:
        raise PlanError(f"{kernel} {split}: {err}") from None
    compute_s = e.compute_s
    memory_s = e.memory_s
    if is_mm and matmul_dtype is TrainDtype.MXFP8:
        # MX-fp8 operands: 1 byte per element plus one shared 8-bit scale per 32 [MXFP]
        prec = chip.core.tensor.rate_by_precision
        if Precision.MXFP8 not in prec:
            raise PlanError(f"--dtype mxfp8: {chip.name} has no MX-fp8 matmul rate "
                            "(trn3 has; use --dtype fp8 or bf16)")
        compute_s *= chip.core.peak_flops(Precision.BF16) / chip.core.peak_flops(
            Precision.MXFP8)
        memory_s *= (1 + 1 / 32) / 2
    factor = lnc  # the op's FLOPs and bytes of the whole logical core
    return OpTime(compute_s, memory_s, e.overhead_s, e.flops * factor, e.hbm_bytes * factor)
