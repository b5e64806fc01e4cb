"""Collective cost on a topology: one algorithm, the Neuron runtime's choice (RUNTIME, the
default on Neuron topologies), or the fastest one (AUTO, the default elsewhere).

    >>> from tessera.net import CollectiveModel
    >>> model = CollectiveModel.for_instance("trn1.32xlarge", ranks=32)
    >>> cost = model.cost("all_reduce", "64MiB")
    >>> cost.algorithm, cost.time_s, cost.busbw_bytes_per_s, cost.busiest_link
    >>> model.cost("all_reduce", "16KiB", in_graph=True).time_s  # inside a compiled graph

Standalone costs (the default) include the per-operation overhead nccom-test measures with
each collective; `in_graph=True` swaps it for what a collective inside a compiled graph pays
(`CollectiveCost.overhead_s` is that part of `time_s`; docs/net.md, "Standalone and in-graph
collectives").

Schedules are built and routed once per (operation, algorithm, group, placement, topology)
and cached; the time at a given size is a few arithmetic operations on that profile and is
cached as well.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tessera.net.engine import profile, profile_many
from tessera.net.errors import AlgorithmNotApplicableError, PlacementError
from tessera.net.hierarchy import Hierarchy
from tessera.net.ops import (
    CHOOSERS,
    Algorithm,
    CollectiveOp,
    bus_factor,
    parse_algorithm,
    parse_op,
)
from tessera.net.placement import Placement, PlacementOrder, RankMap, place
from tessera.net.policy import default_algorithm, runtime_choice
from tessera.net.profiles import CostProfile
from tessera.net.schedule import GroupLayout, Step, build, message_floor
from tessera.net.sizes import parse_bytes
from tessera.net.topology import Link, Topology, from_instance

CONCRETE_ALGORITHMS: tuple[Algorithm, ...] = tuple(a for a in Algorithm if a not in CHOOSERS)
Key = Algorithm | Hierarchy  # what a schedule is built from
# AUTO routes together, up front, the algorithms whose latency floor is within this factor of
# the lowest one (a batching choice for speed: it changes no result).
BATCH_FLOOR_RATIO = 10.0


@dataclass(frozen=True)
class CollectiveCost:
    """Predicted cost of one collective (bandwidths as nccom-test defines them [NCCOM])."""

    op: CollectiveOp
    n_bytes: int
    ranks: int
    algorithm: Algorithm
    time_s: float
    algbw_bytes_per_s: float
    busbw_bytes_per_s: float
    steps: int
    busiest_link: Link | None
    busiest_link_busy_s: float  # time the busiest link spends moving bytes
    # times of the algorithms evaluated; AUTO skips those whose latency floor (overhead plus
    # every message issue) already exceeds the best time (`applicable_algorithms` lists all).
    # The runtime policy's hierarchies appear as `hierarchy.Hierarchy` keys.
    candidates: tuple[tuple[Algorithm | Hierarchy, float], ...]
    # The fixed once-per-collective part of `time_s`: standalone, the per-operation overhead
    # nccom-test includes; in a compiled graph (`in_graph`), what such a collective pays.
    overhead_s: float
    in_graph: bool
    chosen_by: str  # "auto", "requested", or the runtime policy's rule and its source
    schedule: str  # the schedule costed: `algorithm.value`, or a hierarchy's stages

    @property
    def steps_s(self) -> float:
        """`time_s` without the fixed overhead: message issues, hops, bytes, HBM."""
        return self.time_s - self.overhead_s

    def as_dict(self) -> dict[str, object]:
        """The JSON form printed by `tessera collective --json`."""
        return {"op": self.op.value, "bytes": self.n_bytes, "ranks": self.ranks,
                "time_s": self.time_s, "algorithm": self.algorithm.value,
                "algbw_bytes_per_s": self.algbw_bytes_per_s,
                "busbw_bytes_per_s": self.busbw_bytes_per_s}


@functools.lru_cache(maxsize=1024)
def _layout(rm: RankMap, group: tuple[int, ...] | None) -> GroupLayout:
    """The group's rank orders and symmetry, shared by every algorithm's builder (cached)."""
    if group is None:
        return GroupLayout(rm, np.arange(rm.world_size), world=True)
    return GroupLayout(rm, rm.check_group(group))


@functools.lru_cache(maxsize=4096)
def _schedule(op: CollectiveOp, algorithm: Key, rm: RankMap,
              group: tuple[int, ...] | None) -> list[Step] | str:
    """The algorithm's steps, or the reason it does not apply (cached)."""
    lay = _layout(rm, group)
    try:
        return build(op, algorithm, rm, lay.members, lay)
    except AlgorithmNotApplicableError as exc:
        return str(exc)


