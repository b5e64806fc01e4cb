"""The Neuron runtime's own intra-node algorithms as schedules: its Mesh and KangaRing [CCI].

Both are built from the vendor's description of them (neuron-runtime/explore/
intranode-collective-comm.rst, sections "Mesh Algorithm" and "KangaRing Algorithm"); where the
description leaves a detail open the choice is said next to it.

Mesh (`Algorithm.MESH`). Unlike `direct`, which writes to every peer from every rank, the
runtime's mesh works per chip: a reduce-scatter sends, for each off-chip destination rank,
one partial sum of the source chip's chunks from one of its ranks (the chip's ranks share
the destinations), then each rank reduces its own chip's chunks; an all-gather writes each
chip's bundle of chunks once to one rank of every other chip, then the ranks of a chip
exchange what they received. The vendor calls its latency O(1): the writes to different
peers start together, so a step's messages are spread over the rank's DMA engines
(`Step.lanes` = engines per physical core x cores per rank, [DMAO] 16 per core) instead of
being issued one after another. A group with unequal ranks per chip, one rank per chip, or
one rank per instance (the inter-node mesh of [CCX]) is a plain mesh with the same lanes.

KangaRing (`Algorithm.KANGARING`). The ranks of a chip pair up (primary, secondary); only the
primaries form the ring, so a phase takes n/2 - 1 steps instead of n - 1. A primary reduces
its own, its secondary's and the received chunk (three reads, one write: `hbm_extra` = 1 on
top of a reducing flow's two reads and one write) and, gathering, writes each received chunk
to downstream and, duplicated by the hardware, to its secondary (one read, two writes:
`hbm_extra` = 1 on a copy). Two cycles run at once with the roles swapped, each carrying half
of the data, so every rank is primary in one. The vendor runs them on two edge-disjoint
Hamiltonian cycles of the torus; here the second is the first run the other way round, which
keeps as many link directions busy. It applies only where every rank of each chip it uses is
in the group (a tensor-parallel group), never to one rank per chip [CCI].
"""

from __future__ import annotations

import numpy as np

from tessera.net.errors import AlgorithmNotApplicableError
from tessera.net.ops import Algorithm, CollectiveOp
from tessera.net.steps import GroupLayout, Step, shift

Op = CollectiveOp
_COLLECTIVES = (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER)


def _no(algorithm: Algorithm, op: Op, why: str) -> AlgorithmNotApplicableError:
    return AlgorithmNotApplicableError(f"{algorithm.value} cannot run {op.value}: {why}")


def _chip_table(lay: GroupLayout) -> tuple[np.ndarray, bool]:
    """Members as a (chips, ranks per chip) table in ring order, and whether every chip of
    the group holds the same number of them (otherwise one column: each rank alone)."""
    order = lay.ring_order  # instance, chip on the cycle, core: a chip's ranks are adjacent
    _, counts = np.unique(lay.rm.chip[order], return_counts=True)
    if (counts != counts[0]).any():
        return order.reshape(-1, 1), False
    return order.reshape(-1, int(counts[0])), True


def _instances(lay: GroupLayout) -> np.ndarray:
    """How many members each instance the group touches holds."""
    counts = np.bincount(lay.rm.instance[lay.members])
    return counts[counts > 0]


