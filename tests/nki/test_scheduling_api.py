"""The NKI scheduling API: `depends_on`, `nl.no_reorder`, `Kernel.with_schedule`.

Each edge is checked where it acts: in the trace (`TraceResult.edges`) and in the timeline
(a runtime edge makes the consumer start after the producer ends, an issue-order edge no
earlier than it starts), and it never changes the numbers a kernel computes.
"""

from __future__ import annotations

import numpy as np
import pytest

from tessera import nki, sim
from tessera.hw import load_chip
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.compiler import SchedulingHeuristic
from tessera.nki.errors import KernelUsageError
from tessera.nki.scheduling import ScheduleEdge
from tessera.sim.dependencies import kernel_edges
from tessera.sim.errors import ScheduleError
from tessera.sim.timing_calibration import calibration_for

X = np.linspace(0.5, 2.0, 128 * 1024, dtype=np.float32).reshape(128, 1024)


def two_branches(t, mode: str = "none", kind: str = "runtime"):
    """Two independent ops on different engines (ScalarE, VectorE) after one load."""
    x = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=x, src=t)
    a = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    b = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    first = nisa.activation(dst=a, data=x, op=nl.exp, name="exp")
    second = nisa.tensor_scalar(dst=b, data=x, op0=nl.add, operand0=1.0, name="plus1")
    dep = getattr(nisa.dependency, kind)
    if mode == "second_after_first":
        assert second.depends_on(first, kind=dep) is second
    elif mode == "first_after_second":  # the producer comes later in program order
        first.depends_on(second, kind=dep)
    out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
    nisa.tensor_tensor(dst=a, data1=a, data2=b, op=nl.add)
    nisa.dma_copy(dst=out, src=a)
    return out


def _timeline(trace: nki.TraceResult, heuristic: str = "asap") -> sim.Timeline:
    chip = load_chip("trn1")
    cal = calibration_for(chip.core.name, chip.core.version)
    flat = sim.flatten(trace.instructions, trace.tensors)
    deps = sim.dependencies(flat, sim.allocate(flat, chip).reuse)
    deps, after = kernel_edges(deps, trace.edges, flat.n)
    return sim.build_timeline(sim.instruction_facts(flat, chip, cal), deps, chip, cal,
                              SchedulingHeuristic(heuristic), after)


def _span(tl: sim.Timeline, opcode: str) -> tuple[float, float]:
    inst = next(i for i in tl.instructions if i.opcode.value == opcode)
    return inst.start_s, inst.end_s


def test_nisa_calls_return_instruction_handles() -> None:
    seen = {}

    def kernel(t):
        x = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        seen["load"] = nisa.dma_copy(dst=x, src=t)
        out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        seen["store"] = nisa.dma_copy(dst=out, src=x)
        seen["chained"] = seen["store"].depends_on(seen["load"]).depends_on(
            seen["load"], kind=nisa.dependency.schedule)
        return out

    trace = nki.trace(kernel)(X)
    assert isinstance(seen["load"], nisa.NkiInstruction)
    assert seen["chained"] is seen["store"]
    assert "dma_copy" in repr(seen["load"])
    assert set(trace.edges) == {ScheduleEdge(1, 0, nisa.dependency.runtime),
                                ScheduleEdge(1, 0, nisa.dependency.schedule)}


def test_runtime_edge_waits_for_the_producer_to_end() -> None:
    free = _timeline(nki.trace(two_branches)(X))
    tied = _timeline(nki.trace(two_branches)(X, mode="second_after_first"))
    # independent: both start once the load lands
    assert _span(free, "activation")[0] == pytest.approx(_span(free, "tensor_scalar")[0])
    assert _span(tied, "tensor_scalar")[0] >= _span(tied, "activation")[1]
    assert tied.total_s > free.total_s


def test_runtime_edge_may_name_a_later_instruction() -> None:
    tl = _timeline(nki.trace(two_branches)(X, mode="first_after_second"))
    assert _span(tl, "activation")[0] >= _span(tl, "tensor_scalar")[1]


def test_schedule_edge_orders_issue_only() -> None:
    tl = _timeline(nki.trace(two_branches)(X, mode="first_after_second", kind="schedule"))
    exp_start, exp_end = _span(tl, "activation")
    plus_start, plus_end = _span(tl, "tensor_scalar")
    assert exp_start >= plus_start
    assert exp_start < plus_end  # different engines still overlap


def test_edges_do_not_change_results() -> None:
    ref = nki.simulate(two_branches)(X)
    for mode in ("second_after_first", "first_after_second"):
        np.testing.assert_array_equal(nki.simulate(two_branches)(X, mode=mode), ref)
    np.testing.assert_allclose(ref, np.exp(X) + X + 1.0, rtol=1e-5)


def test_a_cycle_of_edges_is_a_clear_error() -> None:
    def kernel(t):
        x = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        load = nisa.dma_copy(dst=x, src=t)
        y = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        op = nisa.tensor_scalar(dst=y, data=x, op0=nl.add, operand0=1.0)
        load.depends_on(op)  # the load would wait for its own consumer
        out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=y)
        return out

    with pytest.raises(ScheduleError, match="form a cycle"):
        sim.schedule(nki.trace(kernel)(X))


def test_depends_on_rejects_bad_arguments() -> None:
    def kernel(t, bad):
        x = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        load = nisa.dma_copy(dst=x, src=t)
        if bad == "kind":
            load.depends_on(load, kind="runtime")
        elif bad == "producer":
            load.depends_on(x)
        else:
            load.depends_on(load)
        return t

    for bad, message in (("kind", "kind must be"), ("producer", "handle a nisa call"),
                         ("self", "wait for itself")):
        with pytest.raises(KernelUsageError, match=message) as err:
            nki.trace(kernel)(X, bad=bad)
        assert "test_scheduling_api.py:" in str(err.value)