_ProfileKey = tuple[CollectiveOp, Key, RankMap, tuple[int, ...] | None]
# Profiles routed together by AUTO, waiting for `_profile` to take them into its cache, and
# the keys `_profile` has computed (so AUTO does not route a cached schedule again).
_routed_together: dict[_ProfileKey, CostProfile] = {}
_profiled: set[_ProfileKey] = set()


@functools.lru_cache(maxsize=4096)
def _profile(op: CollectiveOp, algorithm: Key, rm: RankMap,
             group: tuple[int, ...] | None) -> CostProfile | str:
    """The schedule's cost profile, or the reason the algorithm does not apply (cached)."""
    if len(_profiled) > 8192:  # a hint only: forgetting costs a re-route, never a wrong cost
        _profiled.clear()
    _profiled.add((op, algorithm, rm, group))
    ready = _routed_together.pop((op, algorithm, rm, group), None)
    if ready is not None:
        return ready
    steps = _schedule(op, algorithm, rm, group)
    return steps if isinstance(steps, str) else profile(steps, rm)


def _route_together(op: CollectiveOp, algorithms: list[Key], rm: RankMap,
                    group: tuple[int, ...] | None) -> None:
    """Route several algorithms' schedules in one engine pass, for `_profile` to pick up."""
    algorithms = [a for a in algorithms if (op, a, rm, group) not in _profiled]
    if len(algorithms) < 2:
        return
    schedules = [_schedule(op, alg, rm, group) for alg in algorithms]
    for alg, prof in zip(algorithms, profile_many(schedules, rm), strict=True):  # type: ignore
        _routed_together[(op, alg, rm, group)] = prof


def _result(op: CollectiveOp, n_bytes: int, ranks: int, key: Key, prof: CostProfile,
            rm: RankMap, candidates: tuple[tuple[Key, float], ...],
            chosen_by: str) -> CollectiveCost:
    time_s = dict(candidates)[key]
    algorithm = key if isinstance(key, Algorithm) else Algorithm.HIERARCHICAL
    algbw = n_bytes / time_s
    busiest = prof.busiest_link()
    link, busy_s = (None, 0.0) if busiest is None else (rm.topology.link(busiest[0]),
                                                        busiest[1] * n_bytes)
    return CollectiveCost(op=op, n_bytes=n_bytes, ranks=ranks, algorithm=algorithm,
                          time_s=time_s, algbw_bytes_per_s=algbw,
                          busbw_bytes_per_s=algbw * bus_factor(op, ranks), steps=prof.n_steps,
                          busiest_link=link, busiest_link_busy_s=busy_s, candidates=candidates,
                          overhead_s=prof.overhead_s, in_graph=False, chosen_by=chosen_by,
                          schedule=key.value)


def _timed(op: CollectiveOp, alg: Key, rm: RankMap, group: tuple[int, ...] | None,
           n_bytes: int, times: dict[Key, tuple[float, CostProfile]]) -> float:
    """`alg`'s time at `n_bytes` (its profile must apply), remembered in `times`."""
    if alg not in times:
        prof = _profile(op, alg, rm, group)
        assert not isinstance(prof, str)
        times[alg] = (prof.time_s(n_bytes), prof)
    return times[alg][0]


