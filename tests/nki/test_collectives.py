"""nki.collectives inside kernels: every rank of a replica group in one process.

Each collective runs on several ranks (`nki.multi_rank_simulate`, each rank with HBM of its
own) against a numpy reference written from its page; a rank that waits on a collective its
peers never enter is a deadlock naming both ranks; every documented rule is an error; the
timing model prices each collective with tessera.net. The LNC=2 all-gather example runs
against its reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tessera.net  # noqa: F401 - registers the pricer of in-kernel collectives with sim
import tessera.nki.collectives as ncc
import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.net import CollectiveModel
from tessera.nki.collectives_run import (
    CollectiveDeadlockError,
    CollectiveMismatchError,
    multi_rank_trace,
)
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.kernel_files import load_kernel_file
from tessera.nki.stream import Opcode
from tessera.sim import collective_cost
from tessera.sim.errors import ScheduleError

F32 = nl.float32
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "lnc2_all_gather.py"


def _run(kernel, inputs, *extra, **kw):
    """Run `kernel` on len(inputs) ranks, rank r with (inputs[r], *extra), kwargs kw."""
    return nki.multi_rank_simulate(kernel, world_size=len(inputs),
                                   per_rank_inputs=[((x, *extra), kw) for x in inputs])


def _inputs(n, shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.integers(-8, 8, shape).astype(dtype) for _ in range(n)]


def _hbm_copy(x, buffer=nl.private_hbm):
    """The collective's own HBM copy of input x (inputs are the kernel's I/O tensors)."""
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=buffer)
    nisa.dma_copy(dst=t, src=x)
    return t


# --------------------------------------------------------------------- kernels
@nki.jit
def k_all_reduce(x, rg, op):
    """Two coalesced HBM tensors: x and 2x."""
    a = _hbm_copy(x)
    b = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.private_hbm)
    nisa.dma_copy(dst=b, src=x)
    out_a = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    out_b = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    ncc.all_reduce(srcs=[a, b], dsts=[out_a, out_b], replica_group=rg, op=op)
    return out_a, out_b


@nki.jit
def k_all_gather_sbuf(x, rg, dim):
    """SBUF all-gather of 2-D tiles along dim 0 or 1."""
    n = len(rg.rank_lists[0])
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    shape = (x.shape[0] * n, x.shape[1]) if dim == 0 else (x.shape[0], x.shape[1] * n)
    g = nl.ndarray(shape, dtype=x.dtype, buffer=nl.sbuf)
    ncc.all_gather(srcs=[t], dsts=[g], replica_group=rg, collective_dim=dim)
    out = nl.ndarray(shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=g)
    return out


@nki.jit
def k_reduce_scatter(x, rg):
    n = len(rg.rank_lists[0])
    out = nl.ndarray((x.shape[0] // n, x.shape[1]), dtype=x.dtype, buffer=nl.shared_hbm)
    ncc.reduce_scatter(srcs=[_hbm_copy(x)], dsts=[out], replica_group=rg, collective_dim=0,
                       op=nl.add)
    return out


@nki.jit
def k_all_to_all(x, rg):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    ncc.all_to_all(srcs=[_hbm_copy(x)], dsts=[out], replica_group=rg, collective_dim=0)
    return out


@nki.jit
def k_all_to_all_v(x, meta, rg, known, rdispls):
    m = _hbm_copy(meta)
    out = nl.ndarray((12,), dtype=x.dtype, buffer=nl.shared_hbm)
    z = nl.ndarray((1, 12), dtype=x.dtype, buffer=nl.sbuf)
    nisa.memset(z, -1)
    nisa.dma_copy(dst=out.reshape((1, 12)), src=z)
    ncc.all_to_all_v(srcs=[_hbm_copy(x)], dsts=[out], replica_group=rg, metadata_tensor=m,
                     recv_counts_known=known, has_rdispls=rdispls)
    meta_out = nl.ndarray(meta.shape, dtype=meta.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=meta_out, src=m)
    return out, meta_out


@nki.jit
def k_permute(x, pairs):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=x)  # ranks that receive nothing keep their input
    ncc.collective_permute(srcs=[_hbm_copy(x)], dsts=[out], source_target_pairs=pairs)
    return out


@nki.jit
def k_ring_all_gather(x, rg):
    """A ring all-gather from implicit permutes, as the processing-rank-id page describes:
    at step i the held chunk is rank current_processing_rank_id(i)'s; store it there, pass
    it on. Two channels carry the two halves of the columns."""
    n = len(rg.rank_lists[0])
    rows, cols = x.shape
    half = cols // 2
    out = nl.ndarray((n * rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
    held = [nl.ndarray((rows, half), dtype=x.dtype, buffer=nl.sbuf) for _ in range(2)]
    for c in range(2):
        nisa.dma_copy(dst=held[c], src=x[:, c * half:(c + 1) * half])
    for step in range(n):
        owner = ncc.collective_permute_implicit_current_processing_rank_id(step, rg)
        for c in range(2):
            nisa.dma_copy(dst=out[owner * rows:(owner + 1) * rows, c * half:(c + 1) * half],
                          src=held[c])
        if step < n - 1:
            nxt = [nl.ndarray((rows, half), dtype=x.dtype, buffer=nl.sbuf) for _ in range(2)]
            ncc.collective_permute_implicit(srcs_by_channel=[[held[0]], [held[1]]],
                                            dsts_by_channel=[[nxt[0]], [nxt[1]]],
                                            replica_group=rg, channel_ids=[0, 1])
            held = nxt
    return out


@nki.jit
def k_permute_reduce(x, rg):
    a = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=x)
    b = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.memset(b, 10.0)
    got = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    ncc.collective_permute_implicit_reduce([[a]], [[b]], [[got]], rg, nl.maximum)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=got)
    return out


@nki.jit
def k_rank_select(table):
    """The vendor pattern: rank_id as the scalar_offset of an indirect DMA."""
    _, h, w = table.shape
    out = nl.ndarray((h, w), dtype=table.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=table.ap(pattern=[[w, h], [1, w]],
                                        scalar_offset=ncc.rank_id(), indirect_dim=0))
    return out


@nki.jit
def k_only_rank0_reduces(x, rg):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=x)
    if ncc.rank_id() == 0:  # rank 1 never enters: a deadlock
        ncc.all_reduce(srcs=[_hbm_copy(x)], dsts=[out], replica_group=rg, op=nl.add)
    return out


@nki.jit
def k_mismatch(x, rg):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    src = _hbm_copy(x)
    if ncc.rank_id() == 0:
        ncc.all_reduce(srcs=[src], dsts=[out], replica_group=rg, op=nl.add)
    else:
        ncc.all_reduce(srcs=[src], dsts=[out], replica_group=rg, op=nl.maximum)
    return out


# --------------------------------------------------------------------- values
RG2 = ncc.ReplicaGroup([[0, 1]])
RG3 = ncc.ReplicaGroup([[0, 1, 2]])


@pytest.mark.parametrize("op, ufunc", [(nl.add, np.add), (nl.maximum, np.maximum),
                                       (nl.minimum, np.minimum)], ids=["add", "max", "min"])
def test_all_reduce_every_rank_gets_the_reduction(op, ufunc) -> None:
    xs = _inputs(3, (4, 8))
    want = ufunc.reduce(np.stack(xs), axis=0)
    for a, b in _run(k_all_reduce, xs, RG3, op):
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)


def test_all_reduce_within_each_rank_list_and_int_dtypes() -> None:
    xs = _inputs(4, (2, 4), dtype=np.int32)
    strided = ncc.ReplicaGroup([[0, 2], [1, 3]])
    outs = _run(k_all_reduce, xs, strided, nl.add)
    for r, (a, _) in enumerate(outs):
        assert a.dtype == np.int32
        np.testing.assert_array_equal(a, xs[r % 2] + xs[r % 2 + 2])


@pytest.mark.parametrize("dim", [0, 1])
def test_all_gather_sbuf_concatenates_in_rank_list_order(dim) -> None:
    xs = _inputs(2, (4, 6), seed=1)
    rg = ncc.ReplicaGroup([[1, 0]])  # rank 1's chunk first
    for out in _run(k_all_gather_sbuf, xs, rg, dim):
        np.testing.assert_array_equal(out, np.concatenate([xs[1], xs[0]], axis=dim))


def test_reduce_scatter_gives_rank_k_chunk_k() -> None:
    xs = _inputs(3, (6, 4), seed=2)
    total = np.sum(xs, axis=0)
    for k, out in enumerate(_run(k_reduce_scatter, xs, RG3)):
        np.testing.assert_array_equal(out, total[2 * k:2 * k + 2])


def test_all_to_all_transposes_the_chunks() -> None:
    xs = _inputs(4, (8, 3), seed=3)
    rg = ncc.ReplicaGroup([[0, 1, 2, 3]])
    for k, out in enumerate(_run(k_all_to_all, xs, rg)):
        np.testing.assert_array_equal(out, np.concatenate([x[2 * k:2 * k + 2] for x in xs]))


def _a2av_reference(xs, metas, rdispls):
    """Rank i sends x_i[sd_i[j]: + sc_i[j]] to rank j, placed at rd_j[i] (or 4 * i)."""
    outs, counts = [], []
    for j in range(len(xs)):
        out = np.full(12, -1, np.float32)
        got = np.zeros(len(xs), np.uint32)
        for i, x in enumerate(xs):
            c, s = metas[i][0, j], metas[i][1, j]
            at = metas[j][3, i] if rdispls else 4 * i
            out[at:at + c] = x[s:s + c]
            got[i] = c
        outs.append(out)
        counts.append(got)
    return outs, counts


@pytest.mark.parametrize("known, rdispls", [(False, False), (True, True)])
def test_all_to_all_v_moves_the_counted_chunks(known, rdispls) -> None:
    xs = [np.arange(10, dtype=np.float32) + 100 * r for r in range(3)]
    counts = np.array([[1, 2, 3], [0, 4, 1], [2, 2, 2]], np.uint32)  # [sender, receiver]
    metas = []
    for i in range(3):
        displs = np.concatenate([[0], np.cumsum(counts[i])[:-1]])
        rd = np.array([0, 4, 8], np.uint32)[::-1] if rdispls else np.zeros(3, np.uint32)
        rows = [counts[i], displs, np.zeros(3), rd] if rdispls else [counts[i], displs,
                                                                      np.zeros(3)]
        metas.append(np.stack(rows).astype(np.uint32))
    got = nki.multi_rank_simulate(k_all_to_all_v, world_size=3, per_rank_inputs=[
        ((xs[r], metas[r], RG3, known, rdispls), {}) for r in range(3)])
    want, recv = _a2av_reference(xs, metas, rdispls)
    for r, (out, meta) in enumerate(got):
        np.testing.assert_array_equal(out, want[r])
        np.testing.assert_array_equal(meta[2], 0 if known else recv[r])


def test_collective_permute_follows_the_pairs() -> None:
    xs = _inputs(3, (2, 5), seed=4)
    outs = _run(k_permute, xs, ((0, 1), (1, 0)))
    np.testing.assert_array_equal(outs[0], xs[1])
    np.testing.assert_array_equal(outs[1], xs[0])
    np.testing.assert_array_equal(outs[2], xs[2])  # in no pair: untouched


def test_ring_all_gather_from_implicit_permutes() -> None:
    xs = _inputs(4, (3, 8), seed=5)
    rg = ncc.ReplicaGroup([[2, 0, 3, 1]])  # the ring follows the rank-list's order
    for out in _run(k_ring_all_gather, xs, rg):
        np.testing.assert_array_equal(out, np.concatenate(xs))


def test_processing_rank_id_walks_the_ring_backwards() -> None:
    seen = {}

    @nki.jit
    def ids(x, rg):
        me = ncc.rank_id()
        seen[me] = [ncc.collective_permute_implicit_current_processing_rank_id(i, rg)
                    for i in range(4)]
        return x

    _run(ids, _inputs(3, (1, 1)), ncc.ReplicaGroup([[2, 0, 1]]))
    assert seen == {0: [0, 2, 1, 0], 1: [1, 0, 2, 1], 2: [2, 1, 0, 2]}


def test_permute_reduce_sends_op_of_both_sources_to_the_successor() -> None:
    xs = [np.full((2, 3), v, np.float32) for v in (4.0, 20.0, 7.0)]
    outs = _run(k_permute_reduce, xs, RG3)
    for k, out in enumerate(outs):
        np.testing.assert_array_equal(out, np.maximum(xs[(k - 1) % 3], 10.0))


def test_rank_id_as_scalar_offset_and_private_hbm() -> None:
    table = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    outs = nki.multi_rank_simulate(k_rank_select, world_size=2,
                                   per_rank_inputs={r: ((table,), {}) for r in range(2)})
    for r, out in enumerate(outs):
        np.testing.assert_array_equal(out, table[r])


def test_a_plain_launch_is_rank_0_of_one() -> None:
    x = _inputs(1, (4, 8))[0]
    a, _ = nki.simulate(k_all_reduce)(x, ncc.ReplicaGroup([[0]]), nl.add)
    np.testing.assert_array_equal(a, x)


# --------------------------------------------------------------------- deadlock, mismatch
def test_a_rank_that_never_enters_is_a_deadlock_naming_both() -> None:
    with pytest.raises(CollectiveDeadlockError) as err:
        _run(k_only_rank0_reduces, _inputs(2, (2, 2)), RG2)
    msg = str(err.value)
    assert "rank 0 waits at all_reduce #0 on ranks [0, 1]" in msg
    assert "rank 1 finished the kernel after 0 collectives" in msg
    assert "test_collectives.py" in msg


def test_symbolic_multi_rank_runs_find_deadlocks_too() -> None:
    xs = [nki.TensorSpec((2, 2), F32)] * 2
    with pytest.raises(CollectiveDeadlockError, match="for rank 1"):
        multi_rank_trace(k_only_rank0_reduces, world_size=2, symbolic=True,
                         per_rank_inputs=[((x, RG2), {}) for x in xs])


def test_members_meeting_with_different_calls_name_both_ranks() -> None:
    with pytest.raises(CollectiveMismatchError, match=r"rank 1's all_reduce #0 .*rank 0's"):
        _run(k_mismatch, _inputs(2, (2, 2)), RG2)


# --------------------------------------------------------------------- rules
def _one(call, x=None, chip="trn2"):
    """Run `call(t)` in a one-rank kernel with tiles t; return nothing."""
    @nki.jit
    def kern(x):
        t = {"h": _hbm_copy(x), "h2": nl.ndarray((8, 4), F32, buffer=nl.shared_hbm),
             "s": nl.ndarray((4, 4), F32, buffer=nl.sbuf),
             "p": nl.ndarray((4, 4), F32, buffer=nl.psum),
             "i": nl.ndarray((4, 4), nl.int32, buffer=nl.shared_hbm),
             "hb": nl.ndarray((4, 4), F32, buffer=nl.shared_hbm)}
        call(t)
        return x

    return nki.simulate(kern, chip=chip)(np.zeros((4, 4), np.float32) if x is None else x)


R0 = ncc.ReplicaGroup([[0]])


@pytest.mark.parametrize("call, error, text", [
    (lambda t: ncc.all_reduce([t["p"]], [t["s"]], R0, nl.add), BufferKindError, "psum"),
    (lambda t: ncc.all_reduce([t["h"]], [t["s"]], R0, nl.add), BufferKindError, "mix"),
    (lambda t: ncc.all_reduce([t["s"], t["s"]], [t["s"], t["s"]], R0, nl.add),
     BufferKindError, "coalesced"),
    (lambda t: ncc.all_reduce([t["h"]], [t["i"]], R0, nl.add), DTypeError, "int32"),
    (lambda t: ncc.all_reduce([t["h"]], [t["h2"]], R0, nl.add), ShapeMismatchError, "[4, 4]"),
    (lambda t: ncc.all_reduce([t["h"]], [t["hb"]], R0, nl.multiply), KernelUsageError,
     "nl.add, nl.minimum or nl.maximum"),
    (lambda t: ncc.all_reduce([t["h"]], [t["hb"]], R0, nl.add, priority=1), KernelUsageError,
     "NeuronCore-v4 and newer"),
    (lambda t: ncc.all_reduce([t["h"]], [t["hb"]], [[0]], nl.add), KernelUsageError,
     "ReplicaGroup"),
    (lambda t: ncc.all_reduce([t["h"]], [t["hb"]], ncc.ReplicaGroup([[1]]), nl.add),
     KernelUsageError, "rank 0 is in no rank-list"),
    (lambda t: ncc.all_reduce([t["h"]], [t["hb"]], RG2, nl.add), KernelUsageError,
     "multi_rank_simulate(kernel, world_size=2"),
    (lambda t: ncc.all_gather([t["h"]], [t["hb"]], R0, 1), KernelUsageError, "HBM supports 0"),
    (lambda t: ncc.reduce_scatter([t["h"]], [t["hb"]], R0, 1, nl.add), KernelUsageError,
     "collective_dim=1"),
    (lambda t: ncc.all_to_all([t["s"]], [t["s"]], R0, 0), BufferKindError, "must be in HBM"),
    (lambda t: ncc.all_to_all_v([t["h"]], [t["hb"]], R0, t["i"]), DTypeError, "uint32"),
    (lambda t: ncc.collective_permute([t["h"]], [t["hb"]], [(0, 0), (1, 0)]),
     KernelUsageError, "target of two pairs"),
    (lambda t: ncc.collective_permute_implicit([[t["s"]]], [[t["s"]]], R0, [1]),
     KernelUsageError, "consecutive from 0"),
    (lambda t: ncc.collective_permute_implicit([[t["s"], t["s"]]], [[t["s"]]], R0),
     KernelUsageError, "exactly one"),
    (lambda t: ncc.collective_permute_implicit_current_processing_rank_id(-1, R0),
     KernelUsageError, "iteration_id"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_rule(call, error, text) -> None:
    with pytest.raises(error) as err:
        _one(call)
    assert text in str(err.value)
    assert "test_collectives.py" in str(err.value)  # at the kernel's line


def test_priority_is_accepted_on_neuroncore_v4() -> None:
    _one(lambda t: ncc.all_reduce([t["h"]], [t["hb"]], R0, nl.add, priority=0), chip="trn3")


def test_replica_group_rules() -> None:
    assert ncc.ReplicaGroup([[0, 1], [2, 3]]).rank_list_of(3) == (2, 3)
    assert repr(ncc.ReplicaGroup([[0, 1]])) == "ReplicaGroup([[0, 1]])"
    for bad, text in (([[0, 1], [1, 2]], "two rank-lists"), ([[]], "empty"),
                      ([[0, -1]], "non-negative"), (3, "list of rank-lists")):
        with pytest.raises(KernelUsageError, match=text):
            ncc.ReplicaGroup(bad)


def test_multi_rank_launch_rules() -> None:
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(KernelUsageError, match="positive int"):
        nki.multi_rank_simulate(k_permute, world_size=0, per_rank_inputs=[])
    with pytest.raises(KernelUsageError, match="one shape and dtype"):
        nki.multi_rank_simulate(k_permute, world_size=2, per_rank_inputs=[
            ((x, ((0, 1),)), {}), ((np.zeros((3, 2), np.float32), ((0, 1),)), {})])
    with pytest.raises(KernelUsageError, match="equal on every rank"):
        nki.multi_rank_simulate(k_permute, world_size=2, per_rank_inputs=[
            ((x, ((0, 1),)), {}), ((x, ((1, 0),)), {})])
    with pytest.raises(KernelUsageError, match="LNC=1"):
        nki.multi_rank_simulate(k_permute[2], world_size=1, per_rank_inputs=[((x, ()), {})])


def test_all_to_all_v_chunk_past_the_buffer_names_the_ranks() -> None:
    x = np.arange(10, dtype=np.float32)
    meta = np.array([[20, 0], [0, 0], [0, 0]], np.uint32)  # rank 0 sends 20 elements
    with pytest.raises(KernelUsageError, match="rank 0 sends elements \\[0, 20\\) to rank 0"):
        nki.multi_rank_simulate(k_all_to_all_v, world_size=2, per_rank_inputs=[
            ((x, meta, RG2, False, False), {})] * 2)


# --------------------------------------------------------------------- timing
def test_each_collective_is_priced_by_tessera_net() -> None:
    xs = _inputs(2, (64, 32))
    traces = multi_rank_trace(k_reduce_scatter, world_size=2, chip="trn2",
                              per_rank_inputs=[((x, RG2), {}) for x in xs])
    profile = sim.schedule(traces[1], "trn2")
    pos = next(p for p, i in enumerate(traces[1].instructions)
               if i.opcode is Opcode.REDUCE_SCATTER)
    took = profile.timeline.end_s[pos] - profile.timeline.start_s[pos]
    model = CollectiveModel.for_instance("trn2.48xlarge", ranks=2, lnc=1)
    want = model.cost("reduce_scatter", 64 * 32 * 4, in_graph=True).time_s
    assert took == pytest.approx(want, rel=1e-9) and took > 0


def test_a_symbolic_one_rank_trace_of_a_wider_group_is_priced() -> None:
    spec = nki.TensorSpec((64, 32), F32)
    profile = sim.profile(k_all_to_all, spec, ncc.ReplicaGroup([[0, 1, 2, 3]]),
                          chip="trn2", symbolic=True)
    assert profile.total_s > CollectiveModel.for_instance("trn2.48xlarge", ranks=4, lnc=1
                                                          ).cost("all_to_all", 8192,
                                                                 in_graph=True).time_s


def test_pricing_without_tessera_net_says_so(monkeypatch) -> None:
    spec = nki.TensorSpec((4, 4), F32)
    trace = nki.trace(k_all_to_all, symbolic=True)(spec, R0)
    monkeypatch.setattr(collective_cost, "_pricer", [])
    with pytest.raises(ScheduleError, match="import tessera.net"):
        sim.schedule(trace, "trn2")


# --------------------------------------------------------------------- the LNC=2 example
@pytest.mark.parametrize("kernel", ["lnc2_all_gather", "lnc2_all_gather_sendrecv"])
@pytest.mark.parametrize("rows, dtype", [(256, nl.float32), (300, nl.bfloat16)])
def test_lnc2_all_gather_example(kernel, rows, dtype) -> None:
    kfile = load_kernel_file(EXAMPLE)
    (x,) = kfile.module.example_inputs(rows=rows, cols=64, dtype=dtype)
    trace = nki.trace(kfile.kernel(kernel)[2], chip="trn2")(x)
    want = kfile.reference((x,))
    tol = 1e-6 if dtype is nl.float32 else 1e-2
    np.testing.assert_allclose(trace.outputs.astype(np.float32), want, rtol=tol, atol=tol)
    ops = {i.opcode for i in trace.instructions}
    assert (Opcode.CORE_BARRIER if kernel == "lnc2_all_gather" else Opcode.SENDRECV) in ops
