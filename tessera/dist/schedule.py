"""Collective algorithms as schedules: lists of steps, each a set of simultaneous flows.

A `Step` names its flows by global rank (src -> dst), the bytes of each flow as a fraction
of the collective's `n_bytes`, whether the sender reduces (reads two operands) and how many
times the same step repeats. Because every flow's bytes scale with `n_bytes`, a schedule is
built once per (operation, algorithm, group) and costed at any size.

Algorithm shapes follow the Neuron runtime's descriptions [CCI]/[CCX]: ring (n-1 steps per
phase), mesh/direct (one routed step per phase), recursive halving-doubling (log2 n steps,
largest exchanges with the nearest partner), torus dimension-by-dimension rings, and
hierarchical (intra-instance reduce-scatter, inter-instance all-reduce by RHD, intra-instance
all-gather).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tessera.dist.errors import AlgorithmNotApplicableError
from tessera.dist.ops import Algorithm, CollectiveOp
from tessera.dist.placement import RankMap

Op = CollectiveOp


@dataclass(frozen=True, eq=False)
class Step:
    """Flows that run at the same time; repeated `count` times.

    With `pair_labels` set, the flows are every ordered pair of distinct `src` ranks that
    share a label (`dst` is unused): the mesh pattern, kept implicit because it has n^2 flows.
    """

    src: np.ndarray = field(repr=False)
    dst: np.ndarray = field(repr=False)
    fraction: float
    reduce: bool
    count: int = 1
    pair_labels: np.ndarray | None = field(default=None, repr=False)

    def reversed_phase(self) -> Step:
        """The mirror step of the all-gather half: same flows, no reduction."""
        return Step(self.src, self.dst, self.fraction, False, self.count, self.pair_labels)


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


def _ring_pass(order: np.ndarray, frac: float, reduce: bool, count: int, bidir: bool) -> Step:
    nxt = np.roll(order, -1)
    if not bidir:
        return Step(order, nxt, frac, reduce, count)
    prv = np.roll(order, 1)
    return Step(np.concatenate([order, order]), np.concatenate([nxt, prv]), frac / 2, reduce,
                count)


def ring(op: Op, rm: RankMap, group: np.ndarray, bidir: bool = False) -> list[Step]:
    """Ring over the group in Hamiltonian-cycle order; `bidir` splits data over two rings."""
    alg = Algorithm.RING_BIDIR if bidir else Algorithm.RING
    order = rm.ring_order(group)
    n = order.size
    if op in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
        return _reduce_then_gather(op, [_ring_pass(order, 1 / n, True, n - 1, bidir)], alg)
    if op is Op.ALL_TO_ALL:
        # Chunks are relayed: step s forwards the n-s chunks still travelling. The steps differ
        # only in size, so one step with the mean size stands for them (time is linear in it).
        if not bidir:
            return [_ring_pass(order, 0.5, False, n - 1, False)]
        far = n // 2  # one direction serves distances 1..n/2, the other the rest
        return [_ring_pass(order, (far + 1) / n, False, far, True)]
    if op is Op.BROADCAST:
        root = group[0]
        others = order[order != root]
        scatter = Step(np.full(others.size, root), others, 1 / n, False)
        return [scatter, _ring_pass(order, 1 / n, False, n - 1, bidir)]
    raise _no(alg, op, "point-to-point operations have no ring form; use direct")


def direct(op: Op, rm: RankMap, group: np.ndarray) -> list[Step]:
    """Mesh: every rank writes straight to its peers, routed over the topology [CCI]."""
    n = group.size
    one = np.zeros(n, dtype=np.int64)

    def pairs(reduce: bool) -> Step:
        return Step(group, group, 1 / n, reduce, 1, one)

    if op is Op.ALL_REDUCE:
        return [pairs(True), pairs(False)]
    if op in (Op.ALL_GATHER, Op.ALL_TO_ALL):
        return [pairs(False)]
    if op is Op.REDUCE_SCATTER:
        return [pairs(True)]
    if op is Op.BROADCAST:
        return [Step(np.full(n - 1, group[0]), group[1:], 1.0, False)]
    if op is Op.SEND_RECV:
        if n != 2:
            raise _no(Algorithm.DIRECT, op, f"send/recv needs a group of 2 ranks, not {n}")
        return [Step(group[:1], group[1:], 1.0, False)]
    return [Step(group, np.roll(group, -1), 1.0, False)]  # PERMUTE: shift by one


def _halving(order: np.ndarray, reduce: bool, scale: float = 1.0) -> list[Step]:
    """Recursive halving: partner at distance 1, 2, 4, ... exchanges 1/2, 1/4, ... of data."""
    n = order.size
    idx = np.arange(n)
    steps = []
    for j in range(n.bit_length() - 1):
        steps.append(Step(order, order[idx ^ (1 << j)], scale / (2 << j), reduce))
    return steps


def rhd(op: Op, rm: RankMap, group: np.ndarray) -> list[Step]:
    """Recursive halving (reduce-scatter) and doubling (all-gather); power-of-two groups."""
    n = group.size
    if n & (n - 1):
        raise _no(Algorithm.RHD, op, f"needs a power-of-two group, not {n} ranks")
    order = rm.cube_order(group)
    if op is Op.BROADCAST:
        idx = np.arange(n)
        steps = []
        root_first = np.concatenate([[group[0]], order[order != group[0]]])
        for t in range(n.bit_length() - 1):
            d = n >> (t + 1)
            senders = idx[idx % (2 * d) == 0]
            steps.append(Step(root_first[senders], root_first[senders + d], 1.0, False))
        return steps
    return _reduce_then_gather(op, _halving(order, True), Algorithm.RHD)


def _slots(rm: RankMap, ranks: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group `ranks` by `key`; return (keys, slot index of each rank within its key)."""
    order = np.lexsort((rm.core[ranks], key))
    slot = np.empty(ranks.size, dtype=np.int64)
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    counts = np.diff(np.r_[starts, ranks.size])
    slot[order] = np.arange(ranks.size) - np.repeat(starts, counts)
    return key, slot