@functools.lru_cache(maxsize=65536)
def _cost(op: CollectiveOp, n_bytes: int, algorithm: Algorithm, rm: RankMap,
          group: tuple[int, ...] | None) -> CollectiveCost:
    ranks = rm.world_size if group is None else len(group)
    if ranks < 2:
        raise PlacementError(f"{op.value} needs a group of at least 2 ranks, not {ranks}")
    if algorithm is Algorithm.AUTO:
        return _fastest(op, n_bytes, ranks, rm, group, CONCRETE_ALGORITHMS, "auto")
    if algorithm is not Algorithm.RUNTIME:
        prof = _profile(op, algorithm, rm, group)
        if isinstance(prof, str):
            raise AlgorithmNotApplicableError(prof)
        t = prof.time_s(n_bytes)
        return _result(op, n_bytes, ranks, algorithm, prof, rm, ((algorithm, t),),
                       "requested")
    choice = runtime_choice(op, n_bytes, _layout(rm, group))
    reason = f"runtime: {choice.reason}"
    reasons = []
    if choice.fastest:
        try:
            return _fastest(op, n_bytes, ranks, rm, group, choice.algorithms, reason)
        except AlgorithmNotApplicableError as exc:
            if not choice.fallback:
                raise
            reasons.append(str(exc))
    first = choice.algorithms if not choice.fastest else ()
    for i, alg in enumerate(first + choice.fallback):  # the preference, then its fallback
        prof = _profile(op, alg, rm, group)
        if isinstance(prof, str):
            reasons.append(prof)
            continue
        t = prof.time_s(n_bytes)
        why = reason if i == 0 and first else f"{reason}; fallback {alg.value}: " + "; ".join(
            reasons)
        return _result(op, n_bytes, ranks, alg, prof, rm, ((alg, t),), why)
    raise AlgorithmNotApplicableError(f"the runtime's choice ({choice.reason}) cannot run "
                                      f"on this group: " + "; ".join(reasons))


def _fastest(op: CollectiveOp, n_bytes: int, ranks: int, rm: RankMap,
             group: tuple[int, ...] | None, among: tuple[Key, ...],
             chosen_by: str) -> CollectiveCost:
    """The fastest applicable algorithm of `among`, with the candidates evaluated.

    Tries the algorithms in order of a latency floor known before building them (overhead +
    the issues a rank must pay), which never prunes a possible winner. Routes the first
    applicable ones together (at least two, and every one whose floor is close to the
    lowest: routing is per batch, so they come almost free) for a time to beat; then, in one
    more pass, every other whose floor is below it (a 2,048-rank ring's, 4,094 message
    issues, rarely is).
    """
    topo = rm.topology
    pending = sorted((topo.collective_overhead_s
                      + message_floor(op, alg, ranks) * topo.message_issue_s, i, alg)
                     for i, alg in enumerate(among))
    reasons: list[str] = []
    bound_t = math.inf
    chosen: list[Key] = []
    times: dict[Key, tuple[float, CostProfile]] = {}
    first_batch = 0
    for floor_s, _, alg in pending:
        if floor_s >= bound_t:
            break  # sorted: no later algorithm can win either
        if not first_batch and len(chosen) >= 2 and floor_s > BATCH_FLOOR_RATIO * pending[0][0]:
            first_batch = len(chosen)
            _route_together(op, chosen, rm, group)
            bound_t = min(_timed(op, a, rm, group, n_bytes, times) for a in chosen)
            if floor_s >= bound_t:
                break
        steps = _schedule(op, alg, rm, group)
        if isinstance(steps, str):
            reasons.append(steps)
            continue
        chosen.append(alg)
    _route_together(op, chosen[first_batch:], rm, group)
    options = [(_timed(op, alg, rm, group, n_bytes, times), alg, times[alg][1])
               for alg in chosen]
    if not options:
        raise AlgorithmNotApplicableError(f"no algorithm can run {op.value} on this group: "
                                          + "; ".join(dict.fromkeys(reasons)))
    _, best_alg, best_prof = min(options, key=lambda o: o[0])
    candidates = tuple((alg, t) for t, alg, _ in options)
    return _result(op, n_bytes, ranks, best_alg, best_prof, rm, candidates, chosen_by)


@functools.lru_cache(maxsize=65536)
def _cost_in_graph(op: CollectiveOp, n_bytes: int, algorithm: Algorithm, rm: RankMap,
                   group: tuple[int, ...] | None) -> CollectiveCost:
    """The standalone cost with its per-operation overhead swapped for the in-graph one.

    The overhead is the same for every algorithm of a topology, so the choice (AUTO's
    fastest, or the runtime's) does not change; only the times shift.
    """
    cost = _cost(op, n_bytes, algorithm, rm, group)
    topo = rm.topology
    shift = topo.in_graph_overhead_s - cost.overhead_s
    time_s = cost.time_s + shift
    algbw = n_bytes / time_s
    return dataclasses.replace(
        cost, time_s=time_s, algbw_bytes_per_s=algbw,
        busbw_bytes_per_s=algbw * bus_factor(op, cost.ranks),
        candidates=tuple((a, t + shift) for a, t in cost.candidates),
        overhead_s=topo.in_graph_overhead_s, in_graph=True)