def pipeline(t, ordered: bool):
    """Four independent tiles, each loaded, scaled on ScalarE and stored; issued loads first
    so that an ASAP scheduler starts the second tile's work before the first is stored."""
    tiles = []
    for i in nl.affine_range(4):
        x = nl.ndarray((128, 512), t.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=x, src=t[:, i * 512:(i + 1) * 512])
        tiles.append(x)
    out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)

    def body():
        for i in nl.affine_range(4):
            y = nl.ndarray((128, 512), t.dtype, buffer=nl.sbuf)
            nisa.activation(dst=y, data=tiles[3 - i], op=nl.exp)
            nisa.dma_copy(dst=out[:, (3 - i) * 512:(4 - i) * 512], src=y)

    if ordered:
        with nl.no_reorder():
            body()
    else:
        body()
    return out


def test_no_reorder_keeps_program_order_inside_the_block() -> None:
    x = np.ones((128, 2048), np.float32)
    free = nki.trace(pipeline)(x, ordered=False)
    fixed = nki.trace(pipeline)(x, ordered=True)
    assert not free.edges
    body = [p for p, inst in enumerate(fixed.instructions) if p >= 4]
    assert {(e.consumer, e.producer) for e in fixed.edges} == set(
        zip(body[1:], body[:-1], strict=True))
    def exp_starts(tl: sim.Timeline) -> list[float]:
        return [i.start_s for i in tl.instructions[4:] if i.opcode.value == "activation"]

    # free, ScalarE starts the tile that landed first (issued last); in the block it keeps
    # the program order
    assert exp_starts(_timeline(free)) != sorted(exp_starts(_timeline(free)))
    assert exp_starts(_timeline(fixed)) == sorted(exp_starts(_timeline(fixed)))
    tl = _timeline(fixed)
    starts = [i.start_s for i in tl.instructions[4:]]
    assert starts == sorted(starts)  # and in the block every instruction follows the last
    np.testing.assert_array_equal(nki.simulate(pipeline)(x, ordered=True),
                                  nki.simulate(pipeline)(x, ordered=False))


def test_no_reorder_nests_and_ends_with_its_block() -> None:
    def kernel(t):
        x = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        with nl.no_reorder():
            nisa.dma_copy(dst=x, src=t)
            with nl.no_reorder():
                nisa.tensor_scalar(dst=x, data=x, op0=nl.add, operand0=1.0)
            nisa.tensor_scalar(dst=x, data=x, op0=nl.multiply, operand0=2.0)
        out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=x)  # outside: free
        return out

    trace = nki.trace(kernel)(X)
    assert {(e.consumer, e.producer) for e in trace.edges} == {(1, 0), (2, 1)}
    assert all(e.kind is nisa.dependency.schedule for e in trace.edges)


def test_with_schedule_adds_edges_between_named_instructions() -> None:
    kernel = nki.jit(two_branches).with_schedule([("exp", "plus1")])
    trace = nki.trace(kernel)(X)
    assert trace.edges == (ScheduleEdge(1, 2, nisa.dependency.schedule),)
    runtime = nki.jit(two_branches).with_schedule([("exp", ["plus1"])],
                                                  kind=nisa.dependency.runtime)
    tl = _timeline(nki.trace(runtime)(X))
    assert _span(tl, "activation")[0] >= _span(tl, "tensor_scalar")[1]
    # the schedule travels with a decorated kernel and a launch grid
    assert nki.trace(nki.jit(kernel))(X).edges == trace.edges


def test_with_schedule_pairs_loop_instances_call_by_call() -> None:
    def kernel(t):
        out = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(2):
            x = nl.ndarray((128, 512), t.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=x, src=t[:, i * 512:(i + 1) * 512], name="load")
            nisa.activation(dst=x, data=x, op=nl.exp, name="exp")
            nisa.dma_copy(dst=out[:, i * 512:(i + 1) * 512], src=x, name="store")
        return out

    trace = nki.trace(nki.jit(kernel).with_schedule([("load", "exp")]))(X)
    assert {(e.consumer, e.producer) for e in trace.edges} == {(0, 1), (3, 4)}


def test_with_schedule_rejects_unknown_names_and_bad_pairs() -> None:
    with pytest.raises(KernelUsageError, match="no instruction is named 'nope'"):
        nki.trace(nki.jit(two_branches).with_schedule([("exp", "nope")]))(X)
    with pytest.raises(KernelUsageError, match="each entry is"):
        nki.jit(two_branches).with_schedule([("exp",)])
    with pytest.raises(KernelUsageError, match="cannot wait for itself"):
        nki.trace(nki.jit(two_branches).with_schedule([("exp", "exp")]))(X)


def test_edges_of_the_second_core_are_offset_by_the_first_cores_stream() -> None:
    def kernel(t):
        x = nl.ndarray((128, 512), t.dtype, buffer=nl.sbuf)
        load = nisa.dma_copy(dst=x, src=t[:, 0:512])
        op = nisa.activation(dst=x, data=x, op=nl.exp)
        op.depends_on(load, kind=nisa.dependency.schedule)
        return t

    trace = nki.trace(nki.jit(kernel)[2], chip="trn2")(X)
    per_core = len(trace.instructions) // 2
    assert {(e.consumer, e.producer) for e in trace.edges} == {
        (1, 0), (per_core + 1, per_core)}
    assert sim.schedule(trace).total_s > 0
