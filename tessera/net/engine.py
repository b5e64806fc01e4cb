"""Costing steps on a topology: route flows, load links, take the slowest flow.

Within a step every flow starts at once. Each link's load is the bytes of all flows crossing
it; a flow shares each link in proportion to its bytes, so it finishes after
`load / bandwidth` of its busiest link (contention and oversubscription show up here), plus
its latency: the hop latency of every link it crosses, after its sender has issued its
messages. Every peer transfer is a DMA of its own with a fixed issue cost (semaphore wait to
DMA start), and one rank's transfers are issued one after another, so a step's flows start
after `messages of the busiest sender x issue cost`: a `direct` mesh of n ranks pays n - 1 of
them per step, a ring one (two when bidirectional). A step whose builder spreads a sender's
messages over several DMA engines (`Step.lanes`: the runtime's mesh, whose latency the
vendor calls O(1) [CCI]) pays one issue per round of them. The step ends with its slowest
flow. Reductions
and copies also move bytes through HBM: a flow reads its source once (twice when it reduces:
the received partial and the local chunk) and writes its destination once. The runtime
overlaps the two halves of a chunk, reducing one while sending the other [CCI], so HBM time
overlaps the transfer and the step takes the larger of the two.

Speed. All distinct steps of one or more schedules are routed together with a fixed number
of numpy passes (`routing`). Flows with the same hop latency form one class; a class's line
is (latency, its largest busy-per-byte), so a step is a handful of lines. Instance-symmetric
steps (see `steps.Representative`) route only one instance's flows, and large meshes are
costed from per-chip rank counts; each shortcut gives the numbers of routing every flow
(tested).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tessera.net.placement import RankMap
from tessera.net.profiles import CostProfile, StepProfile, envelope
from tessera.net.routing import (
    Batch,
    Items,
    Tables,
    add_busy,
    mesh_by_counts,
    pairs,
    route_flows,
    tables,
)
from tessera.net.steps import Step
from tessera.net.topology import Topology

# Mesh steps with more members than this are costed from per-chip counts rather than by
# listing n^2 flows; the two ways agree exactly (tested).
EXPLICIT_PAIRS_LIMIT = 16
# Route one instance's flows for instance-symmetric steps (False: every flow; for tests).
USE_SYMMETRY = True


def _busy(batches: list[Batch], uses: list[tuple[int, int, int]], topo: Topology,
          t: Tables) -> np.ndarray:
    """Whole-topology link busy seconds per byte of V from (batch, step, count) uses."""
    mult = [np.zeros(len(b.lines)) for b in batches]
    for b, i, count in uses:
        mult[b][i] += count
    busy = np.zeros(topo.n_links)
    for batch, weights in zip(batches, mult, strict=True):
        if weights.any():
            add_busy(busy, batch, weights, topo, t)
    return busy


def profile_many(schedules: Sequence[list[Step]], rm: RankMap) -> list[CostProfile]:
    """Cost profiles of several schedules on one placement, routed together.

    Numpy work is per batch, not per step, so routing the distinct steps of every schedule
    in one pass (one batch of plain flows, one of representatives, one per large mesh) costs
    little more than routing one schedule. A step and its mirror (the all-gather half of an
    all-reduce) share flow arrays: routed once, only the HBM term differs.
    """
    topo = rm.topology
    t = tables(topo)
    first: dict[tuple, Step] = {}
    for steps in schedules:
        for step in steps:
            first.setdefault(step.flow_key, step)
    where: dict[tuple, tuple[int, int]] = {}
    full: Items = []
    sym: Items = []
    sym_insts: list[np.ndarray] = []
    batches: list[Batch] = []
    for key, step in first.items():
        if step.pair_labels is not None:
            labels, members = step.pair_labels, step.src
            if members.size > EXPLICIT_PAIRS_LIMIT and (labels == labels[0]).all():
                where[key] = (len(batches), 0)
                batches.append(mesh_by_counts(rm.chip[members], step.fraction, rm, t,
                                              USE_SYMMETRY))
            else:
                where[key] = (-1, len(full))
                full.append((*pairs(labels, members), step.fraction, step.hbm_extra))
        elif USE_SYMMETRY and step.rep is not None:
            where[key] = (-2, len(sym))
            sym.append((step.rep.src, step.rep.dst, step.fraction, step.hbm_extra))
            sym_insts.append(step.rep.instances)
        else:
            where[key] = (-1, len(full))
            full.append((step.src, step.destinations, step.fraction, step.hbm_extra))
    for code, items, insts in ((-1, full, None), (-2, sym, sym_insts)):
        if items:
            for key, (b, i) in where.items():
                if b == code:
                    where[key] = (len(batches), i)
            batches.append(route_flows(items, rm, t, insts))
    # a step and its mirror share lines and issue time; only the HBM term differs
    shared: dict[tuple, tuple[int, int, tuple, float]] = {}
    hbm = [(b.hbm_reduce_s_per_byte, b.hbm_copy_s_per_byte) for b in batches]
    for key, (b, i) in where.items():
        issue_s = topo.message_issue_s * first[key].issue_rounds
        lines = [(issue_s + lat, s) for lat, s in batches[b].lines[i]] or [(issue_s, 0.0)]
        shared[key] = (b, i, envelope(lines), issue_s)
    profiles = []
    for steps in schedules:
        out, uses = [], []
        for step in steps:
            b, i, lines, issue_s = shared[step.flow_key]
            out.append(StepProfile(step.count, lines, issue_s,
                                   hbm[b][0 if step.reduce else 1][i]))
            uses.append((b, i, step.count))
        profiles.append(CostProfile(tuple(out), topo.collective_overhead_s,
                                    functools.partial(_busy, batches, uses, topo, t)))
    return profiles


def profile(steps: list[Step], rm: RankMap) -> CostProfile:
    """Cost profile of a whole schedule (see `profile_many`)."""
    return profile_many([steps], rm)[0]
