"""LNC=2 semantics: the cores take turns at core_barrier and sendrecv, races on shared HBM
(between two barriers the cores are unordered) are errors naming both accesses, and a core
waiting for a peer that never comes is a deadlock naming both cores."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki
from tessera.nki.errors import CoreDeadlockError, CoreRaceError, KernelUsageError
from tessera.nki.races import _dense

RNG = np.random.default_rng(18)
X = RNG.standard_normal((64, 32)).astype(np.float32)


def line_of(fn, marker: str) -> str:
    """file:line of the source line of `fn` that carries `# <marker>`."""
    lines, first = inspect.getsourcelines(fn)
    hits = [first + i for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    return f"{inspect.getsourcefile(fn)}:{hits[0]}"


def fill_then_halves(barrier: bool):
    """Each core zero-fills the whole shared output, then writes exp of its half of x."""

    def kernel(x):
        rows, cols = x.shape
        half = rows // 2
        core = nl.program_id(0)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        zeros = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.memset(zeros, 0.0)
        nisa.dma_copy(out, zeros)  # fill
        if barrier:
            nisa.core_barrier(out, (0, 1))
        t = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[core * half:(core + 1) * half, :])
        nisa.activation(t, nl.exp, t)
        nisa.dma_copy(out[core * half:(core + 1) * half, :], t)  # half
        return out

    return kernel


def test_zero_fill_then_halves_without_a_barrier_is_a_race_naming_both_writes():
    kernel = fill_then_halves(barrier=False)
    with pytest.raises(CoreRaceError) as err:
        nki.simulate(nki.jit(kernel)[2])(X)
    msg = str(err.value)
    # core 1's fill overwrites the half core 0 has written: both writes are named
    assert f"core 1's dma_copy at {line_of(kernel, 'fill')} writes it" in msg
    assert f"core 0's dma_copy at {line_of(kernel, 'half')} writes it" in msg
    assert "out.shared0[0, 0]" in msg and "core_barrier" in msg
    assert err.value.location == line_of(kernel, "fill")
    assert isinstance(err.value, KernelUsageError)


def test_zero_fill_barrier_then_halves_computes_the_output():
    kernel = nki.jit(fill_then_halves(barrier=True))
    np.testing.assert_allclose(nki.simulate(kernel[2])(X), np.exp(X), rtol=1e-6)
    # the fills of both cores store the same zeros: either order gives one result
    res = nki.trace(kernel[2], symbolic=True)(nki.TensorSpec(X.shape))
    assert [i.core for i in res.instructions if i.opcode is nki.Opcode.CORE_BARRIER] == [0, 1]


@nki.jit
def interleaved_columns(x):
    """Core c writes columns c, c+2, ...: strided, overlapping bounds, disjoint elements."""
    rows, cols = x.shape
    core = nl.program_id(0)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((rows, cols // 2), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(t, x[:, core::2])
    nisa.activation(t, nl.copy, t, scale=2.0)
    nisa.dma_copy(out[:, core::2], t)
    return out


def test_disjoint_writes_without_a_barrier_are_fine():
    np.testing.assert_array_equal(nki.simulate(interleaved_columns[2])(X), 2 * X)


def test_a_read_of_what_the_peer_writes_is_a_race_also_in_symbolic_mode():
    def kernel(x):
        core = nl.program_id(0)
        mid = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 2), x.dtype, buffer=nl.sbuf)
        if core == 0:
            nisa.dma_copy(mid, x)  # write
        else:
            nisa.dma_copy(t, mid[8:9, 3:5])  # read
        return x

    for run in (nki.simulate(nki.jit(kernel)[2]),
                nki.trace(nki.jit(kernel)[2], symbolic=True)):
        with pytest.raises(CoreRaceError) as err:
            run(X)
        msg = str(err.value)
        assert f"core 1's dma_copy at {line_of(kernel, 'read')} reads it" in msg
        assert f"core 0's dma_copy at {line_of(kernel, 'write')} writes it" in msg
        assert "out.shared0[8, 3]" in msg  # the first shared_hbm tensor (mid)


def test_a_barrier_orders_the_phases_and_a_race_after_it_is_still_found():
    def kernel(x):
        core = nl.program_id(0)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        flag = nl.ndarray((4, 32), x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.memset(t, 1.0 + core)
        nisa.dma_copy(out[core * 32:(core + 1) * 32, :], t[0:32, :])
        nisa.core_barrier(out, (0, 1))
        u = nl.ndarray((32, 32), x.dtype, buffer=nl.sbuf)
        # the peer's half, written before the barrier: ordered, no race
        nisa.dma_copy(u, out[(1 - core) * 32:(2 - core) * 32, :])
        nisa.dma_copy(flag, t[0:4, :])  # both
        return out

    with pytest.raises(CoreRaceError) as err:
        nki.simulate(nki.jit(kernel)[2])(X)
    both = line_of(kernel, "both")
    for core in (0, 1):
        assert f"core {core}'s dma_copy at {both} writes it" in str(err.value)
    assert "out.shared1[0, 0]" in str(err.value)  # flag; out's halves did not race
    assert "of the two different values stored, the one that lands last stays" in str(err.value)


def test_both_cores_storing_equal_values_is_not_a_race():
    @nki.jit
    def all_gather(x):
        """Each core sends its half to the peer and writes the whole output."""
        rows, cols = x.shape
        half = rows // 2
        core = nl.program_id(0)
        peer = 1 - core
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        mine = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        theirs = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(mine, x[core * half:(core + 1) * half, :])
        nisa.sendrecv(mine, theirs, send_to_rank=peer, recv_from_rank=peer, pipe_id=0)
        nisa.dma_copy(out[core * half:(core + 1) * half, :], mine)
        nisa.dma_copy(out[peer * half:(peer + 1) * half, :], theirs)
        return out

    np.testing.assert_array_equal(nki.simulate(all_gather[2])(X), X)


@nki.jit
def ring_sum(x):
    """Three rounds of sendrecv: each core adds the peer's running tile to its own."""
    rows, cols = x.shape
    half = rows // 2
    core = nl.program_id(0)
    peer = 1 - core
    out = nl.ndarray((half, cols), x.dtype, buffer=nl.shared_hbm)
    acc = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    got = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(acc, x[core * half:(core + 1) * half, :])
    for _ in range(3):
        nisa.sendrecv(acc, got, send_to_rank=peer, recv_from_rank=peer, pipe_id=0)
        nisa.tensor_tensor(acc, acc, got, op=nl.add)
    if core == 0:
        nisa.dma_copy(out, acc)
    return out


