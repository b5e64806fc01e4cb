"""The compiler's scheduler: the source order of independent work does not decide the time.

Pairs of kernels written in the natural order and hand-software-pipelined predict within 5 %
of each other under ASAP (the default), while in program order (TRIVIAL) they differ; every
library and example kernel keeps its ASAP time within 5 % when its loads are hoisted in the
stream (a dependency-preserving reordering of the same program).
"""

from __future__ import annotations

import dataclasses
import heapq
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tessera import kernels, nki, sim
from tessera.kernels.tune import input_specs as library_specs
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype
from tessera.nki.kernel_files import input_specs, load_kernel_file
from tessera.nki.stream import Opcode

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples" / "kernels"
spec = importlib.util.spec_from_file_location("reordering_kernels",
                                              HERE / "reordering_kernels.py")
rk = importlib.util.module_from_spec(spec)
sys.modules["reordering_kernels"] = rk
spec.loader.exec_module(rk)

PAIRS = {
    "attention": (rk.attention, [((128, 128), "bfloat16"), ((128, 2048), "bfloat16"),
                                 ((2048, 128), "bfloat16")]),
    "norm_matmul": (rk.norm_matmul, [((2048, 128), "bfloat16"), ((128, 512), "bfloat16")]),
    "scan": (rk.scan, [((1024, 512), "bfloat16"), ((1024, 512), "bfloat16")]),
}
ASAP_TOLERANCE = 0.05
HOIST_WINDOW = 16  # a load moves up to this many instructions earlier


def _gap(a: float, b: float) -> float:
    return abs(a - b) / min(a, b)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_natural_and_pipelined_source_orders_predict_alike(name: str) -> None:
    maker, shapes = PAIRS[name]
    trivial_gaps = []
    for chip in ("trn1", "trn2"):
        specs = [nki.TensorSpec(s, d) for s, d in shapes]
        natural = nki.trace(maker(False), chip=chip)(*specs)
        pipelined = nki.trace(maker(True), chip=chip)(*specs)
        asap = [sim.schedule(t).total_s for t in (natural, pipelined)]
        trivial = [sim.schedule(t, heuristic="trivial").total_s for t in (natural, pipelined)]
        assert _gap(*asap) <= ASAP_TOLERANCE, (chip, asap)
        assert asap[0] <= trivial[0] * (1 + 1e-9)  # the compiler's order beats the source's
        trivial_gaps.append(_gap(*trivial))
    assert max(trivial_gaps) >= 0.10, trivial_gaps  # program order keeps the difference


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_both_source_orders_compute_the_same(name: str) -> None:
    maker, shapes = PAIRS[name]
    rng = np.random.default_rng(0)
    inputs = [(rng.standard_normal(s).astype(np.float32) * 0.25 - 0.5).astype(
        to_dtype(d).storage) for s, d in shapes]
    natural = np.asarray(nki.simulate(maker(False))(*inputs), np.float32)
    pipelined = np.asarray(nki.simulate(maker(True))(*inputs), np.float32)
    np.testing.assert_array_equal(natural, pipelined)
    if name == "scan":
        a, b = (x.astype(np.float32) for x in inputs)
        h = np.zeros(a.shape[0], np.float32)
        expected = np.empty_like(a)
        for j in range(a.shape[1]):
            h = np.exp(a[:, j]) * h + b[:, j]
            expected[:, j] = np.tanh(h)
        np.testing.assert_allclose(natural, expected, rtol=2e-2, atol=2e-2)


