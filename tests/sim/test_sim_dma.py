"""DMA timing: engine split, transfer overhead, bursts, fixed latency and the HBM share.

Expected values are computed by hand from the published figures: 16 engines per
NeuronCore-v2 streaming 17 B/ns each ([DMABW]), 1.3 us fixed latency, 820 GB/s HBM shared
by 2 cores, and the model constants of calibration/trn.yaml: 0.214 us between transfers on
an engine (90% of the engine at 32 KiB per transfer), 64-byte minimum bursts, and row
gathers in HBM at 25.5% of the HBM share.
"""

from __future__ import annotations

import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.hw import MemoryKind
from tessera.nki.stream import Opcode

ENGINE_BPS = 17e9
GAP = 32768 / 17e9 * (1 / 0.9 - 1)  # the transfer overhead, 0.214 us
LATENCY = 1.3e-6
HBM_SHARE = 820e9 / 2
STRIDED = 0.255
COLS = 8192  # bf16 columns: 16 KiB per partition, 2 MiB in all
TOTAL_BYTES = 128 * COLS * 2


def _piece_s(row_bytes: int, rows_per_engine: int = 8) -> float:
    """One engine moving `rows_per_engine` contiguous rows of `row_bytes`."""
    return GAP + rows_per_engine * row_bytes / ENGINE_BPS