def torus(op: Op, rm: RankMap, group: np.ndarray) -> list[Step]:
    """Intra-chip exchange, then a bidirectional ring along each torus dimension in turn."""
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
        rs.append(Step(group, group, 1 / r, True, 1, chips))
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
                       frac / d / 2, True, d - 1))
        frac /= d
    return _reduce_then_gather(op, rs, Algorithm.TORUS)


def hierarchical(op: Op, rm: RankMap, group: np.ndarray) -> list[Step]:
    """Intra-instance bidirectional-ring RS, inter-instance RHD (or ring) AR, intra AG [CCX]."""
    m = rm.topology.chips_per_instance
    order = rm.ring_order(group)  # instance-major
    inst = rm.chip[order] // m
    insts, per_inst = np.unique(inst, return_counts=True)
    g, k = insts.size, int(per_inst[0])
    if g < 2 or (per_inst != k).any():
        raise _no(Algorithm.HIERARCHICAL, op, "needs >= 2 instances with equal rank counts")
    if op not in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
        raise _no(Algorithm.HIERARCHICAL, op, "only all-reduce, all-gather and reduce-scatter")
    table = order.reshape(g, k)  # [instance position, slot in the instance's ring]
    intra: list[Step] = []
    if k > 1:
        nxt = np.roll(table, -1, axis=1).ravel()
        prv = np.roll(table, 1, axis=1).ravel()
        flat = table.ravel()
        intra.append(Step(np.concatenate([flat, flat]), np.concatenate([nxt, prv]),
                          1 / k / 2, True, k - 1))
    # Across instances the ranks with the same slot form groups of g; all run at once.
    inter: list[Step] = []
    pos = np.arange(g)
    if g & (g - 1) == 0:
        for j in range(g.bit_length() - 1):
            partner = table[pos ^ (1 << j)]
            inter.append(Step(table.ravel(), partner.ravel(), 1 / k / (2 << j), True))
    else:
        nxt = np.roll(table, -1, axis=0).ravel()
        prv = np.roll(table, 1, axis=0).ravel()
        flat = table.ravel()
        inter.append(Step(np.concatenate([flat, flat]), np.concatenate([nxt, prv]),
                          1 / k / g / 2, True, g - 1))
    return _reduce_then_gather(op, intra + inter, Algorithm.HIERARCHICAL)


BUILDERS: dict[Algorithm, Callable[[Op, RankMap, np.ndarray], list[Step]]] = {
    Algorithm.RING: lambda op, rm, g: ring(op, rm, g, bidir=False),
    Algorithm.RING_BIDIR: lambda op, rm, g: ring(op, rm, g, bidir=True),
    Algorithm.DIRECT: direct,
    Algorithm.RHD: rhd,
    Algorithm.TORUS: torus,
    Algorithm.HIERARCHICAL: hierarchical,
}


def build(op: Op, algorithm: Algorithm, rm: RankMap, group: np.ndarray) -> list[Step]:
    """The steps of `op` by `algorithm` on `group`; raises if the algorithm does not apply."""
    if algorithm is Algorithm.AUTO:
        raise ValueError("resolve AUTO before building a schedule")
    if op in (Op.SEND_RECV, Op.PERMUTE) and algorithm is not Algorithm.DIRECT:
        raise _no(algorithm, op, "point-to-point operations only run direct")
    return BUILDERS[algorithm](op, rm, group)
