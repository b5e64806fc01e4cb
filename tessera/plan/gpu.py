"""Op times on an NVIDIA GPU: GEMMs at a measured fraction of the tensor-core peak with
wave quantization, attention at FlashAttention's measured fraction, everything else at the
measured achievable HBM bandwidth, each plus one kernel launch.

    time(matmul)   = launch + FLOPs / (peak x gemm_fraction x wave_efficiency(M, N)
                                      x K / (K + k_half))
    time(flash)    = launch + FLOPs / (peak x attention_fraction)
    time(other op) = launch + max(FLOPs / vector peak, bytes / (HBM x memory_fraction))

`wave_efficiency` is NVIDIA's wave-quantization rule: an M x N output is cut into tiles,
which run in waves of one tile per SM; the last wave may leave SMs idle [NVMM]. The
fractions and the launch latency are calibration constants in `calibration/gpu.yaml`, each
with its source and what it was fitted on. The work of each op (FLOPs, compulsory bytes) is
the library kernel's own `KernelDef` formula, the same one the Neuron cost model uses.

[NVMM] NVIDIA Deep Learning Performance docs, "Matrix Multiplication Background User's
Guide", sections "Tile quantization" and "Wave quantization".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from tessera.hw import GpuSpec, Precision
from tessera.kernels import registry
from tessera.nki.dtypes import to_dtype
from tessera.plan.errors import PlanError
from tessera.plan.workload import TrainDtype

CALIBRATION_FILE = Path(__file__).with_name("calibration") / "gpu.yaml"
_MATMULS = ("matmul", "batched_matmul")
_ATTENTION = ("flash_attention", "decode_attention")


@dataclass(frozen=True)
class GpuCalibration:
    """The fitted constants of one GPU (see calibration/gpu.yaml for their sources)."""

    gemm_fraction: float  # achieved / peak of a large, wave-aligned GEMM
    attention_fraction: float  # achieved / peak of FlashAttention-2 (forward)
    memory_fraction: float  # achieved / peak HBM bandwidth of a streaming kernel
    launch_s: float  # launch + prologue/epilogue of one kernel
    k_half: float  # reduction length at which a tile's fixed cost equals its K loop
    tiles: tuple[tuple[int, int], ...]  # cuBLAS's output tiles, the largest first


@functools.cache
def calibration(gpu_name: str) -> GpuCalibration:
    """The constants of `gpu_name` (a GPU preset name), falling back to its family."""
    data = yaml.safe_load(CALIBRATION_FILE.read_text())
    shared = {k: v["value"] for k, v in data["shared"].items()}
    shared["tiles"] = tuple(tuple(t) for t in shared["tiles"])
    per = data["gpus"]
    family = next((name for name in per if gpu_name.startswith(name)), None)
    if family is None:
        raise PlanError(f"no GPU calibration for {gpu_name!r} in {CALIBRATION_FILE.name}; "
                        f"calibrated: {', '.join(per)}")
    own = {k: v["value"] for k, v in per[family].items()}
    return GpuCalibration(**{**shared, **own})


def wave_efficiency(gpu: GpuSpec, m: int, n: int, cal: GpuCalibration,
                    batch: int = 1, k: int = 0) -> float:
    """Useful share of the tensor cores for `batch` M x N outputs [NVMM]: partial tiles
    compute their empty rows and columns too (tile quantization), and tiles run in waves of
    one per SM, the last wave leaving SMs idle (wave quantization). The largest tile of
    cuBLAS's menu is used whenever it makes at least one full wave (large tiles reuse each
    loaded element most); a GEMM too small for that takes the menu's best smaller tile and
    splits its reduction across the idle SMs (split-K), each part keeping at least
    `SPLIT_K_MIN` steps of K."""
    best = 0.0
    for tm, tn in cal.tiles:
        tiles = math.ceil(m / tm) * math.ceil(n / tn) * batch
        filled = (m * n) / (math.ceil(m / tm) * tm * math.ceil(n / tn) * tn)
        if tiles >= gpu.sm_count:
            eff = filled * tiles / (math.ceil(tiles / gpu.sm_count) * gpu.sm_count)
            if (tm, tn) == cal.tiles[0]:
                return eff
        else:
            splits = max(1, min(gpu.sm_count // tiles, k // SPLIT_K_MIN if k else 1))
            eff = filled * tiles * splits / gpu.sm_count
        best = max(best, eff)
    return best


SPLIT_K_MIN = 256  # shortest K slice a split-K part keeps (an assumption, see the docstring)


def _precision(matmul_dtype: TrainDtype) -> Precision:
    return Precision.FP8 if matmul_dtype is not TrainDtype.BF16 else Precision.BF16


def op_time(gpu: GpuSpec, kernel: str, shapes: dict[str, int], dtype: str,
            matmul_dtype: TrainDtype):  # -> devices.OpTime (import cycle avoided)
    """Time of one call of `kernel` at `shapes` on `gpu` (see the module docstring)."""
    from tessera.plan.devices import OpTime

    cal = calibration(gpu.name)
    bw = gpu.hbm_bytes_per_s * cal.memory_fraction
    if kernel == "copy":
        return OpTime(0.0, shapes["bytes"] / bw, cal.launch_s, 0.0, float(shapes["bytes"]))
    defn = registry.get(kernel)
    itemsize = to_dtype(dtype).itemsize
    flops = float(defn.flops(shapes))
    nbytes = float(defn.hbm_bytes(shapes, itemsize))
    if kernel in _MATMULS:
        prec = _precision(matmul_dtype)
        if prec not in gpu.published_peak_flops:
            raise PlanError(f"--dtype {matmul_dtype.value}: {gpu.name} has no {prec.value} "
                            "tensor-core rate (H100 and later have FP8)")
        if prec is Precision.FP8:
            nbytes /= itemsize  # fp8 operands: one byte per element
        wave = wave_efficiency(gpu, shapes["M"], shapes["N"], cal, shapes.get("B", 1),
                               shapes["K"])
        k_eff = shapes["K"] / (shapes["K"] + cal.k_half)
        compute_s = flops / (gpu.peak_flops(prec) * cal.gemm_fraction * wave * k_eff)
        return OpTime(compute_s, nbytes / bw, cal.launch_s, flops, nbytes)
    if kernel in _ATTENTION:
        compute_s = flops / (gpu.peak_flops(Precision.BF16) * cal.attention_fraction)
        return OpTime(compute_s, nbytes / bw, cal.launch_s, flops, nbytes)
    # element-wise, norms, softmax: CUDA cores at the FP32 (non-tensor) rate, never binding
    # in practice next to the bandwidth term
    compute_s = flops / gpu.peak_flops(Precision.FP32)
    return OpTime(compute_s, nbytes / bw, cal.launch_s, flops, nbytes)
