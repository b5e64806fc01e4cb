"""Collective algorithms as schedules: lists of steps, each a set of simultaneous flows.

Because every flow's bytes scale with `n_bytes`, a schedule is built once per (operation,
algorithm, group) and costed at any size (see `steps` for `Step` and the group layout).

Algorithm shapes follow the Neuron runtime's descriptions [CCI]/[CCX]: ring (n-1 steps per
phase), direct (one routed step per phase, every rank to every peer), recursive
halving-doubling (log2 n steps, largest exchanges with the nearest partner), torus
dimension-by-dimension rings, and hierarchical (intra-instance reduce-scatter,
inter-instance all-reduce by RHD, intra-instance all-gather); the runtime's own chip-aware
Mesh and KangaRing are in `runtime_schedules`. Each builder declares how many messages a
rank issues per step; the steps of ring, RHD and hierarchical schedules carry their
one-instance representative when the group is instance-symmetric.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from tessera.net.errors import AlgorithmNotApplicableError
from tessera.net.hierarchy import Hierarchy, compose
from tessera.net.ops import CHOOSERS, Algorithm, CollectiveOp
from tessera.net.placement import RankMap
from tessera.net.runtime_schedules import kangaring, mesh
from tessera.net.steps import GroupLayout, Period, Representative, Step, rep_of, shift

Op = CollectiveOp
__all__ = ["BUILDERS", "GroupLayout", "Representative", "Step", "build", "message_floor"]


def _no(algorithm: Algorithm, op: Op, why: str) -> AlgorithmNotApplicableError:
    return AlgorithmNotApplicableError(f"{algorithm.value} cannot run {op.value}: {why}")


def _mirror(steps: list[Step]) -> list[Step]:
    return [s.reversed_phase() for s in reversed(steps)]


def _reduce_then_gather(op: Op, rs: list[Step], algorithm: Algorithm) -> list[Step]:
    if op is Op.ALL_REDUCE:
        return rs + _mirror(rs)
    if op is Op.REDUCE_SCATTER:
        return rs
    if op is Op.ALL_GATHER:
        return _mirror(rs)
    raise _no(algorithm, op, "only all-reduce, all-gather and reduce-scatter")


def _ring_pass(order: np.ndarray, frac: float, reduce: bool, count: int, bidir: bool,
               period: Period | None) -> Step:
    """One ring step over `order`; symmetric under shifting whole instances round the ring."""
    nxt = shift(order, 1)
    if not bidir:
        return Step(order, nxt, frac, reduce, count, rep=rep_of(period, order, nxt),
                    messages=1)
    prv = shift(order, -1)
    rep = None
    if period is not None:
        per, insts = period
        first = order[:per]
        rep = Representative(np.concatenate((first, first)),
                             np.concatenate((nxt[:per], prv[:per])), insts)
    return Step(np.concatenate((order, order)), np.concatenate((nxt, prv)), frac / 2, reduce,
                count, rep=rep, messages=2)


def ring(op: Op, lay: GroupLayout, bidir: bool = False) -> list[Step]:
    """Ring over the group in Hamiltonian-cycle order; `bidir` splits data over two rings."""
    alg = Algorithm.RING_BIDIR if bidir else Algorithm.RING
    if op in (Op.SEND_RECV, Op.PERMUTE):
        raise _no(alg, op, "point-to-point operations have no ring form; use direct")
    order, period = lay.ring_order, lay.ring_period
    n = order.size
    if op is Op.ALL_TO_ALL:
        # Chunks are relayed: step s forwards the n-s chunks still travelling. The steps differ
        # only in size, so one step with the mean size stands for them (time is linear in it).
        if not bidir:
            return [_ring_pass(order, 0.5, False, n - 1, False, period)]
        far = n // 2  # one direction serves distances 1..n/2, the other the rest
        return [_ring_pass(order, (far + 1) / n, False, far, True, period)]
    if op is Op.BROADCAST:
        root = lay.members[0]
        others = order[order != root]
        scatter = Step(np.full(others.size, root), others, 1 / n, False, messages=n - 1)
        return [scatter, _ring_pass(order, 1 / n, False, n - 1, bidir, period)]
    return _reduce_then_gather(op, [_ring_pass(order, 1 / n, True, n - 1, bidir, period)], alg)


def direct(op: Op, lay: GroupLayout) -> list[Step]:
    """Mesh: every rank writes straight to its peers, routed over the topology [CCI]."""
    group = lay.members
    n = group.size
    one = np.zeros(n, dtype=np.int64)

    def pairs(reduce: bool) -> Step:
        return Step(group, group, 1 / n, reduce, 1, one, messages=n - 1)

    if op is Op.ALL_REDUCE:
        return [pairs(True), pairs(False)]
    if op in (Op.ALL_GATHER, Op.ALL_TO_ALL):
        return [pairs(False)]
    if op is Op.REDUCE_SCATTER:
        return [pairs(True)]
    if op is Op.BROADCAST:
        return [Step(np.full(n - 1, group[0]), group[1:], 1.0, False, messages=n - 1)]
    if op is Op.SEND_RECV:
        if n != 2:
            raise _no(Algorithm.DIRECT, op, f"send/recv needs a group of 2 ranks, not {n}")
        return [Step(group[:1], group[1:], 1.0, False, messages=1)]
    return [Step(group, shift(group, 1), 1.0, False, messages=1)]  # PERMUTE: shift by one


def _xor_partners(order: np.ndarray, bit: int) -> np.ndarray:
    return order[np.arange(order.size) ^ bit]


def _halving(order: np.ndarray, reduce: bool, period: Period | None) -> list[Step]:
    """Recursive halving: partner at distance 1, 2, 4, ... exchanges 1/2, 1/4, ... of data.

    With equal power-of-two blocks per instance, XOR partners stay inside an instance for the
    low bits and pair whole instances (an XOR translation of them) for the high bits: every
    step is instance-symmetric, and only the first block's partners are listed up front.
    """
    n = order.size
    bits = 1 << np.arange(n.bit_length() - 1)
    if period is None:
        partners = order[np.arange(n) ^ bits[:, None]]  # one gather for all steps
        return [Step(order, partners[j], 1 / (2 << j), reduce, messages=1)
                for j in range(bits.size)]
    per, insts = period
    first = order[:per]
    near = order[np.arange(per) ^ bits[:, None]]
    return [Step(order, None, 1 / (2 << j), reduce, rep=Representative(first, near[j], insts),
                 messages=1, make_dst=functools.partial(_xor_partners, order, int(bits[j])))
            for j in range(bits.size)]


def rhd(op: Op, lay: GroupLayout) -> list[Step]:
    """Recursive halving (reduce-scatter) and doubling (all-gather); power-of-two groups."""
    group = lay.members
    n = group.size
    if n & (n - 1):
        raise _no(Algorithm.RHD, op, f"needs a power-of-two group, not {n} ranks")
    if op is Op.BROADCAST:
        order = lay.cube_order
        idx = np.arange(n)
        steps = []
        root_first = np.concatenate([[group[0]], order[order != group[0]]])
        for t in range(n.bit_length() - 1):
            d = n >> (t + 1)
            senders = idx[idx % (2 * d) == 0]
            steps.append(Step(root_first[senders], root_first[senders + d], 1.0, False,
                              messages=1))
        return steps
    if op not in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
        raise _no(Algorithm.RHD, op, "only all-reduce, all-gather, reduce-scatter, broadcast")
    return _reduce_then_gather(op, _halving(lay.cube_order, True, lay.cube_period),
                               Algorithm.RHD)


def _slots(rm: RankMap, ranks: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group `ranks` by `key`; return (keys, slot index of each rank within its key)."""
    order = np.lexsort((rm.core[ranks], key))
    slot = np.empty(ranks.size, dtype=np.int64)
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    counts = np.diff(np.r_[starts, ranks.size])
    slot[order] = np.arange(ranks.size) - np.repeat(starts, counts)
    return key, slot


