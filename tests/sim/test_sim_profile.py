"""`sim.profile` / `sim.schedule` and the `Profile` summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.hw import Engine, MemoryKind
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Opcode

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "matmul_tutorial.py"


@nki.jit
def scaled_matmul(a, b):
    """out = (a^T @ b) * 0.5 for a [128, 128], b [128, 512] (bf16)."""
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    ta = nl.ndarray((128, 128), a.dtype, buffer=nl.sbuf)
    tb = nl.ndarray((128, 512), b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(ta, a)
    nisa.dma_copy(tb, b)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    for _ in range(4):
        nisa.nc_matmul(ps, ta, tb)
    res = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(res, ps, nl.multiply, 0.5)
    nisa.dma_copy(out, res)
    return out


SPECS = (nki.TensorSpec((128, 128), nl.bfloat16), nki.TensorSpec((128, 512), nl.bfloat16))


def test_profile_summarises_flops_bytes_and_the_roofline():
    p = sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True)
    assert p.chip == "trn1" and p.cores == 1 and p.instructions == 8
    assert p.flops == 4 * 2 * 128 * 128 * 512
    assert p.hbm_read_bytes == 128 * 128 * 2 + 128 * 512 * 2
    assert p.hbm_write_bytes == 128 * 512 * 4
    assert p.peak_flops_per_s == pytest.approx(128 * 128 * 2 * 2.8e9)
    assert p.peak_hbm_bytes_per_s == pytest.approx(410e9)  # 820 GB/s over 2 cores
    assert p.ridge_point == pytest.approx(128 * 128 * 2 * 2.8e9 / 410e9)
    assert p.arithmetic_intensity == pytest.approx(p.flops / (p.hbm_read_bytes
                                                              + p.hbm_write_bytes))
    assert p.achieved_flops_per_s == pytest.approx(p.flops / p.total_s)
    assert p.flops_utilisation == pytest.approx(p.achieved_flops_per_s / p.peak_flops_per_s)
    tensor = p.usage("tensor")
    assert tensor.instructions == 4 and tensor.busy_s == pytest.approx(4 * 512 / 2.8e9)
    assert tensor.utilisation == pytest.approx(tensor.busy_s / p.total_s)
    assert p.bound is Engine.DMA  # three DMAs dwarf 0.7 us of matmul
    assert p.critical_path.dominant is Engine.DMA
    assert p.critical_path.length_s == p.total_s
    # ta + tb die at the last matmul, before res is born: the peak is res alone
    assert p.peak_sbuf_bytes == max(128 * 2 + 512 * 2, 512 * 4)
    assert p.peak_psum_bytes == 2048


def test_top_instructions_group_by_kernel_line():
    p = sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True)
    top = {(h.opcode, h.count) for h in p.top_instructions}
    assert (Opcode.NC_MATMUL, 4) in top and (Opcode.DMA_COPY, 1) in top
    mm = next(h for h in p.top_instructions if h.opcode is Opcode.NC_MATMUL)
    assert mm.location.file.endswith("test_sim_profile.py")
    assert mm.total_s == pytest.approx(4 * 512 / 2.8e9)
    totals = [h.total_s for h in p.top_instructions]
    assert totals == sorted(totals, reverse=True) and len(totals) <= 10


def test_functional_and_symbolic_runs_give_the_same_profile():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 128)).astype(nl.bfloat16)
    b = rng.standard_normal((128, 512)).astype(nl.bfloat16)
    real = sim.profile(scaled_matmul, a, b, chip="trn2")
    shapes = sim.profile(scaled_matmul, *SPECS, chip="trn2", symbolic=True)
    assert real.total_s == shapes.total_s and real.flops == shapes.flops
    trace = nki.trace(scaled_matmul, symbolic=True, chip="trn2")(*SPECS)
    again = sim.schedule(trace, hw.load_chip("trn2"))
    assert again.total_s == shapes.total_s


def test_overrides_reach_hardware_and_calibration():
    base = sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True)
    fast_pe = sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True,
                          overrides={"core.tensor.clock_hz": 5.6e9})
    assert fast_pe.usage("tensor").busy_s == pytest.approx(base.usage("tensor").busy_s / 2)
    no_sync = sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True,
                          overrides={"calibration.cross_engine_sync_s": 0.0})
    # DMA -> matmul, matmul -> vector: two cross-engine hops on the critical path
    assert base.total_s - no_sync.total_s == pytest.approx(2 * 89e-9)
    with pytest.raises(hw.OverrideError):
        sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True,
                    overrides={"core.tensor.warp_drive": 1})
    with pytest.raises(hw.CalibrationError):
        sim.profile(scaled_matmul, *SPECS, chip="trn1", symbolic=True,
                    overrides={"calibration.warp_drive": 1})


def test_lnc2_profile_counts_both_cores():
    @nki.jit
    def halves(x):
        core = nl.program_id(0)
        t = nl.ndarray((64, 512), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[core * 64:(core + 1) * 64, :])
        nisa.activation(t, nl.exp, t)
        return x

    p = sim.profile(halves, nki.TensorSpec((128, 512), nl.float32), chip="trn2",
                    symbolic=True, lnc=2)
    assert p.cores == 2 and p.instructions == 4
    assert p.peak_hbm_bytes_per_s == pytest.approx(2 * 2.9e12 / 8)
    starts = sorted(s.start_s for s in p.timeline.instructions if s.index == 0)
    assert starts[0] == starts[1]  # each core has its own DMA engines


@pytest.mark.skipif(not TUTORIAL.exists(), reason="matmul tutorial example not present")
def test_matmul_tutorial_versions_get_faster():
    mt = load_kernel_file(TUTORIAL).module
    shapes = (nki.TensorSpec((1024, 512), nl.bfloat16), nki.TensorSpec((1024, 2048),
                                                                       nl.bfloat16))
    times = {name: sim.profile(getattr(mt, name), *shapes, chip="trn1", symbolic=True)
             for name in mt.KERNELS}
    t = [times[name].total_s for name in mt.KERNELS]
    assert t[0] > t[1] > t[2] > t[3]
    # row-gather loads (128 rows of 256 B / 1 KiB) stream at the strided HBM efficiency
    assert times["matmul_tiled"].bound is MemoryKind.HBM
    util = [times[name].flops_utilisation for name in mt.KERNELS]
    assert util[3] > 2.5 * util[0]  # both HBM-bound at this small size


def test_profile_passes_keyword_arguments_to_the_kernel():
    @nki.jit
    def scaled(x, repeats=1):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x)
        for _ in range(repeats):
            nisa.tensor_scalar(t, t, nl.multiply, 2.0)
        return x

    spec = nki.TensorSpec((128, 512), nl.float32)
    once = sim.profile(scaled, spec, symbolic=True)
    four = sim.profile(scaled, spec, symbolic=True, kernel_kwargs={"repeats": 4})
    assert four.instructions == once.instructions + 3
    assert four.total_s > once.total_s
