"""The allocator: liveness, placement, reuse edges, PSUM banks and capacity errors."""

from __future__ import annotations

import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.buffers import Buffer

TRN1 = hw.load_chip("trn1")
F32 = nl.float32


def _allocate(trace, chip):
    return sim.allocate(sim.flatten(trace.instructions, trace.tensors), chip)


def _trace(kernel, *shapes, chip="trn1"):
    return nki.trace(kernel, symbolic=True, chip=chip)(
        *(nki.TensorSpec(s, F32) for s in shapes))


@nki.jit
def rotate_tiles(x, n=6):
    """n tiles of x's shape, each loaded, negated and stored: each dies before the next."""
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    for _ in range(n):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x)
        nisa.tensor_scalar(t, t, nl.multiply, -1.0)
        nisa.dma_copy(out, t)
    return out


def test_liveness_is_first_to_last_access():
    tr = _trace(rotate_tiles, (128, 1024))
    live = {p.name: [p.first, p.last] for p in _allocate(tr, TRN1).placements}
    assert [live[f"sb{i}"] for i in range(6)] == [[3 * i, 3 * i + 2] for i in range(6)]


def test_short_lived_tiles_rotate_through_free_memory():
    tr = _trace(rotate_tiles, (128, 1024))  # 4 KiB per partition each
    al = _allocate(tr, TRN1)
    starts = [p.start_bytes for p in al.placements]
    assert starts == [0, 4096, 8192, 12288, 16384, 20480]  # never-used space first
    assert al.reuses == ()
    assert al.peak_sbuf_bytes == 4096
    assert al.hbm_tensors == ("out0", "x")  # address spaces of their own


def test_reuse_under_pressure_waits_for_the_previous_occupant():
    tr = _trace(rotate_tiles, (128, 1024))
    small = hw.with_overrides(TRN1, {"core.sbuf.bytes_per_partition": 3 * 4096})
    al = _allocate(tr, small)
    starts = [p.start_bytes for p in al.placements]
    assert starts == [0, 4096, 8192, 0, 4096, 8192]
    # tile 3 takes tile 0's bytes: all its accesses wait for tile 0's last access (the store)
    assert [(r.tensor, r.first, r.producers) for r in al.reuses] == [
        ("sb3", 9, (2,)), ("sb4", 12, (5,)), ("sb5", 15, (8,))]


def test_reuse_prefers_the_oldest_freed_space():
    @nki.jit
    def mixed(x):
        a = nl.ndarray((128, 2048), F32, buffer=nl.sbuf)  # 8 KiB
        nisa.memset(a, 0.0)
        b = nl.ndarray((128, 1024), F32, buffer=nl.sbuf)  # 4 KiB
        nisa.memset(b, 0.0)
        c = nl.ndarray((128, 1024), F32, buffer=nl.sbuf)  # 4 KiB: wraps to a's bytes
        nisa.memset(c, 0.0)
        return x

    tr = _trace(mixed, (1, 1))
    small = hw.with_overrides(TRN1, {"core.sbuf.bytes_per_partition": 12288})
    al = _allocate(tr, small)
    place = {p.name: p.start_bytes for p in al.placements}
    assert place == {"sb0": 0, "sb1": 8192, "sb2": 0}
    assert al.reuses[0].producers == (0,)  # a's memset, the oldest occupant


def test_psum_tiles_take_whole_banks():
    @nki.jit
    def banks(x):
        one = nl.ndarray((128, 512), F32, buffer=nl.psum)  # 2 KiB: one bank
        two = nl.ndarray((128, 1024), F32, buffer=nl.psum)  # 4 KiB: two banks
        small = nl.ndarray((128, 8), F32, buffer=nl.psum)  # 32 B: still a whole bank
        for t in (one, two, small):
            nisa.memset(t, 0.0)
        s = nl.ndarray((128, 8), F32, buffer=nl.sbuf)
        nisa.tensor_copy(s, one[:, 0:8])
        nisa.tensor_copy(s, two[:, 0:8])
        nisa.tensor_copy(s, small)
        return x

    tr = _trace(banks, (1, 1))
    al = _allocate(tr, TRN1)
    psum = {p.name: (p.start_bytes, p.size_bytes) for p in al.placements
            if p.buffer is Buffer.PSUM}
    assert psum == {"ps0": (0, 2048), "ps1": (2048, 4096), "ps2": (6144, 2048)}
    assert al.peak_psum_bytes == 4 * 2048


def _two_big_tiles(x):
    a = nl.ndarray((128, 25600), F32, buffer=nl.sbuf)  # 100 KiB per partition
    b = nl.ndarray((128, 25600), F32, buffer=nl.sbuf)
    nisa.dma_copy(a, x)
    nisa.dma_copy(b, x)  # a and b are live together: 200 KiB > 192 KiB on trn1
    nisa.tensor_tensor(a, a, b, op=nl.add)
    return x


def test_sbuf_capacity_error_lists_the_live_tensors():
    tr = _trace(nki.jit(_two_big_tiles), (128, 25600))
    with pytest.raises(sim.SbufCapacityError) as err:
        _allocate(tr, TRN1)
    msg = str(err.value)
    assert "SBUF capacity exceeded" in msg and "sb1[128, 25600]" in msg
    assert "sb0[128, 25600] float32 102400 B/partition" in msg
    assert "test_sim_alloc.py" in msg and "196608" in msg
    assert isinstance(err.value, sim.CapacityError)


def test_a_bigger_sbuf_what_if_fits():
    trace = _trace(nki.jit(_two_big_tiles), (128, 25600))
    p = sim.schedule(trace, overrides={"core.sbuf.bytes_per_partition": 262144})
    assert p.peak_sbuf_bytes == 2 * 102400
    with pytest.raises(sim.SbufCapacityError):
        sim.schedule(trace)


def test_psum_capacity_error():
    @nki.jit
    def nine_banks(x):
        tiles = [nl.ndarray((128, 512), F32, buffer=nl.psum) for _ in range(9)]
        for t in tiles:
            nisa.memset(t, 0.0)
        s = nl.ndarray((128, 512), F32, buffer=nl.sbuf)
        for t in tiles:
            nisa.tensor_copy(s, t)
        return x

    tr = _trace(nine_banks, (1, 1))
    with pytest.raises(sim.PsumCapacityError, match=r"PSUM capacity exceeded.*ps8"):
        _allocate(tr, TRN1)


def test_a_trace_on_a_what_if_chip_is_scheduled_on_that_chip():
    small = hw.with_overrides(TRN1, {"core.sbuf.bytes_per_partition": 8192})
    trace = _trace(rotate_tiles, (128, 512), chip=small)  # 2 KiB tiles, 4 fit in 8 KiB
    assert trace.chip is small
    p = sim.schedule(trace)  # no chip given: the one the trace was made for
    assert p.chip_spec.core.sbuf.bytes_per_partition == 8192
    assert len(p.allocation.reuses) == 2  # tiles 4 and 5 reuse the first two tiles' bytes
    stock = sim.schedule(trace, "trn1")  # naming a preset still overrides the trace's chip
    assert stock.allocation.reuses == ()