def cost_collective(op: CollectiveOp | str, n_bytes: int | str, rank_map: RankMap,
                    group: Sequence[int] | None = None,
                    algorithm: Algorithm | str | None = None,
                    in_graph: bool = False) -> CollectiveCost:
    """Cost of `op` on `n_bytes` for `group` (default: every rank) of a placed topology.

    `algorithm` None is the topology's default: RUNTIME on Neuron topologies (what the Neuron
    runtime's documented policy runs, `policy`), AUTO elsewhere. AUTO returns the fastest
    applicable algorithm, with the times of the candidates it evaluated in `candidates` (it
    skips only those whose latency floor cannot win). `in_graph` prices the collective as
    part of a compiled graph, without the standalone per-operation overhead. Raises
    `UnknownCollectiveError`, `SizeError`, `PlacementError` or `AlgorithmNotApplicableError`
    with the reason.
    """
    alg = (default_algorithm(rank_map.topology.runtime) if algorithm is None
           else parse_algorithm(algorithm))
    fn = _cost_in_graph if in_graph else _cost
    return fn(parse_op(op), parse_bytes(n_bytes), alg, rank_map,
              _group_key(group, rank_map.world_size))


def _group_key(group: Sequence[int] | None, world_size: int) -> tuple[int, ...] | None:
    """Hashable cache key of a group; None stands for the whole world."""
    if group is None:
        return None
    key = group if isinstance(group, tuple) else tuple(group)
    if len(key) == world_size and key == tuple(range(world_size)):
        return None  # the whole world: share the cache entry
    return key


def applicable_algorithms(op: CollectiveOp | str, rank_map: RankMap,
                          group: Sequence[int] | None = None) -> list[Algorithm]:
    """Algorithms that can run `op` on `group`."""
    key = _group_key(None if group is None else tuple(group), rank_map.world_size)
    return [a for a in CONCRETE_ALGORITHMS
            if not isinstance(_schedule(parse_op(op), a, rank_map, key), str)]


class CollectiveModel:
    """A topology with ranks placed on it; costs collectives for any group of its ranks."""

    def __init__(self, topology: Topology, placement: Placement | int) -> None:
        if isinstance(placement, int):
            placement = Placement(placement)
        self.topology = topology
        self.rank_map = place(topology, placement)

    @classmethod
    def for_instance(cls, instance: str, ranks: int, instances: int = 1,
                     lnc: int | None = None, ranks_per_chip: int | None = None,
                     order: PlacementOrder | str = PlacementOrder.CONTIGUOUS
                     ) -> CollectiveModel:
        """`ranks` ranks on `instances` copies of the instance preset `instance`."""
        topo = from_instance(instance, instances)
        return cls(topo, Placement(ranks, lnc, ranks_per_chip, PlacementOrder(order)))

    def cost(self, op: CollectiveOp | str, n_bytes: int | str,
             group: Sequence[int] | None = None, algorithm: Algorithm | str | None = None,
             in_graph: bool = False) -> CollectiveCost:
        """See `cost_collective`."""
        return cost_collective(op, n_bytes, self.rank_map, group, algorithm, in_graph)

    def sweep(self, op: CollectiveOp | str, sizes: Iterable[int | str],
              group: Sequence[int] | None = None, algorithm: Algorithm | str | None = None,
              in_graph: bool = False) -> list[CollectiveCost]:
        """Costs at each size (the algorithm may change with size under AUTO or RUNTIME)."""
        return [self.cost(op, s, group, algorithm, in_graph) for s in sizes]

    @property
    def default_algorithm(self) -> Algorithm:
        """What `cost` uses when no algorithm is given (RUNTIME on Neuron, else AUTO)."""
        return default_algorithm(self.topology.runtime)


def size_sweep(min_bytes: int = 1024, max_bytes: int = 2**30, factor: int = 4) -> list[int]:
    """Sizes min, min x factor, ... up to max (nccom-test's --stepfactor)."""
    if min_bytes < 1 or max_bytes < min_bytes or factor < 2:
        raise ValueError("need 1 <= min_bytes <= max_bytes and factor >= 2")
    sizes = [min_bytes]
    while sizes[-1] * factor <= max_bytes:
        sizes.append(sizes[-1] * factor)
    return sizes


def clear_caches() -> None:
    """Drop cached profiles and costs (after changing calibration files in a session)."""
    _layout.cache_clear()
    _schedule.cache_clear()
    _routed_together.clear()
    _profiled.clear()
    _profile.cache_clear()
    _cost.cache_clear()
    _cost_in_graph.cache_clear()
