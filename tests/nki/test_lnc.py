"""LNC=2 kernels: program_id sharding, core_barrier, sendrecv, failure propagation, and
nisa.get_nc_version."""

from __future__ import annotations

import time

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import (
    BufferKindError,
    CoreDeadlockError,
    CoreRaceError,
    DTypeError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(("chip", "version"), [("trn1", nisa.nc_version.gen2),
                                               ("trn2", nisa.nc_version.gen3),
                                               ("trn3", nisa.nc_version.gen4)])
def test_get_nc_version_follows_the_chip(chip, version, monkeypatch):
    @nki.jit
    def kernel(x):
        assert nisa.get_nc_version() is version
        return x

    nki.simulate(kernel, chip=chip)(np.zeros((2, 2), np.float32))
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", chip)
    assert nisa.get_nc_version() is version  # on the host: the default chip


@nki.jit
def half_rows_exp(x):
    """Each core computes exp of its half of the rows into the shared output."""
    rows, cols = x.shape
    half = rows // nl.num_programs()
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    core = nl.program_id(0)
    t = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(t, x[core * half:(core + 1) * half, :])
    nisa.activation(t, nl.exp, t)
    nisa.dma_copy(out[core * half:(core + 1) * half, :], t)
    return out


def test_lnc2_cores_split_the_rows_by_program_id():
    x = RNG.standard_normal((256, 48)).astype(np.float32)
    res = nki.trace(half_rows_exp[2])(x)
    np.testing.assert_allclose(res.outputs, np.exp(x), rtol=1e-6)
    assert res.lnc == 2
    acts = [i for i in res.instructions if i.opcode is Opcode.ACTIVATION]
    assert sorted(i.core for i in acts) == [0, 1]
    np.testing.assert_allclose(nki.simulate(half_rows_exp)(x[:128]), np.exp(x[:128]),
                               rtol=1e-6)


def exchange_halves(use_barrier: bool):
    """Core c writes 2*x into its half of `mid`, then copies the *other* half to `out`.

    Core 1 dawdles before writing, so without the barrier core 0 reads unwritten memory.
    """

    @nki.jit
    def kernel(x):
        rows, cols = x.shape
        half = rows // 2
        core = nl.program_id(0)
        other = 1 - core
        mid = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[core * half:(core + 1) * half, :])
        nisa.activation(t, nl.copy, t, scale=2.0)
        if core == 1:
            time.sleep(0.1)
        nisa.dma_copy(mid[core * half:(core + 1) * half, :], t)
        if use_barrier:
            nisa.core_barrier(mid, (0, 1))
        u = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(u, mid[other * half:(other + 1) * half, :])
        nisa.dma_copy(out[other * half:(other + 1) * half, :], u)
        return out

    return kernel


def test_core_barrier_orders_shared_hbm_writes_between_cores():
    x = RNG.standard_normal((64, 16)).astype(np.float32)
    res = nki.trace(exchange_halves(True)[2])(x)
    np.testing.assert_array_equal(res.outputs, 2 * x)
    barriers = [i for i in res.instructions if i.opcode is Opcode.CORE_BARRIER]
    assert [i.core for i in barriers] == [0, 1]
    assert all(i.engine is Engine.GPSIMD for i in barriers)
    # The same kernel without the barrier races: core 0 reads core 1's half while core 1
    # writes it, unordered (tests/nki/test_lnc_races.py has the details).
    with pytest.raises(CoreRaceError, match="reads it"):
        nki.simulate(exchange_halves(False)[2])(x)


def test_core_barrier_with_one_core_only_records():
    res = nki.trace(exchange_halves(True))(RNG.standard_normal((64, 16)).astype(np.float32))
    assert [i.opcode for i in res.instructions].count(Opcode.CORE_BARRIER) == 1


@nki.jit
def swap_halves(x):
    """Each core loads its half and swaps it with the peer's through sendrecv."""
    rows, cols = x.shape
    half = rows // 2
    core = nl.program_id(0)
    peer = 1 - core
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    mine = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    theirs = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(mine, x[core * half:(core + 1) * half, :])
    nisa.sendrecv(mine, theirs, send_to_rank=peer, recv_from_rank=peer, pipe_id=0)
    nisa.activation(theirs, nl.copy, theirs, scale=-1.0)
    nisa.sendrecv(theirs, mine, send_to_rank=peer, recv_from_rank=peer, pipe_id=1)
    nisa.dma_copy(out[core * half:(core + 1) * half, :], theirs)
    return out


