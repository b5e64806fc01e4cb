"""Hierarchical collectives composed of any intra-node and inter-node algorithm [CCX].

The runtime's Hierarchical algorithm "employs a plug-and-play mechanism to allow for any
combination of intra-node and inter-node algorithms" and picks the best one for each stage:
"small groups + sizes can go to intra-node Mesh + inter-node Mesh, and large groups + sizes
can go to intra-node KangaRing + inter-node RDH" [CCX, "Hierarchical Algorithm"]. With X
instances of Y ranks each:

- all-reduce = intra-node reduce-scatter (the whole buffer V over Y ranks), inter-node
  all-reduce of V/Y over the X ranks with the same slot, intra-node all-gather;
- reduce-scatter = intra-node reduce-scatter, then inter-node reduce-scatter of V/Y;
- all-gather = inter-node all-gather of V/Y first (less traffic on the slower network), then
  intra-node all-gather.

Each stage is built by the sub-algorithm's own builder on one instance's ranks (intra) or on
one slot's ranks across instances (inter); the copies run at once, so step j of every copy
becomes one step. Data sizes scale: the inter stage moves 1/Y of the buffer.
`Algorithm.HIERARCHICAL` itself stays the fixed form in `schedule` (bidirectional ring
inside, RDH or ring across); the runtime policy uses `Hierarchy` keys of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tessera.net.errors import AlgorithmNotApplicableError
from tessera.net.ops import Algorithm, CollectiveOp
from tessera.net.routing import pairs
from tessera.net.steps import GroupLayout, Representative, Step

Op = CollectiveOp
Builder = Callable[[Op, Algorithm, GroupLayout], list[Step]]


@dataclass(frozen=True)
class Hierarchy:
    """A hierarchical schedule: the first applicable of `intra` inside each instance, and
    `inter` across instances (a schedule key next to `Algorithm`s)."""

    intra: tuple[Algorithm, ...]
    inter: Algorithm

    @property
    def value(self) -> str:
        """Readable name, like `Algorithm.value`."""
        return f"hierarchical({'|'.join(a.value for a in self.intra)}+{self.inter.value})"


def _no(op: Op, why: str) -> AlgorithmNotApplicableError:
    return AlgorithmNotApplicableError(f"hierarchical cannot run {op.value}: {why}")


def _merge(parts: list[list[Step]], scale: float, op: Op) -> list[Step]:
    """Step j of every copy as one step; fractions scaled by `scale`."""
    first = parts[0]
    shape = [(s.fraction, s.reduce, s.count, s.pair_labels is None, s.lanes, s.hbm_extra)
             for s in first]
    for part in parts[1:]:
        if [(s.fraction, s.reduce, s.count, s.pair_labels is None, s.lanes, s.hbm_extra)
                for s in part] != shape:
            raise _no(op, "its stages differ between instances or slots (unequal layouts)")
    merged = []
    for j, step in enumerate(first):
        steps = [part[j] for part in parts]
        src = np.concatenate([s.src for s in steps])
        labels = None
        if step.pair_labels is not None:
            top = max(int(s.pair_labels.max()) for s in steps) + 1
            labels = np.concatenate([s.pair_labels + i * top for i, s in enumerate(steps)])
            dst = src
        else:
            dst = np.concatenate([s.destinations for s in steps])
        merged.append(Step(src, dst, step.fraction * scale, step.reduce, step.count, labels,
                           messages=max(s.messages_per_sender for s in steps),
                           lanes=step.lanes, hbm_extra=step.hbm_extra))
    return merged


def _replicate(base: list[Step], groups: np.ndarray, scale: float,
               lay: GroupLayout) -> list[Step]:
    """`base`, built on the first row of `groups`, run on every row at once.

    Used when every instance holds the same chips and cores (`ring_period`): then each row
    looks like the first (the same chips and cores inside its instance, or one rank of each
    instance in instance order), so its schedule is the first row's with the ranks renamed
    position by position. Every merged step then looks the same from each instance and
    carries the flows instance 0 sends as its `Representative` (the engine routes those).
    """
    assert lay.ring_period is not None
    instances = lay.ring_period[1]
    where = np.zeros(int(groups[0].max()) + 1, dtype=np.int64)
    where[groups[0]] = np.arange(groups.shape[1])
    out = []
    for s in base:
        a, b = (s.src, s.destinations) if s.pair_labels is None else pairs(s.pair_labels,
                                                                           s.src)
        src, dst = groups[:, where[a]].ravel(), groups[:, where[b]].ravel()
        mine = lay.rm.instance[src] == instances[0]
        out.append(Step(src, dst, s.fraction * scale, s.reduce, s.count,
                        rep=Representative(src[mine], dst[mine], instances),
                        messages=s.messages_per_sender, lanes=s.lanes,
                        hbm_extra=s.hbm_extra))
    return out


def _stage(op: Op, algorithms: tuple[Algorithm, ...], groups: np.ndarray,
           lay: GroupLayout, scale: float, build: Builder) -> list[Step]:
    """`op` by the first of `algorithms` that runs on every row of `groups`, all at once."""
    reasons = []
    for alg in algorithms:
        try:
            if lay.ring_period is not None:
                base = build(op, alg, GroupLayout(lay.rm, groups[0]))
            else:
                parts = [build(op, alg, GroupLayout(lay.rm, row)) for row in groups]
        except AlgorithmNotApplicableError as exc:
            reasons.append(str(exc))
            continue
        if lay.ring_period is not None:
            return _replicate(base, groups, scale, lay)
        return _merge(parts, scale, op)
    raise _no(op, "; ".join(reasons))


def compose(op: Op, lay: GroupLayout, key: Hierarchy, build: Builder) -> list[Step]:
    """The schedule of `op` as `key` composes it (see module doc); `build` builds a stage."""
    if op not in (Op.ALL_REDUCE, Op.ALL_GATHER, Op.REDUCE_SCATTER):
        raise _no(op, "only all-reduce, all-gather and reduce-scatter")
    order = lay.ring_order  # instance-major
    inst = lay.rm.instance[order]
    counts = np.bincount(inst)
    counts = counts[counts > 0]
    if counts.size < 2 or (counts != counts[0]).any():
        raise _no(op, "needs >= 2 instances with equal rank counts")
    x, y = counts.size, int(counts[0])
    table = order.reshape(x, y)  # [instance, slot]
    if y == 1:
        raise _no(op, "one rank per instance: no intra-node stage (use the inter algorithm)")
    slots = table.T
    if op is Op.ALL_GATHER:
        return (_stage(op, (key.inter,), slots, lay, 1 / y, build)
                + _stage(op, key.intra, table, lay, 1.0, build))
    inner = _stage(Op.REDUCE_SCATTER, key.intra, table, lay, 1.0, build)
    outer = _stage(op, (key.inter,), slots, lay, 1 / y, build)
    if op is Op.REDUCE_SCATTER:
        return inner + outer
    return inner + outer + _stage(Op.ALL_GATHER, key.intra, table, lay, 1.0, build)
