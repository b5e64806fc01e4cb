"""The compiled loops: same results as their plain-Python originals, hand-computed address
boxes, and the array forms of dependencies and schedules."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.buffers import Buffer
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Engine, Opcode, TensorInfo
from tessera.sim.timing_calibration import load_calibration

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "matmul_tutorial.py"
F32 = nl.float32
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
    return (tl.start_s.tolist(), tl.end_s.tolist(), tl.critical_path, tl.busy_s,
            tl.hbm_busy_s, tl.dma_engines, al.placements, al.reuses, p.total_s,
            p.top_instructions)


def outcomes() -> str:
    """repr of the outcome of every trace (run in this process's JIT mode)."""
    return repr([_outcome(trace, chip) for trace, chip in _traces()])


def test_compiled_loops_give_the_results_of_their_python_originals():
    compiled = outcomes()
    assert _outcome(*_traces()[2])[7]  # the what-if chip really reuses addresses
    script = ("import runpy, sys; "
              f"m = runpy.run_path({str(Path(__file__))!r}); sys.stdout.write(m['outcomes']())")
    env = {**os.environ, "TESSERA_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == compiled


@pytest.fixture
def box(make_inst):
    """The address box flatten() gives one access pattern."""
    def of(ap, tensors=()):
        flat = sim.flatten([make_inst(Opcode.TENSOR_COPY, Engine.VECTOR, (ap,), ())], tensors)
        return tuple(int(v) for v in flat.arrays.ap_box[0])
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


def test_dependencies_are_ascending_csr_and_timelines_check_them(make_inst, make_tile):
    t, u = make_tile("t", 128, 512), make_tile("u", 128, 512)
    v = Engine.VECTOR
    stream = [make_inst(Opcode.MEMSET, v, (), (t,)), make_inst(Opcode.MEMSET, v, (), (u,)),
              make_inst(Opcode.TENSOR_TENSOR, v, (u, t), (t,), op="add")]
    flat = sim.flatten(stream)
    deps = sim.dependencies(flat)
    assert deps.lists() == [(), (), (0, 1)] and deps.of(2) == (0, 1)
    assert deps.ptr.tolist() == [0, 0, 0, 2] and deps.index.tolist() == [0, 1]
    again = sim.Dependencies.from_lists(deps.lists())
    assert again.ptr.tolist() == deps.ptr.tolist()
    assert again.index.tolist() == deps.index.tolist()
    chip, cal = hw.load_chip("trn1"), load_calibration("nc-v2")
    facts = sim.instruction_facts(flat, chip, cal)
    tl = sim.build_timeline(facts, deps, chip, cal)
    assert tl.total_s > 0 and tl.start_s[2] >= tl.end_s[:2].min()
    with pytest.raises(ValueError):
        tl.start_s[0] = 1.0  # the timeline's arrays are read-only
    short = sim.Dependencies.from_lists(deps.lists()[:2])
    with pytest.raises(sim.ScheduleError, match="2 dependency lists for 3 instructions"):
        sim.build_timeline(facts, short, chip, cal)


def test_every_function_in_loops_is_compiled_when_numba_is_on():
    from tessera.sim import _loops

    expected = (importlib.util.find_spec("numba") is not None
                and os.environ.get("TESSERA_JIT", "1") != "0")
    assert _loops.ENABLED is expected
    found = 0
    for info in pkgutil.iter_modules(_loops.__path__):
        if info.name == "njit":
            continue
        module = importlib.import_module(f"tessera.sim._loops.{info.name}")
        for name, value in vars(module).items():
            fn = getattr(value, "py_func", value)  # numba dispatchers keep the Python original
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__:
                found += 1
                assert hasattr(value, "py_func") is expected, f"{module.__name__}.{name}"
    assert found >= 10


def test_warm_up_compiles_and_reports_its_time():
    assert sim.warm_up() >= 0.0