def mesh(op: Op, lay: GroupLayout) -> list[Step]:
    """The runtime's chip-aware mesh (see module doc); AR = RS then AG, two steps each."""
    if op not in _COLLECTIVES:
        raise _no(Algorithm.MESH, op, "only all-reduce, all-gather and reduce-scatter")
    per_instance = _instances(lay)
    if per_instance.size > 1 and per_instance.max() > 1:
        raise _no(Algorithm.MESH, op, "across instances the runtime meshes one rank per "
                  "instance; several per instance go hierarchical [CCX]")
    rm = lay.rm
    lanes = rm.topology.dma_engines_per_core * rm.lnc
    table, _ = _chip_table(lay)
    c, r = table.shape
    n = c * r
    rs: list[Step] = []
    ag: list[Step] = []
    if r == 1:  # every rank alone: write to every peer (as pairs, for the engine's counts)
        members, one = table.ravel(), np.zeros(n, dtype=np.int64)
        rs.append(Step(members, members, 1 / n, True, 1, one, messages=n - 1, lanes=lanes))
        ag.append(Step(members, members, 1 / n, False, 1, one, messages=n - 1, lanes=lanes))
    elif c > 1:
        # chip i's destinations: the ranks of the other chips, taken round its cycle order
        t = np.arange(c - 1)
        rows = np.arange(c)[:, None]
        other = (rows + 1 + t[None, :]) % c  # (c, c - 1)
        dst = table[other].reshape(c, -1)  # (c, (c - 1) r)
        src = table[rows, np.arange((c - 1) * r)[None, :] % r]  # the chip's ranks share them
        rs.append(Step(src.ravel(), dst.ravel(), 1 / n, True, messages=c - 1, lanes=lanes))
        # all-gather: chip i's bundle of r chunks goes once to rank t mod r of its t-th peer
        slot = np.broadcast_to(t % r, (c, c - 1))
        ag.append(Step(table[np.broadcast_to(rows, (c, c - 1)), slot].ravel(),
                       table[other, slot].ravel(), r / n, False, messages=-(-(c - 1) // r),
                       lanes=lanes))
    if r > 1:
        # inside each chip: reduce the chip's own chunks; share what came in (1/r each way)
        members, labels = table.ravel(), np.repeat(np.arange(c), r)
        rs.append(Step(members, members, 1 / n, True, 1, labels, messages=r - 1, lanes=lanes))
        ag.append(Step(members, members, 1 / r, False, 1, labels, messages=r - 1,
                       lanes=lanes))
    if op is Op.REDUCE_SCATTER:
        return rs
    if op is Op.ALL_GATHER:
        return ag
    return rs + ag


def kangaring(op: Op, lay: GroupLayout) -> list[Step]:
    """KangaRing (see module doc): two rings of primaries, n/2 - 1 steps per phase."""
    if op not in _COLLECTIVES:
        raise _no(Algorithm.KANGARING, op, "only all-reduce, all-gather and reduce-scatter")
    if _instances(lay).size > 1:
        raise _no(Algorithm.KANGARING, op, "an intra-node algorithm: the group must sit in "
                  "one instance [CCI]")
    rm = lay.rm
    used = np.unique(rm.chip[lay.members])
    placed = np.bincount(rm.chip, minlength=rm.topology.n_chips)[used]
    table, equal = _chip_table(lay)
    c, r = table.shape
    if (placed != r).any() or not equal:
        raise _no(Algorithm.KANGARING, op, "needs every rank of each chip it uses in the "
                  "group (a tensor-parallel group) [CCI]")
    if r < 2 or r % 2:
        raise _no(Algorithm.KANGARING, op, f"pairs the ranks of a chip: needs an even number "
                  f">= 2 of them per chip, not {r} [CCI]")
    if c < 2:
        raise _no(Algorithm.KANGARING, op, "needs a group spanning >= 2 chips")
    n = c * r
    first, second = table[:, 0::2].ravel(), table[:, 1::2].ravel()  # primaries of each cycle
    src = np.concatenate((first, second))
    dst = np.concatenate((shift(first, 1), shift(second, -1)))  # the cycles run both ways
    ring = Step(src, dst, 1 / n, op is not Op.ALL_GATHER, n // 2 - 1, messages=1,
                hbm_extra=1)
    if op is Op.ALL_GATHER:
        return [ring]
    if op is Op.ALL_REDUCE:
        return [ring, ring.reversed_phase()]
    # reduce-scatter: each primary hands its secondary that rank's reduced half-chunk
    handoff = Step(src, np.concatenate((second, first)), 1 / (2 * n), False, messages=1)
    return [ring, handoff]