def test_sendrecv_rounds_exchange_the_tiles_of_the_same_round():
    a, b = X[:32].astype(np.float64), X[32:].astype(np.float64)
    for _ in range(3):
        a, b = a + b, b + a
    np.testing.assert_allclose(nki.simulate(ring_sum[2])(X), a, rtol=1e-5)


def test_indirect_scatters_race_only_on_common_rows():
    def scatter(x, ids):
        core = nl.program_id(0)
        n, d = 8, x.shape[1]
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        idx = nl.ndarray((n, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(idx, ids[core * n:(core + 1) * n, :])
        t = nl.ndarray((n, d), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[core * n:(core + 1) * n, :])
        nisa.dma_copy(out.ap([[d, n], [1, d]], 0, vector_offset=idx, indirect_dim=0), t)
        return out

    kernel = nki.jit(scatter)[2]
    ids = RNG.permutation(64)[:16].astype(np.int32).reshape(16, 1)
    out = nki.simulate(kernel)(X, ids)
    np.testing.assert_array_equal(out[ids[:, 0]], X[:16])
    ids[12, 0] = ids[2, 0]  # core 1's row 4 lands where core 0's row 2 does
    with pytest.raises(CoreRaceError, match=f"out.shared0\\[{ids[2, 0]}, 0\\]"):
        nki.simulate(kernel)(X, ids)


def test_a_barrier_against_a_sendrecv_is_a_deadlock_naming_both_cores():
    def kernel(x):
        t = nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf)
        if nl.program_id(0) == 0:
            nisa.core_barrier(x, (0, 1))  # barrier
        else:
            nisa.sendrecv(t, t, 0, 0, 0)  # sendrecv
        return x

    with pytest.raises(CoreDeadlockError) as err:
        nki.simulate(nki.jit(kernel)[2])(np.zeros((2, 2), np.float32))
    msg = str(err.value)
    assert (f"core 0 waits at core_barrier #0 at {line_of(kernel, 'barrier')} for core 1, "
            f"but core 1 waits at sendrecv #0 at {line_of(kernel, 'sendrecv')}") in msg
    assert err.value.location == line_of(kernel, "barrier")
    # symbolic traces synchronise too, so they find the same deadlock
    with pytest.raises(CoreDeadlockError):
        nki.trace(nki.jit(kernel)[2], symbolic=True)(nki.TensorSpec((2, 2)))


def test_an_extra_barrier_on_one_core_is_a_deadlock():
    @nki.jit
    def kernel(x):
        nisa.core_barrier(x, (0, 1))
        if nl.program_id(0) == 1:
            nisa.core_barrier(x, (0, 1))
        return x

    with pytest.raises(CoreDeadlockError, match="core 1 waits at core_barrier #1 .* but core 0 "
                       "finished the kernel after 1 core_barrier and 0 sendrecvs"):
        nki.simulate(kernel[2])(np.zeros((2, 2), np.float32))


def test_a_sendrecv_the_peer_never_issues_is_a_deadlock_naming_both_cores():
    def kernel(x):
        t = nl.ndarray((8, 8), nl.float32, buffer=nl.sbuf)
        nisa.core_barrier(x, (0, 1))
        if nl.program_id(0) == 0:
            nisa.sendrecv(t, t, send_to_rank=1, recv_from_rank=1, pipe_id=0)  # here
        return x

    with pytest.raises(CoreDeadlockError) as err:
        nki.simulate(nki.jit(kernel)[2])(np.zeros((2, 2), np.float32))
    assert (f"core 0 waits at sendrecv #0 at {line_of(kernel, 'here')} for core 1's sendrecv "
            "#0, but core 1 finished the kernel after 1 core_barrier and 0 sendrecvs, so it "
            "never comes") in str(err.value)


@pytest.mark.parametrize(("pattern", "dense"), [
    (((32, 4), (1, 32)), True), (((32, 4), (2, 16)), False), (((1, 4), (2, 3)), True),
    (((-1, 4),), True), (((0, 5), (1, 3)), True), ((), True)])
def test_dense_patterns(pattern, dense):
    assert _dense(pattern) is dense


def fill_then_same_rows(same: bool):
    """Each core zero-fills the whole shared output, then stores rows 0..15 of x into the
    same rows (equal values), or its own copy scaled by core + 1 (different values)."""

    def kernel(x):
        core = nl.program_id(0)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        zeros = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.memset(zeros, 0.0)
        nisa.dma_copy(out, zeros)
        rows = nl.ndarray((16, x.shape[1]), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(rows, x[0:16, :])
        if not same:
            nisa.tensor_scalar(rows, rows, nl.multiply, float(core + 1))
        nisa.dma_copy(out[0:16, :], rows)  # rows
        return out

    return nki.jit(kernel)[2]


def test_each_cores_last_write_decides_so_fill_then_the_same_rows_is_fine():
    """The vendor's router writes this way: core 1's zero-fill lands between core 0's
    writes, yet every order ends with the same bytes (each core's last write is equal)."""
    out = nki.simulate(fill_then_same_rows(True), chip="trn2")(X)
    want = np.zeros_like(X)
    want[:16] = X[:16]
    np.testing.assert_array_equal(out, want)


def test_different_last_writes_of_the_same_rows_are_a_race():
    kernel = fill_then_same_rows(False)
    with pytest.raises(CoreRaceError, match="different values") as info:
        nki.simulate(kernel, chip="trn2")(X)
    assert info.value.location == line_of(kernel.fn, "rows")
