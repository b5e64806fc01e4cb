"""Properties of the timeline on random kernels (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.hw import Engine

KINDS = ("load", "store", "vec", "act", "gp", "mm", "evac")
COMPUTE = KINDS[2:]
OPS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 2)),
               min_size=1, max_size=12)
# loads of every tile, compute, stores of every tile: the usual kernel shape
PHASED = st.lists(st.tuples(st.sampled_from(COMPUTE), st.integers(0, 2), st.integers(0, 2)),
                  min_size=1, max_size=10).map(
    lambda ops: [("load", i, 0) for i in range(3)] + ops + [("store", i, 0) for i in range(3)])
FREE = st.sampled_from((128, 256, 512))
CHIP = st.sampled_from(("trn1", "trn2"))
SETTINGS = settings(max_examples=60, deadline=None)


def _kernel(ops):
    """A kernel running `ops` over three SBUF tiles, one PSUM tile and HBM in/out."""

    @nki.jit
    def random_kernel(x):
        f = x.shape[1]
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        t = [nl.ndarray((128, f), nl.float32, buffer=nl.sbuf) for _ in range(3)]
        ps = nl.ndarray((128, f), nl.float32, buffer=nl.psum)
        for kind, i, j in ops:
            if kind == "load":
                nisa.dma_copy(t[i], x)
            elif kind == "store":
                nisa.dma_copy(out, t[i])
            elif kind == "vec":
                nisa.tensor_tensor(t[i], t[i], t[j], op=nl.add)
            elif kind == "act":
                nisa.activation(t[i], nl.exp, t[i])
            elif kind == "gp":
                nisa.tensor_scalar(t[i], t[i], nl.multiply, 2.0, engine=nisa.engine.gpsimd)
            elif kind == "mm":
                nisa.nc_matmul(ps, t[i][:, 0:128], t[j])
            else:
                nisa.tensor_copy(t[i], ps)
        return out

    return random_kernel


def _total(ops, free, chip, overrides=None, heuristic="trivial"):
    """In program order (TRIVIAL) by default: the properties below are those of in-order
    queues; the compiler's reordering (ASAP) is a list scheduler, which admits Graham's
    anomalies (a shorter or an extra instruction can change which ready instruction a queue
    picks and lengthen the schedule)."""
    trace = nki.trace(_kernel(ops), symbolic=True, chip=chip)(
        nki.TensorSpec((128, free), nl.float32))
    return sim.schedule(trace, overrides=overrides, heuristic=heuristic).total_s


@SETTINGS
@given(OPS, st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 2)), FREE,
       CHIP)
def test_adding_an_instruction_never_reduces_total_time(ops, extra, free, chip):
    assert _total(ops + [extra], free, chip) >= _total(ops, free, chip) * (1 - 1e-12)


@SETTINGS
@given(PHASED, FREE, CHIP, st.sampled_from(("tensor", "vector", "scalar", "gpsimd")))
def test_doubling_an_engine_clock_never_increases_time(ops, free, chip, engine):
    """Holds where the schedule is a max-plus system in the durations: in-order engine
    queues, and DMAs that never compete out of program order (loads first, stores last).
    Work-conserving DMA dispatch otherwise admits Graham's list-scheduling anomalies: a
    store that becomes ready sooner can fill an idle gap and delay a chained load. So does
    NC-v2's dynamic Vector/GpSimd SBUF-port arbitration, hence no GpSimd work on trn1."""
    if chip == "trn1":
        ops = [op for op in ops if op[0] != "gp"]
    key = f"core.{engine}.clock_hz"
    clock = hw.load_chip(chip).core.engine(engine).clock_hz
    faster = _total(ops, free, chip, {key: 2 * clock})
    assert faster <= _total(ops, free, chip) * (1 + 1e-12)


@nki.jit
def resident_matmuls(x, count, n):
    a = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    b = nl.ndarray((128, n), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(a, 0.0)
    nisa.memset(b, 0.0)
    for _ in range(count):
        ps = nl.ndarray((128, n), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, a, b)
    return x


@settings(max_examples=20, deadline=None)
@given(st.integers(8, 40), st.integers(64, 512), CHIP)
def test_compute_bound_matmul_time_scales_with_flops(count, n, chip):
    spec = nki.TensorSpec((1, 1), nl.float32)
    one = sim.profile(resident_matmuls, spec, count, n, chip=chip, symbolic=True)
    two = sim.profile(resident_matmuls, spec, 2 * count, n, chip=chip, symbolic=True)
    assert two.flops == 2 * one.flops == 2 * count * 2 * 128 * 128 * n
    # the extra matmuls stream at the TensorE peak: N cycles for 2*128*128*N FLOPs
    peak = hw.load_chip(chip).core.peak_flops("bf16")
    assert (two.total_s - one.total_s) * peak == pytest.approx(two.flops - one.flops, rel=1e-9)
    assert two.bound is Engine.TENSOR
