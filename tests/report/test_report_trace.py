"""Chrome/Perfetto trace and the lanes behind it: schema, counts, ordering, provenance."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

import tessera
from tessera import nki, sim
from tessera.nki import TensorSpec
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Opcode
from tessera.report import LaneKind, chrome_trace, lanes, write_chrome_trace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
EVENT_KEYS = {"name", "cat", "ph", "pid", "tid", "ts", "dur", "args"}


def _matmul(name: str, chip: str = "trn1", **kw: object) -> sim.Profile:
    kernel = load_kernel_file(EXAMPLES / "matmul_tutorial.py").kernel(name)
    return sim.profile(kernel, TensorSpec((512, 256), "bfloat16"),
                       TensorSpec((512, 1024), "bfloat16"), chip=chip, symbolic=True, **kw)


@nki.jit
def swap_halves(x):
    """LNC=2: each core loads its half, swaps it with the peer (sendrecv), then meets it."""
    rows, cols = x.shape
    half = rows // 2
    core = nl.program_id(0)
    peer = 1 - core
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    mine = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    theirs = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(mine, x[core * half:(core + 1) * half, :])
    nisa.sendrecv(mine, theirs, send_to_rank=peer, recv_from_rank=peer, pipe_id=0)
    nisa.activation(theirs, nl.exp, theirs)
    nisa.dma_copy(out[core * half:(core + 1) * half, :], theirs)
    nisa.core_barrier(out, (0, 1))
    return out


@pytest.fixture(scope="module")
def blocked() -> sim.Profile:
    return _matmul("matmul_block_all_dims")


@pytest.fixture(scope="module")
def lnc2() -> sim.Profile:
    return sim.profile(swap_halves, TensorSpec((256, 64), "float32"), chip="trn2",
                       symbolic=True, lnc=2)


def _expected_events(p: sim.Profile) -> int:
    """One event per compute instruction and sendrecv, one per DMA engine a DMA used."""
    tl = p.timeline
    pieces = 0
    for pos, inst in enumerate(tl.stream.instructions):
        plan = tl.dma_plans.get(pos)
        pieces += plan.engines if plan and inst.opcode is not Opcode.SENDRECV else 1
    return pieces


def _check_trace(p: sim.Profile, trace: dict) -> list[dict]:
    trace = json.loads(json.dumps(trace, allow_nan=False))  # strictly valid JSON
    assert trace["displayTimeUnit"] == "ns"
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == _expected_events(p)
    named = {(e["pid"], e["tid"]) for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    last_ts: dict[tuple[int, int], float] = defaultdict(lambda: -1.0)
    for e in slices:
        assert EVENT_KEYS <= e.keys(), e
        assert isinstance(e["ts"], float) and isinstance(e["dur"], float)
        assert e["dur"] >= 0.0 and e["ts"] >= 0.0
        assert {"opcode", "source", "index", "position", "bytes"} <= e["args"].keys()
        track = (e["pid"], e["tid"])
        assert track in named
        assert e["ts"] >= last_ts[track], f"timestamps go back on track {track}"
        last_ts[track] = e["ts"]
        inst = p.timeline.stream.instructions[e["args"]["position"]]
        assert e["name"] == inst.opcode.value
        assert e["args"]["source"].endswith(f":{inst.location.line}")
        assert e["args"]["opcode"] == inst.opcode.value and e["args"]["bytes"] > 0
        if e["cat"] != "dma":
            assert e["args"]["flops"] == sim.matmul_flops(inst)
            assert (e["args"]["flops"] > 0) == (inst.opcode.value == "nc_matmul")
    end_us = max(e["ts"] + e["dur"] for e in slices)
    assert end_us <= p.total_s * 1e6 * (1 + 1e-9) + 1e-6
    return slices


def test_trace_schema_counts_and_order(blocked: sim.Profile) -> None:
    slices = _check_trace(blocked, chrome_trace(blocked, kernel="matmul_block_all_dims"))
    names = {e["name"] for e in slices}
    assert {"nc_matmul", "dma_copy", "tensor_tensor"} <= names
    # the 16 DMA engines of NeuronCore-v2 each get a track; 128-partition loads use all
    dma_tracks = {e["tid"] for e in slices if e["cat"] == "dma"}
    assert len(dma_tracks) == 16


def test_trace_records_version_chip_and_overrides(blocked: sim.Profile) -> None:
    other = chrome_trace(blocked, kernel="k", overrides={"core.sbuf.bytes_per_partition":
                                                         "262144"})["otherData"]
    assert other["tessera_version"] == tessera.__version__
    assert other["chip"] == "trn1" and other["kernel"] == "k"
    assert other["overrides"] == {"core.sbuf.bytes_per_partition": "262144"}
    assert other["schema"].startswith("tessera.chrome_trace/")
    assert other["total_s"] == blocked.total_s


def test_lnc2_trace_has_a_process_per_core_and_a_sendrecv_track(lnc2: sim.Profile) -> None:
    slices = _check_trace(lnc2, chrome_trace(lnc2))
    assert {e["pid"] for e in slices} == {0, 1}
    assert sum(e["name"] == "sendrecv" for e in slices) == 2
    barriers = [e for e in slices if e["name"] == "core_barrier"]
    assert len(barriers) == 2
    # both cores leave the barrier together
    ends = {round(e["ts"] + e["dur"], 3) for e in barriers}
    assert len(ends) == 1


@pytest.mark.parametrize("name", ["matmul_tiled", "matmul_block_all_dims"])
def test_lanes_never_overlap_and_keep_engine_busy_time(name: str) -> None:
    p = _matmul(name)
    rows = lanes(p)
    for lane in rows:
        for a, b in zip(lane.pieces, lane.pieces[1:], strict=False):
            assert b.start_s >= a.start_s + a.duration_s - 1e-15, (lane.label, a, b)
    for lane in rows:
        if lane.kind is LaneKind.ENGINE:
            engine = p.timeline.stream.instructions[lane.pieces[0].position].engine
            assert lane.busy_s == pytest.approx(p.timeline.busy_s[(lane.core, engine)])


def test_dma_lanes_show_the_engines_the_scheduler_chose() -> None:
    p = _matmul("matmul_tiled")
    on_engine: dict[int, set[int]] = {}
    for lane in lanes(p):
        if lane.kind is LaneKind.DMA_ENGINE:
            engine = int(lane.label.split()[1])
            for piece in lane.pieces:
                on_engine.setdefault(piece.position, set()).add(engine)
    assert on_engine and on_engine == {pos: set(engines) for pos, engines
                                       in p.timeline.dma_engines.items()}


def test_dma_lanes_follow_an_overridden_engine_count() -> None:
    p = _matmul("matmul_block_all_dims", overrides={"core.dma.engines_per_core": 4})
    dma_lanes = [lane for lane in lanes(p) if lane.kind is LaneKind.DMA_ENGINE]
    assert [lane.label for lane in dma_lanes] == ["dma 0", "dma 1", "dma 2", "dma 3"]
    _check_trace(p, chrome_trace(p))


def test_write_chrome_trace_writes_loadable_json(blocked: sim.Profile, tmp_path: Path) -> None:
    path = write_chrome_trace(blocked, tmp_path / "t.json", kernel="k")
    loaded = json.loads(path.read_text())
    assert loaded["otherData"]["kernel"] == "k"
    assert len([e for e in loaded["traceEvents"] if e["ph"] == "X"]) == \
        _expected_events(blocked)
