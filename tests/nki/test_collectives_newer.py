"""The v2.34 additions: ReplicaGroup.from_partition_op / rg_partition_op,
self_index_in_replica_group, the nki.lnc module (core_barrier, sendrecv, sendrecv_compute),
and the refused variable-length/split collectives. Numpy references from the pages."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.collectives as ncc
import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.stream import Opcode

RG, OPS = ncc.ReplicaGroup, ncc.rg_partition_op


# --------------------------------------------------------------------- from_partition_op
def _partition_ref(world: int, fn) -> list[list[int]]:
    """Ranks with equal fn(rank) in one list; lists ordered by their lowest rank."""
    ids: dict[int, list[int]] = {}
    for r in range(world):
        ids.setdefault(fn(r), []).append(r)
    return sorted(ids.values(), key=lambda lst: lst[0])


@pytest.mark.parametrize(("op", "operand", "fn"), [
    (OPS.bitwise_and, 0, lambda r: r & 0), (OPS.bitwise_and, 5, lambda r: r & 5),
    (OPS.div, 4, lambda r: r // 4), (OPS.div, 3, lambda r: r // 3),
    (OPS.mod, 4, lambda r: r % 4)])
def test_from_partition_op_matches_the_reference(op, operand, fn) -> None:
    got = RG.from_partition_op(8, op, operand)
    assert [list(lst) for lst in got.rank_lists] == _partition_ref(8, fn)


def test_from_partition_op_gives_the_pages_examples() -> None:
    assert RG.from_partition_op(8, OPS.bitwise_and, 0) == RG([list(range(8))])
    assert RG.from_partition_op(8, OPS.div, 4) == RG([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert RG.from_partition_op(8, OPS.mod, 4) == RG([[0, 4], [1, 5], [2, 6], [3, 7]])


@pytest.mark.parametrize(("args", "words"), [
    ((0, OPS.div, 2), "world_size=0"), ((8, "div", 2), "op='div'"),
    ((8, OPS.div, 0), "div takes a positive"), ((8, OPS.mod, 0), "mod takes a positive"),
    ((8, OPS.bitwise_and, -1), "non-negative")])
def test_from_partition_op_rejects_bad_arguments(args, words) -> None:
    with pytest.raises(KernelUsageError, match=words):
        RG.from_partition_op(*args)


# --------------------------------------------------------------------- self index
@nki.jit
def _self_index_kernel(x, group):
    out = nl.ndarray((1, 1), nl.int32, buffer=nl.shared_hbm)
    t = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.memset(t, ncc.self_index_in_replica_group(group))
    nisa.dma_copy(out, t)
    return out


def test_self_index_is_the_position_in_the_own_rank_list() -> None:
    group = RG([[0, 1, 2, 3], [7, 6, 5, 4]])  # the page's rank 6 sits at position 1 here
    x = np.zeros((1, 1), np.float32)
    outs = nki.multi_rank_simulate(_self_index_kernel, world_size=8,
                                   per_rank_inputs=[((x, group), {})] * 8)
    assert [int(o[0, 0]) for o in outs] == [0, 1, 2, 3, 3, 2, 1, 0]


def test_self_index_errors() -> None:
    x = np.zeros((1, 1), np.float32)
    with pytest.raises(KernelUsageError, match="rank 0 is in no rank-list"):
        nki.simulate(_self_index_kernel)(x, RG([[1, 2]]))
    with pytest.raises(KernelUsageError, match="must be a nki.collectives.ReplicaGroup"):
        nki.simulate(_self_index_kernel)(x, "0,1")


# --------------------------------------------------------------------- nki.lnc
def _lnc_kernel(call):
    """LNC=2: core c loads rows [c*P, (c+1)*P) of x into `mine`, runs `call` and stores
    `theirs` at its rows of the output."""

    @nki.jit
    def kernel(x, buf):
        rows = x.shape[0] // 2
        core = nl.program_id(0)
        where = nl.sbuf if buf == "sbuf" else nl.private_hbm
        mine = nl.ndarray((rows, x.shape[1]), x.dtype, buffer=where)
        theirs = nl.ndarray((rows, x.shape[1]), x.dtype, buffer=where)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(mine, x[core * rows:(core + 1) * rows, :])
        call(mine, theirs, core)
        nisa.dma_copy(out[core * rows:(core + 1) * rows, :], theirs)
        return out

    return kernel


def _halves(x):
    rows = x.shape[0] // 2
    return x[:rows], x[rows:]


def test_lnc_sendrecv_swaps_the_halves() -> None:
    x = np.arange(16 * 8, dtype=np.float32).reshape(16, 8)
    k = _lnc_kernel(lambda m, t, c: nki.lnc.sendrecv(m, t, 1 - c, 1 - c))
    top, bottom = _halves(x)
    np.testing.assert_array_equal(nki.simulate(k[2])(x, "sbuf"), np.vstack([bottom, top]))
    assert nki.lnc.core_barrier is nisa.core_barrier


@pytest.mark.parametrize(("op", "ufunc", "dtype", "buf"), [
    (nl.add, np.add, np.float32, "sbuf"), (nl.maximum, np.maximum, np.float32, "sbuf"),
    (nl.minimum, np.minimum, np.int32, "sbuf"), (nl.add, np.add, np.float32, "private_hbm")])
def test_sendrecv_compute_reduces_mine_and_the_peers(op, ufunc, dtype, buf) -> None:
    x = np.random.default_rng(1).integers(-50, 50, (16, 8)).astype(dtype)
    k = _lnc_kernel(lambda m, t, c: nki.lnc.sendrecv_compute(m, t, 1 - c, 1 - c, op))
    top, bottom = _halves(x)
    both = ufunc(top, bottom)  # each core writes op(mine, peer's): equal on both cores
    np.testing.assert_array_equal(nki.simulate(k[2])(x, buf), np.vstack([both, both]))


def test_sendrecv_compute_into_its_own_src_uses_the_old_values() -> None:
    x = np.arange(16 * 8, dtype=np.float32).reshape(16, 8)
    k = _lnc_kernel(lambda m, t, c: (nki.lnc.sendrecv_compute(m, m, 1 - c, 1 - c, nl.add),
                                     nisa.tensor_copy(t, m)))
    top, bottom = _halves(x)
    np.testing.assert_array_equal(nki.simulate(k[2])(x, "sbuf"),
                                  np.vstack([top + bottom] * 2))


def _sbuf(shape=(8, 8), dtype=nl.float32, buf=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buf)


# each: (chip, LNC, body(core) -> the call, error type, words); one per documented rule
LNC_ERRORS = [
    ("trn2", 1, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 0, 0), KernelUsageError,
     "kernel\\[2\\]"),
    ("trn1", 1, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 0, 0), KernelUsageError,
     "NeuronCore-v3"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 2, 1 - c), KernelUsageError,
     "send_to_rank=2"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 1 - c, 1 - c, priority=1),
     KernelUsageError, "NeuronCore-v4"),
    ("trn3", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 1 - c, 1 - c, priority=4),
     KernelUsageError, "0 \\(highest\\) to 3"),
    ("trn3", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 1 - c, 1 - c,
                                           nisa.dma_engine.gpsimd_dma, priority=0),
     KernelUsageError, "gpsimd_dma"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(), 1 - c, 1 - c, "fast"),
     KernelUsageError, "dma_engine='fast'"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv(_sbuf(), _sbuf(dtype=nl.bfloat16), 1 - c, 1 - c),
     DTypeError, "equal dtypes"),
    ("trn2", 1, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf(), 0, 0, nl.add),
     KernelUsageError, "kernel\\[2\\]"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf(), 1 - c, 1 - c,
                                                   nl.multiply),
     KernelUsageError, "reduce_op=nl.multiply"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf(buf=nl.private_hbm), 1 - c,
                                                   1 - c, nl.add),
     BufferKindError, "same memory"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(buf=nl.shared_hbm),
                                                   _sbuf(buf=nl.shared_hbm), 1 - c, 1 - c,
                                                   nl.add),
     BufferKindError, "SBUF or private HBM"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf(dtype=nl.int32), 1 - c,
                                                   1 - c, nl.add),
     DTypeError, "src dtype"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf((8, 4)), 1 - c, 1 - c,
                                                   nl.add),
     ShapeMismatchError, "must match"),
    ("trn2", 2, lambda c: nki.lnc.sendrecv_compute(_sbuf(), _sbuf(), 1 - c, 1 - c, nl.add,
                                                   priority=0),
     KernelUsageError, "NeuronCore-v4"),
]


@pytest.mark.parametrize(("chip", "lnc", "body", "error", "words"), LNC_ERRORS,
                         ids=[f"{i}" for i in range(len(LNC_ERRORS))])
def test_each_lnc_rule_is_one_error(chip, lnc, body, error, words) -> None:
    @nki.jit
    def kernel(x):
        body(nl.program_id(0))
        return x

    launch = kernel[2] if lnc == 2 else kernel
    with pytest.raises(error, match=words):
        nki.trace(launch, symbolic=True, chip=chip)(np.zeros((2, 2), np.float32))


def test_priority_on_v4_is_recorded() -> None:
    k = _lnc_kernel(lambda m, t, c: nki.lnc.sendrecv_compute(m, t, 1 - c, 1 - c, nl.add,
                                                             priority=2))
    res = nki.trace(k[2], chip="trn3")(np.ones((16, 8), np.float32), "sbuf")
    insts = [i for i in res.instructions if i.opcode is Opcode.SENDRECV_COMPUTE]
    assert len(insts) == 2 and all(i.attrs.priority == 2 and i.attrs.reduce_op == "add"
                                   for i in insts)


def test_sendrecv_compute_pairs_with_the_peer_and_costs_the_dma_reduction() -> None:
    """Priced as a core-to-core swap at the dma_compute rate: half the DMA rate before v4,
    so on trn2 it takes longer than the plain sendrecv of the same tile."""
    def both(m, t, c):
        nki.lnc.sendrecv(m, t, 1 - c, 1 - c)
        nki.lnc.sendrecv_compute(m, t, 1 - c, 1 - c, nl.add)

    x = np.ones((256, 512), np.float32)
    res = nki.trace(_lnc_kernel(both)[2], chip="trn2")(x, "sbuf")
    tl = sim.schedule(res, "trn2").timeline
    took = {op: [tl.end_s[p] - tl.start_s[p] for p, i in enumerate(res.instructions)
                 if i.opcode is op] for op in (Opcode.SENDRECV, Opcode.SENDRECV_COMPUTE)}
    assert len(took[Opcode.SENDRECV_COMPUTE]) == 2
    assert min(took[Opcode.SENDRECV_COMPUTE]) > max(took[Opcode.SENDRECV]) > 0


# --------------------------------------------------------------------- refusals
@pytest.mark.parametrize("name", ["all_gather_v", "all_gather_v_prepare",
                                  "all_gather_v_trigger", "all_to_all_v_prepare",
                                  "all_to_all_v_trigger"])
def test_split_and_variable_gathers_are_refused_by_name(name) -> None:
    with pytest.raises(KernelUsageError, match=f"nki.collectives.{name}: not implemented"):
        getattr(ncc, name)([], [], RG([[0]]), None)
