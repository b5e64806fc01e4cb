"""The compiled loops: same results as their plain-Python originals, hand-computed address
boxes, and the array forms of dependencies and schedules."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.buffers import Buffer
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Engine, Opcode, TensorInfo
from tessera.sim import _jit
from tessera.sim.calib import load_calibration

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "matmul_tutorial.py"
F32 = nl.float32
# (module, function) of every compiled loop the scheduler calls from Python
LOOPS = (("tessera.sim.lower", "_boxes"), ("tessera.sim.arena", "liveness_of"),
         ("tessera.sim.arena", "place"), ("tessera.sim.alloc", "liveness_of"),
         ("tessera.sim.alloc", "place"), ("tessera.sim.deps", "_hazards"),
         ("tessera.sim.timeline", "run"), ("tessera.sim.timeline", "_busy"))


@nki.jit
def swap_and_fence(x):
    """LNC=2: loads, a sendrecv between the cores, a barrier and a store per core."""
    rows, cols = x.shape
    half = rows // 2
    core = nl.program_id(0)
    flag = nl.ndarray((1, 1), F32, buffer=nl.shared_hbm)
    mine = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    theirs = nl.ndarray((half, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(mine, x[core * half:(core + 1) * half, :])
    nisa.sendrecv(mine, theirs, send_to_rank=1 - core, recv_from_rank=1 - core, pipe_id=0)
    nisa.core_barrier(flag, (0, 1))
    nisa.tensor_scalar(theirs, theirs, nl.multiply, 2.0)
    return x


@nki.jit
def rotate(x):
    """Tiles that outlive the SBUF of a small what-if chip: address reuse."""
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    for _ in range(5):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(t, x)
        nisa.tensor_scalar(t[:, 0:512], t[:, 0:512], nl.multiply, -1.0)
        nisa.dma_copy(out, t)
    return out


def _traces() -> list[tuple[object, object]]:
    tiled = load_kernel_file(TUTORIAL).kernel("matmul_tiled")
    bf16 = "bfloat16"
    small = hw.with_overrides(hw.load_chip("trn1"), {"core.sbuf.bytes_per_partition": 8192})
    return [
        (nki.trace(tiled, symbolic=True)(nki.TensorSpec((256, 256), bf16),
                                         nki.TensorSpec((256, 1024), bf16)), "trn1"),
        (nki.trace(swap_and_fence[2], symbolic=True, chip="trn2")(
            nki.TensorSpec((256, 64), F32)), "trn2"),
        (nki.trace(rotate, symbolic=True)(nki.TensorSpec((128, 1024), F32)), small),
    ]


def _outcome(trace, chip) -> tuple:
    p = sim.schedule(trace, chip)
    tl, al = p.timeline, p.allocation
    return (tl.start_s, tl.end_s, tl.critical_path, tl.busy_s, tl.hbm_busy_s,
            tl.dma_engines, al.placement_rows, al.reuse_rows, p.total_s, p.top_instructions)


@pytest.mark.skipif(not _jit.ENABLED, reason="numba is not in use: nothing to compare")
def test_compiled_loops_give_the_results_of_their_python_originals(monkeypatch):
    traces = _traces()
    compiled = [_outcome(trace, chip) for trace, chip in traces]
    assert len(compiled[2][7]) > 0  # the what-if chip really reuses addresses
    for module, name in LOOPS:
        mod = importlib.import_module(module)
        monkeypatch.setattr(mod, name, getattr(mod, name).py_func)
    python = [_outcome(trace, chip) for trace, chip in traces]
    assert python == compiled


@pytest.fixture
def box(make_inst):
    """The address box lower() gives one access pattern."""
    def of(ap, tensors=()):
        stream = sim.lower([make_inst(Opcode.TENSOR_COPY, Engine.VECTOR, (ap,), ())], tensors)
        return tuple(int(v) for v in stream.ap_box[0])
    return of


def test_boxes_of_on_chip_views(box, make_tile):
    # partitions 32..95, bytes [256, 1280) of each 2 KiB partition row
    assert box(make_tile("t", 64, 256, row=512, offset=32 * 512 + 64)) == (32, 96, 256, 1280)
    assert box(make_tile("t", 0, 256)) == (0, 0, 0, 0)  # no elements: no box


def test_boxes_of_hbm_views(box, make_hbm):
    info = [TensorInfo("h", Buffer.HBM, (128, 1024), "float32", 4, 0, None)]
    # inside one row: bytes of that row
    assert box(make_hbm("h", 1, 64, row=1024, offset=5 * 1024 + 8), info) == (5, 6, 32, 288)
    # a column slice of rows 2..9: the outer dimension steps whole rows
    assert box(make_hbm("h", 8, 64, row=1024, offset=2 * 1024 + 64), info) == (2, 10, 256, 512)
    # a run that wraps rows without stepping them: whole rows
    assert box(make_hbm("h", 1, 1536, row=1536, offset=512), info) == (0, 2, 0, 4096)
    # unknown shape: one flat row
    assert box(make_hbm("g", 4, 16, row=32, offset=32)) == (0, 1, 128, 576)


def test_dependencies_are_ascending_and_schedules_take_csr(make_inst, make_tile):
    t, u = make_tile("t", 128, 512), make_tile("u", 128, 512)
    v = Engine.VECTOR
    stream = [make_inst(Opcode.MEMSET, v, (), (t,)), make_inst(Opcode.MEMSET, v, (), (u,)),
              make_inst(Opcode.TENSOR_TENSOR, v, (u, t), (t,), op="add")]
    deps = sim.dependencies(stream)
    assert deps == [(), (), (0, 1)]
    chip, cal = hw.load_chip("trn1"), load_calibration("nc-v2")
    ptr = np.array([0, 0, 0, 2], dtype=np.int64)
    idx = np.array([0, 1], dtype=np.int64)
    from_lists = sim.schedule_stream(stream, deps, chip, cal)
    from_csr = sim.schedule_stream(stream, (ptr, idx), chip, cal)
    assert from_csr.end_s == from_lists.end_s and from_csr.total_s > 0
    with pytest.raises(sim.ScheduleError, match="2 dependency lists for 3 instructions"):
        sim.schedule_stream(stream, deps[:2], chip, cal)


def test_warm_up_compiles_and_reports_its_time():
    assert sim.warm_up() >= 0.0