@nki.jit
def copy_whole(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(t, x)
    nisa.dma_copy(out, t)
    return out


@nki.jit
def copy_in_pieces(x, piece=128):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    n = x.shape[1] // piece
    for j in range(n):
        nisa.dma_copy(t[:, j * piece:(j + 1) * piece], x[:, j * piece:(j + 1) * piece])
    for j in range(n):
        nisa.dma_copy(out[:, j * piece:(j + 1) * piece], t[:, j * piece:(j + 1) * piece])
    return out


def _profile(kernel, chip="trn1", **kw):
    return sim.profile(kernel, nki.TensorSpec((128, COLS), nl.bfloat16), chip=chip,
                       symbolic=True, **kw)


def test_large_copy_runs_at_the_modelled_dma_bandwidth():
    p = _profile(copy_whole)
    piece = _piece_s(COLS * 2)  # 8 rows of 16 KiB per engine
    assert piece == pytest.approx(7.9243e-6, rel=1e-4)
    assert GAP == pytest.approx(2.1417e-7, rel=1e-4)
    dmas = p.timeline.instructions
    for s in dmas:
        assert s.end_s - s.start_s == pytest.approx(piece, rel=1e-9)
        assert s.busy_s == pytest.approx(16 * piece)
    # load: latency + transfer; store: its own latency + transfer after the load
    assert p.total_s == pytest.approx(2 * (LATENCY + piece), rel=1e-9)
    rate = TOTAL_BYTES / piece  # 16 x 17 B/ns x 7.71 / 7.93: the gap costs 2.7%
    assert rate == pytest.approx(264.6e9, rel=1e-3)
    assert p.hbm_read_bytes == p.hbm_write_bytes == TOTAL_BYTES
    assert p.achieved_hbm_bytes_per_s == pytest.approx(2 * TOTAL_BYTES / p.total_s)
    assert p.usage("dma").utilisation == pytest.approx(2 * piece / p.total_s)
    # x is one contiguous range: the HBM share is held at its full rate, below the engines
    assert p.usage("hbm").busy_s == pytest.approx(2 * TOTAL_BYTES / HBM_SHARE)


def test_256_byte_pieces_pay_the_transfer_overhead():
    whole = _profile(copy_whole)
    pieces = _profile(copy_in_pieces)  # 64 loads + 64 stores of 128 x 128 bf16
    piece = _piece_s(256)
    assert piece == pytest.approx(334.6e-9, rel=1e-3)
    assert GAP / piece == pytest.approx(0.64, abs=0.01)  # 'severely overhead-bound'
    # each piece is a row gather in HBM (256 B rows, 16 KiB apart), which holds the HBM
    # share for 32 KiB / (0.255 x 410 GB/s) = 0.313 us: less than the engines need
    assert 128 * 256 / (STRIDED * HBM_SHARE) < piece
    # the engines stay busy back to back; only the first load's latency is exposed
    assert pieces.total_s == pytest.approx(LATENCY + 128 * piece, rel=1e-6)
    assert pieces.total_s / whole.total_s == pytest.approx(2.39, rel=0.01)
    loads = [s for s in pieces.timeline.instructions if s.index < 64]
    assert all(s.opcode is Opcode.DMA_COPY for s in loads)
    assert [s.start_s for s in loads] == sorted(s.start_s for s in loads)


def test_element_strided_access_pays_a_burst_per_element():
    @nki.jit
    def gather_columns(x):
        t = nl.ndarray((128, COLS // 8), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[:, ::8])  # 2-byte runs in HBM
        return x

    p = _profile(gather_columns)
    (s,) = p.timeline.instructions
    per_engine_runs = 8 * COLS // 8
    assert s.end_s - s.start_s == pytest.approx(GAP + per_engine_runs * 64 / ENGINE_BPS,
                                                rel=1e-9)
    plan = p.timeline.dma_plans[0]
    assert plan.descriptors == 128 * COLS // 8 and plan.engines == 16


def test_the_hbm_share_caps_fast_engines():
    fast = _profile(copy_whole, overrides={"core.dma.engine_bytes_per_s": 200e9,
                                           "core.dma.engine_effective_bytes_per_s": 200e9})
    hbm_s = TOTAL_BYTES / HBM_SHARE  # 820 GB/s shared by the 2 cores of a Trn1
    assert fast.total_s == pytest.approx(2 * (LATENCY + hbm_s), rel=1e-9)
    assert fast.usage("hbm").busy_s == pytest.approx(2 * hbm_s)
    assert fast.bound is MemoryKind.HBM


def test_row_gathers_stream_at_the_strided_hbm_efficiency():
    @nki.jit
    def half_rows(x):
        t = nl.ndarray((128, COLS // 2), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[:, 0:COLS // 2])  # 128 rows of 8 KiB, 16 KiB apart
        return x

    p = _profile(half_rows)
    (s,) = p.timeline.instructions
    moved = TOTAL_BYTES // 2
    hbm_s = moved / (STRIDED * HBM_SHARE)  # 10.0 us at 104.6 GB/s
    assert _piece_s(COLS) < hbm_s  # the engines alone would take 4.07 us
    assert s.end_s - s.start_s == pytest.approx(hbm_s, rel=1e-9)
    assert p.bound is MemoryKind.HBM
    assert p.usage("hbm").busy_s == pytest.approx(hbm_s)


def test_a_partition_broadcast_rereads_one_range_at_the_contiguous_rate():
    # one 16 KiB row into all 128 partitions: 128 DMA buffers read the same range ([A2]:
    # a buffer per partition, no merged reads), streamed like a contiguous access, so the
    # DMA engines bind and not HBM (a row gather would take 2 MiB / 104.6 GB/s = 20.1 us)
    @nki.jit
    def broadcast_row(x):
        t = nl.ndarray((128, COLS), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[0:1, :].broadcast(0, 128))
        return x

    p = _profile(broadcast_row)
    (s,) = p.timeline.instructions
    plan = p.timeline.dma_plans[0]
    assert plan.hbm_read_bytes == TOTAL_BYTES and plan.descriptors == 128
    assert plan.hbm_s == pytest.approx(TOTAL_BYTES / HBM_SHARE, rel=1e-9)
    assert s.end_s - s.start_s == pytest.approx(_piece_s(COLS * 2), rel=1e-9)
    assert p.bound is not MemoryKind.HBM


def test_fewer_partitions_use_fewer_engines():
    @nki.jit
    def narrow(x):
        t = nl.ndarray((32, COLS), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x[0:32, :])
        return x

    p = _profile(narrow)
    plan = p.timeline.dma_plans[0]
    assert plan.engines == 4  # one engine per 8 partitions
    assert plan.piece_s == pytest.approx(_piece_s(COLS * 2))


def test_hardware_dge_has_a_shorter_fixed_latency_on_trn2():
    @nki.jit
    def load(x, mode):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x, dge_mode=mode)
        return x

    spec = nki.TensorSpec((128, 512), nl.bfloat16)
    sw = sim.profile(load, spec, nisa.dge_mode.none, chip="trn2", symbolic=True)
    hwdge = sim.profile(load, spec, nisa.dge_mode.hwdge, chip="trn2", symbolic=True)
    assert sw.timeline.start_s[0] == pytest.approx(1.3e-6)
    assert hwdge.timeline.start_s[0] == pytest.approx(0.6e-6)
