"""GPU op model: wave quantization, the GEMM size effect fitted on published GEMMs, launch
latency, memory-bound ops at the measured bandwidth fraction."""

from __future__ import annotations

import pytest

from tessera import hw
from tessera.plan import gpu
from tessera.plan.errors import PlanError
from tessera.plan.workload import TrainDtype

A100 = hw.load_gpu("a100-80gb")


def test_wave_efficiency_counts_idle_sms() -> None:
    cal = gpu.calibration(A100.name)
    # 108 tiles of 256 x 128 fill one wave of 108 SMs exactly
    assert gpu.wave_efficiency(A100, 256 * 108, 128, cal) == pytest.approx(1.0)
    # one tile more needs a second, almost empty wave
    assert gpu.wave_efficiency(A100, 256 * 109, 128, cal) == pytest.approx(109 / 216)
    # the batch of a batched matmul adds tiles
    assert gpu.wave_efficiency(A100, 256, 128, cal, batch=108) == pytest.approx(1.0)


def test_gemm_model_reproduces_the_published_layer_gemms() -> None:
    """EleutherAI's per-GEMM measurements (the k_half fit data) within 6 %."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fit_gpu_gemm.py"
    spec = importlib.util.spec_from_file_location("fit_gpu_gemm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    k_half = gpu.calibration(A100.name).k_half
    for row in mod._rows():
        assert mod.predicted_tflops(row, k_half) == pytest.approx(row["tflops"], rel=0.06)


def test_op_time_terms() -> None:
    cal = gpu.calibration(A100.name)
    t = gpu.op_time(A100, "matmul", {"M": 8192, "K": 8192, "N": 8192}, "bfloat16",
                    TrainDtype.BF16)
    flops = 2 * 8192**3
    eff = cal.gemm_fraction * 8192 / (8192 + cal.k_half) * gpu.wave_efficiency(
        A100, 8192, 8192, cal)
    assert t.flops == flops
    assert t.compute_s == pytest.approx(flops / (312e12 * eff))
    assert t.overhead_s == cal.launch_s
    copy = gpu.op_time(A100, "copy", {"bytes": 10**9}, "bfloat16", TrainDtype.BF16)
    assert copy.memory_s == pytest.approx(1e9 / (A100.hbm_bytes_per_s * cal.memory_fraction))
    norm = gpu.op_time(A100, "rmsnorm", {"rows": 4096, "cols": 4096}, "bfloat16",
                       TrainDtype.BF16)
    assert norm.memory_s > norm.compute_s  # memory-bound, as on the real GPU


def test_fp8_needs_a_gpu_that_has_it() -> None:
    with pytest.raises(PlanError, match="no fp8 tensor-core rate"):
        gpu.op_time(A100, "matmul", {"M": 128, "K": 128, "N": 128}, "bfloat16",
                    TrainDtype.FP8)
    h100 = hw.load_gpu("h100-sxm")
    fast = gpu.op_time(h100, "matmul", {"M": 8192, "K": 8192, "N": 8192}, "bfloat16",
                       TrainDtype.FP8)
    slow = gpu.op_time(h100, "matmul", {"M": 8192, "K": 8192, "N": 8192}, "bfloat16",
                       TrainDtype.BF16)
    assert fast.compute_s == pytest.approx(slow.compute_s / 2)


def test_every_gpu_preset_is_calibrated() -> None:
    for name in hw.preset_names("gpu"):
        cal = gpu.calibration(name)
        assert 0 < cal.gemm_fraction <= 1 and 0 < cal.memory_fraction <= 1