def torus(op: Op, lay: GroupLayout) -> list[Step]:
    """Intra-chip exchange, then a bidirectional ring along each torus dimension in turn."""
    rm, group = lay.rm, lay.members
    topo = rm.topology
    if not topo.is_torus or topo.instances != 1:
        raise _no(Algorithm.TORUS, op, "needs one instance wired as a torus or ring")
    chips = rm.chip[group]
    per_chip = np.bincount(chips, minlength=topo.n_chips)
    r = int(per_chip.max())
    if per_chip.min() != r:
        raise _no(Algorithm.TORUS, op, "needs the same number of ranks on every chip of the "
                  "instance")
    _, slot = _slots(rm, group, chips)
    lookup = np.full((topo.n_chips, r), -1, dtype=np.int64)
    lookup[chips, slot] = group
    rs: list[Step] = []
    frac = 1.0
    if r > 1:
        rs.append(Step(group, group, 1 / r, True, 1, chips, messages=r - 1))
        frac /= r
    coords = topo.chip_coords[chips]
    for k, d in enumerate(topo.dims):
        if d == 1:
            continue
        fwd, bwd = coords.copy(), coords.copy()
        fwd[:, k] = (fwd[:, k] + 1) % d
        bwd[:, k] = (bwd[:, k] - 1) % d
        nxt = lookup[np.ravel_multi_index(fwd.T, topo.dims), slot]
        prv = lookup[np.ravel_multi_index(bwd.T, topo.dims), slot]
        rs.append(Step(np.concatenate([group, group]), np.concatenate([nxt, prv]),
                       frac / d / 2, True, d - 1, messages=2))
        frac /= d
    return _reduce_then_gather(op, rs, Algorithm.TORUS)