def hoisted(trace: object, window: int = HOIST_WINDOW) -> object:
    """The same program with each HBM->SBUF load issued up to `window` instructions earlier,
    as far as its data dependencies allow (a valid reordering of the stream)."""
    insts = trace.instructions
    lists = [list(d) for d in sim.dependencies(sim.flatten(insts, trace.tensors)).lists()]
    for edge in trace.edges:  # the kernel's own ordering (loop fences, ...)
        lists[edge.consumer].append(edge.producer)
    succ: list[list[int]] = [[] for _ in insts]
    waiting = [len(d) for d in lists]
    for i, d in enumerate(lists):
        for p in d:
            succ[p].append(i)

    def key(i: int) -> tuple[int, int]:
        inst = insts[i]
        load = (inst.opcode is Opcode.DMA_COPY and inst.writes[0].buffer.on_chip
                and not inst.reads[0].buffer.on_chip)
        return (i - window if load else i, i)

    ready = [key(i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for s in succ[i]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, key(s))
    assert len(order) == len(insts)
    position = {old: new for new, old in enumerate(order)}
    edges = tuple(dataclasses.replace(e, consumer=position[e.consumer],
                                      producer=position[e.producer]) for e in trace.edges)
    return dataclasses.replace(trace, instructions=tuple(insts[i] for i in order), edges=edges)


SIZES = {"rows": 512, "cols": 1024, "tokens": 512, "vocab": 2048, "dim": 512, "M": 512,
         "K": 512, "N": 512, "seq": 512, "classes": 1024, "B": 2, "heads": 2, "kv_heads": 1,
         "head_dim": 64, "kv_len": 512, "batch": 2}


def _library_cases() -> list[tuple[str, object]]:
    cases = [(d.name, d) for d in kernels.all_kernels()]
    missing = [(n, d.shape_keys) for n, d in cases if not set(d.shape_keys) <= set(SIZES)]
    assert not missing, f"add test sizes for {missing}"
    return cases


@pytest.mark.parametrize(("name", "defn"), _library_cases(), ids=lambda x: str(x)[:20])
def test_library_kernels_keep_their_time_when_loads_are_hoisted(name: str,
                                                               defn: object) -> None:
    dtype = "bfloat16" if "bfloat16" in defn.dtypes else defn.dtypes[0]
    shapes = {k: SIZES[k] for k in defn.shape_keys}
    for chip in ("trn1", "trn2"):
        trace = nki.trace(defn.kernel, symbolic=True, chip=chip)(
            *library_specs(defn, shapes, to_dtype(dtype)))
        original, moved = sim.schedule(trace).total_s, sim.schedule(hoisted(trace)).total_s
        assert _gap(original, moved) <= ASAP_TOLERANCE, (name, chip, original, moved)


def _example_cases() -> list[str]:
    out = []
    for path in sorted(EXAMPLES.glob("*.py")):
        out += [f"{path.name}::{k}" for k in load_kernel_file(path).kernels]
    return out


@pytest.mark.parametrize("case", _example_cases())
def test_example_kernels_keep_their_time_when_loads_are_hoisted(case: str) -> None:
    file, name = case.split("::")
    kernel_file = load_kernel_file(EXAMPLES / file)
    # with values: a kernel may read a loop bound from its inputs (registers); on trn1
    # unless the file targets a newer chip (CHIP)
    kernel = kernel_file.kernel(name)
    kernel = kernel[kernel_file.lnc] if kernel_file.lnc else kernel
    trace = nki.trace(kernel, chip=kernel_file.chip or ("trn2" if kernel_file.lnc else "trn1"))(
        *kernel_file.example_inputs(name))
    original, moved = sim.schedule(trace).total_s, sim.schedule(hoisted(trace)).total_s
    assert _gap(original, moved) <= ASAP_TOLERANCE, (case, original, moved)


def test_the_hoisting_really_reorders() -> None:
    kernel_file = load_kernel_file(EXAMPLES / "matmul_tutorial.py")
    trace = nki.trace(kernel_file.kernel("matmul_tiled"), chip="trn1")(
        *input_specs(kernel_file.example_inputs("matmul_tiled")))
    moved = hoisted(trace)
    assert moved.instructions != trace.instructions
    trivial = [sim.schedule(t, heuristic="trivial").total_s for t in (trace, moved)]
    assert _gap(*trivial) > 0.03  # program order sees the move; ASAP (above) does not


def test_every_heuristic_schedules_and_critical_path_prefers_long_chains() -> None:
    maker, shapes = PAIRS["attention"]
    trace = nki.trace(maker(False), chip="trn2")(*[nki.TensorSpec(s, d) for s, d in shapes])
    for heuristic in ("asap", "critical-path", "dma-prefetch", "trivial"):
        profile = sim.schedule(trace, heuristic=heuristic)
        assert profile.heuristic.value == heuristic.replace("-", "_")
        assert profile.total_s > 0 and len(profile.timeline.start_s) == len(trace.instructions)
    with pytest.raises(sim.ScheduleError, match="unknown scheduling heuristic"):
        sim.schedule(trace, heuristic="fastest")


def test_sequential_range_keeps_its_loop_carried_order() -> None:
    def running_sum(x):
        acc = nl.ndarray((128, 512), x.dtype, buffer=nl.sbuf)
        nisa.memset(acc, 0.0)
        tiles = []
        for i in nl.affine_range(4):  # independent loads: free to go in any order
            t = nl.ndarray((128, 512), x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(t, x[:, (3 - i) * 512:(4 - i) * 512])
            tiles.append(t)
        for i in nl.sequential_range(4):  # each step reads the previous one's result
            nisa.tensor_tensor(acc, acc, tiles[i], op=nl.add)
        out = nl.ndarray((128, 512), x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(out, acc)
        return out

    p = sim.profile(running_sum, nki.TensorSpec((128, 2048), "float32"), chip="trn1",
                    symbolic=True)
    adds = [i for i in p.timeline.instructions if i.opcode is Opcode.TENSOR_TENSOR]
    assert [a.index for a in sorted(adds, key=lambda a: a.start_s)] == [a.index for a in adds]
    for before, after in zip(adds, adds[1:], strict=False):
        assert after.start_s >= before.end_s