def test_sendrecv_swaps_tiles_between_the_cores():
    x = RNG.standard_normal((256, 40)).astype(np.float32)
    res = nki.trace(swap_halves[2])(x)
    np.testing.assert_array_equal(res.outputs, -np.concatenate([x[128:], x[:128]]))
    sends = [i for i in res.instructions if i.opcode is Opcode.SENDRECV]
    assert len(sends) == 4 and all(i.engine is Engine.DMA for i in sends)
    assert {(i.core, i.attrs.pipe_id, i.attrs.send_to_rank) for i in sends} == {
        (0, 0, 1), (0, 1, 1), (1, 0, 0), (1, 1, 0)}


def test_sendrecv_symbolic_lnc2_records_without_waiting():
    spec = nki.TensorSpec((256, 40))
    sym = nki.trace(swap_halves[2], symbolic=True)(spec)
    fun = nki.trace(swap_halves[2])(RNG.standard_normal((256, 40)).astype(np.float32))
    assert sym.instructions == fun.instructions


def test_sendrecv_needs_two_cores_and_nc_v3():
    x = np.zeros((256, 8), np.float32)
    with pytest.raises(KernelUsageError, match="kernel\\[2\\]"):
        nki.simulate(swap_halves)(x)
    with pytest.raises(KernelUsageError, match="trn1 runs logical cores of 1 physical core"):
        nki.simulate(swap_halves[2], chip="trn1")(x)


def _bad_sendrecv(case: str):
    @nki.jit
    def kernel(x):
        a = nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf)
        if case == "psum":
            b = nl.ndarray((8, 8), nl.float32, buffer=nl.psum)
        elif case == "dtype":
            b = nl.ndarray((8, 8), nl.bfloat16, buffer=nl.sbuf)
        else:
            b = nl.ndarray((8, 4), nl.float32, buffer=nl.sbuf)
        nisa.sendrecv(a, b, 1 - nl.program_id(0), 1 - nl.program_id(0), 0)
        return x

    return kernel


@pytest.mark.parametrize(("case", "error"), [("psum", BufferKindError), ("dtype", DTypeError),
                                             ("shape", ShapeMismatchError)])
def test_sendrecv_rejects_bad_tiles(case, error):
    with pytest.raises(error):
        nki.simulate(_bad_sendrecv(case)[2])(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("wait_in", ["core_barrier", "sendrecv"])
def test_an_error_on_core_1_ends_the_launch_instead_of_hanging(wait_in):
    @nki.jit
    def kernel(x):
        t = nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf)
        u = nl.ndarray((8, 4), nl.float32, buffer=nl.sbuf)
        if nl.program_id(0) == 1:
            time.sleep(0.05)  # core 0 is already waiting when core 1 fails
            nisa.tensor_tensor(t, t, u, op=nl.add)  # shape mismatch
        if wait_in == "core_barrier":
            nisa.core_barrier(x, (0, 1))
        else:
            nisa.sendrecv(t, t, 1, 1, 0)
        return x

    start = time.monotonic()
    with pytest.raises(ShapeMismatchError):
        nki.simulate(kernel[2])(np.zeros((2, 2), np.float32))
    assert time.monotonic() - start < 5.0


@pytest.mark.parametrize("wait_in", ["core_barrier", "sendrecv"])
def test_a_peer_that_never_arrives_is_a_deadlock(wait_in):
    @nki.jit
    def kernel(x):
        if nl.program_id(0) == 0:
            t = nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf)
            if wait_in == "core_barrier":
                nisa.core_barrier(x, (0, 1))
            else:
                nisa.sendrecv(t, t, 1, 1, 0)
        return x

    with pytest.raises(CoreDeadlockError, match="core 0 waits .* core 1 finished"):
        nki.simulate(kernel[2])(np.zeros((2, 2), np.float32))


def test_core_barrier_rejects_on_chip_data_and_other_cores():
    @nki.jit
    def on_chip(x):
        nisa.core_barrier(nl.ndarray((4, 4), nl.float32, buffer=nl.sbuf), (0, 1))
        return x

    @nki.jit
    def other_cores(x):
        nisa.core_barrier(x, (0, 2))
        return x

    x = np.zeros((4, 4), np.float32)
    with pytest.raises(BufferKindError):
        nki.simulate(on_chip[2])(x)
    with pytest.raises(KernelUsageError, match="cores=\\(0, 1\\)"):
        nki.simulate(other_cores)(x)