def hierarchical(op: Op, lay: GroupLayout) -> list[Step]:
    """Intra-instance bidirectional-ring RS, inter-instance RHD (or ring) AR, intra AG [CCX]."""
    if op not in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
        raise _no(Algorithm.HIERARCHICAL, op, "only all-reduce, all-gather and reduce-scatter")
    order = lay.ring_order  # instance-major
    period = lay.ring_period
    if period is not None:  # equal layouts: equal counts
        k, g = period[0], period[1].size
    else:
        inst = lay.rm.chip[order] // lay.rm.topology.chips_per_instance
        starts = (inst[1:] != inst[:-1]).nonzero()[0]  # last rank of each instance but one
        g = starts.size + 1
        k = order.size // g
        if g < 2 or order.size % g or (starts != np.arange(k - 1, order.size - 1, k)).any():
            raise _no(Algorithm.HIERARCHICAL, op, "needs >= 2 instances with equal rank counts")
    table = order.reshape(g, k)  # [instance position, slot in the instance's ring]
    both = np.concatenate((order, order))

    def both_ways(axis: int, frac: float, count: int) -> Step:
        """Each rank sends to its next and previous rank along `axis` of the table."""
        if period is None:
            return Step(both, _both_ways_dst(table, axis), frac, True, count, messages=2)
        nxt, prv = (table[0, 1:], table[0, :1]), (table[0, -1:], table[0, :-1])
        if axis == 0:  # instance 0 sends to instances 1 and g - 1
            nxt, prv = (table[1 % g],), (table[g - 1],)
        rep = Representative(np.concatenate((table[0], table[0])),
                             np.concatenate((*nxt, *prv)), period[1])
        return Step(both, None, frac, True, count, rep=rep, messages=2,
                    make_dst=functools.partial(_both_ways_dst, table, axis))

    intra: list[Step] = []
    if k > 1:
        intra.append(both_ways(1, 1 / k / 2, k - 1))
    # Across instances the ranks with the same slot form groups of g; all run at once.
    inter: list[Step] = []
    if g & (g - 1) == 0:
        bits = 1 << np.arange(g.bit_length() - 1)
        for j, bit in enumerate(bits.tolist()):
            make = functools.partial(_row_partners, table, bit)
            if period is None:
                inter.append(Step(order, make(), 1 / k / (2 << j), True, messages=1))
            else:
                inter.append(Step(order, None, 1 / k / (2 << j), True,
                                  rep=Representative(table[0], table[bit], period[1]),
                                  messages=1, make_dst=make))
    else:
        inter.append(both_ways(0, 1 / k / g / 2, g - 1))
    return _reduce_then_gather(op, intra + inter, Algorithm.HIERARCHICAL)


def _both_ways_dst(table: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate((shift(table, 1, axis).ravel(), shift(table, -1, axis).ravel()))


def _row_partners(table: np.ndarray, bit: int) -> np.ndarray:
    return table[np.arange(table.shape[0]) ^ bit].ravel()


BUILDERS: dict[Algorithm, Callable[[Op, GroupLayout], list[Step]]] = {
    Algorithm.RING: lambda op, lay: ring(op, lay, bidir=False),
    Algorithm.RING_BIDIR: lambda op, lay: ring(op, lay, bidir=True),
    Algorithm.DIRECT: direct,
    Algorithm.MESH: mesh,
    Algorithm.RHD: rhd,
    Algorithm.TORUS: torus,
    Algorithm.KANGARING: kangaring,
    Algorithm.HIERARCHICAL: hierarchical,
}


def build(op: Op, algorithm: Algorithm | Hierarchy, rm: RankMap, group: np.ndarray,
          layout: GroupLayout | None = None) -> list[Step]:
    """The steps of `op` by `algorithm` on `group`; raises if the algorithm does not apply.

    `algorithm` may be a `hierarchy.Hierarchy` (stages chosen by the runtime policy). Pass
    the group's `layout` to share its orders between algorithms.
    """
    lay = layout or GroupLayout(rm, group)
    if isinstance(algorithm, Hierarchy):
        return compose(op, lay, algorithm, _build)
    return _build(op, algorithm, lay)


def _build(op: Op, algorithm: Algorithm, lay: GroupLayout) -> list[Step]:
    if algorithm in CHOOSERS:
        raise ValueError(f"resolve {algorithm.value} to an algorithm before building")
    if op in (Op.SEND_RECV, Op.PERMUTE) and algorithm is not Algorithm.DIRECT:
        raise _no(algorithm, op, "point-to-point operations only run direct")
    return BUILDERS[algorithm](op, lay)


def message_floor(op: Op, algorithm: Algorithm | Hierarchy, n: int) -> int:
    """A lower bound on the issues a rank pays one after another over `algorithm`'s schedule
    of `op` on `n` ranks (sum of count x issue rounds), known without building it; 0 where
    unknown.

    AUTO uses it to skip building schedules that cannot win (a 2,048-rank ring issues 4,094
    messages per rank); tests check it never exceeds the built schedule's count.
    """
    phases = 2 if op is Op.ALL_REDUCE else 1
    if algorithm in (Algorithm.RING, Algorithm.RING_BIDIR):
        ways = 2 if algorithm is Algorithm.RING_BIDIR else 1
        if op is Op.ALL_TO_ALL:
            return n - 1 if ways == 1 else 2 * (n // 2)
        if op is Op.BROADCAST:
            return (n - 1) * (1 + ways)
        return phases * (n - 1) * ways if op in (Op.ALL_REDUCE, Op.ALL_GATHER,
                                                 Op.REDUCE_SCATTER) else 0
    if algorithm is Algorithm.DIRECT:
        return 1 if op in (Op.SEND_RECV, Op.PERMUTE) else phases * (n - 1)
    collective = op in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER)
    if algorithm is Algorithm.MESH and collective:
        return phases  # a round of parallel issues in each phase's first step
    if algorithm is Algorithm.KANGARING and collective and n >= 4:
        return phases * (n // 2 - 1) + (op is Op.REDUCE_SCATTER)
    if algorithm is Algorithm.RHD and n & (n - 1) == 0:
        return phases * (n.bit_length() - 1) if op in (
            Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER, Op.BROADCAST) else 0
    return 0
