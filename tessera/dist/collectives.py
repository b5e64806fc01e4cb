"""Collective cost on a topology: one algorithm, or the fastest one (AUTO), for any group.

    >>> from tessera.dist import CollectiveModel
    >>> model = CollectiveModel.for_instance("trn1.32xlarge", ranks=32)
    >>> cost = model.cost("all_reduce", "64MiB")
    >>> cost.algorithm, cost.time_s, cost.busbw_bytes_per_s, cost.busiest_link

Schedules are built and routed once per (operation, algorithm, group, placement, topology)
and cached; the time at a given size is a few arithmetic operations on that profile and is
cached as well.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tessera.dist.engine import CostProfile, profile
from tessera.dist.errors import AlgorithmNotApplicableError, PlacementError
from tessera.dist.ops import Algorithm, CollectiveOp, bus_factor, parse_algorithm, parse_op
from tessera.dist.placement import Placement, PlacementOrder, RankMap, place
from tessera.dist.schedule import Step, build
from tessera.dist.sizes import parse_bytes
from tessera.dist.topology import Link, Topology, from_instance

CONCRETE_ALGORITHMS: tuple[Algorithm, ...] = tuple(a for a in Algorithm
                                                   if a is not Algorithm.AUTO)


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
    # times of the algorithms evaluated; AUTO skips those whose step count x per-step latency
    # already exceeds the best time (see `applicable_algorithms` for the full list)
    candidates: tuple[tuple[Algorithm, float], ...]

    def as_dict(self) -> dict[str, object]:
        """The JSON form printed by `tessera collective --json`."""
        return {"op": self.op.value, "bytes": self.n_bytes, "ranks": self.ranks,
                "time_s": self.time_s, "algorithm": self.algorithm.value,
                "algbw_bytes_per_s": self.algbw_bytes_per_s,
                "busbw_bytes_per_s": self.busbw_bytes_per_s}


@functools.lru_cache(maxsize=4096)
def _schedule(op: CollectiveOp, algorithm: Algorithm, rm: RankMap,
              group: tuple[int, ...] | None) -> list[Step] | str:
    """The algorithm's steps, or the reason it does not apply (cached)."""
    members = np.arange(rm.world_size) if group is None else rm.check_group(group)
    try:
        return build(op, algorithm, rm, members)
    except AlgorithmNotApplicableError as exc:
        return str(exc)


@functools.lru_cache(maxsize=4096)
def _profile(op: CollectiveOp, algorithm: Algorithm, rm: RankMap,
             group: tuple[int, ...] | None) -> CostProfile | str:
    """The schedule's cost profile, or the reason the algorithm does not apply (cached)."""
    steps = _schedule(op, algorithm, rm, group)
    return steps if isinstance(steps, str) else profile(steps, rm)


def _latency_floor_s(steps: list[Step], rm: RankMap) -> float:
    """No schedule beats its step count times the per-step latency (used to prune AUTO)."""
    return sum(s.count for s in steps) * rm.topology.step_latency_s


def _result(op: CollectiveOp, n_bytes: int, ranks: int, algorithm: Algorithm,
            prof: CostProfile, rm: RankMap,
            candidates: tuple[tuple[Algorithm, float], ...]) -> CollectiveCost:
    time_s = prof.time_s(n_bytes)
    algbw = n_bytes / time_s
    busiest = prof.busiest_link()
    link, busy_s = (None, 0.0) if busiest is None else (rm.topology.link(busiest[0]),
                                                        busiest[1] * n_bytes)
    return CollectiveCost(op=op, n_bytes=n_bytes, ranks=ranks, algorithm=algorithm,
                          time_s=time_s, algbw_bytes_per_s=algbw,
                          busbw_bytes_per_s=algbw * bus_factor(op, ranks), steps=prof.n_steps,
                          busiest_link=link, busiest_link_busy_s=busy_s, candidates=candidates)


@functools.lru_cache(maxsize=65536)
def _cost(op: CollectiveOp, n_bytes: int, algorithm: Algorithm, rm: RankMap,
          group: tuple[int, ...] | None) -> CollectiveCost:
    ranks = rm.world_size if group is None else len(group)
    if ranks < 2:
        raise PlacementError(f"{op.value} needs a group of at least 2 ranks, not {ranks}")
    if algorithm is not Algorithm.AUTO:
        prof = _profile(op, algorithm, rm, group)
        if isinstance(prof, str):
            raise AlgorithmNotApplicableError(prof)
        t = prof.time_s(n_bytes)
        return _result(op, n_bytes, ranks, algorithm, prof, rm, ((algorithm, t),))
    # Route the algorithms with the lowest latency floor first; skip any whose floor alone
    # exceeds the best time found (a 2,048-rank ring has 4,094 steps: never worth routing).
    floors, reasons = [], []
    for alg in CONCRETE_ALGORITHMS:
        steps = _schedule(op, alg, rm, group)
        if isinstance(steps, str):
            reasons.append(steps)
        else:
            floors.append((_latency_floor_s(steps, rm), alg))
    options: list[tuple[float, Algorithm, CostProfile]] = []
    for floor, alg in sorted(floors, key=lambda f: f[0]):
        if options and floor >= min(o[0] for o in options):
            continue
        prof = _profile(op, alg, rm, group)
        assert not isinstance(prof, str)
        options.append((prof.time_s(n_bytes), alg, prof))
    if not options:
        raise AlgorithmNotApplicableError(f"no algorithm can run {op.value} on this group: "
                                          + "; ".join(dict.fromkeys(reasons)))
    best_t, best_alg, best_prof = min(options, key=lambda o: o[0])
    candidates = tuple((alg, t) for t, alg, _ in options)
    return _result(op, n_bytes, ranks, best_alg, best_prof, rm, candidates)


def cost_collective(op: CollectiveOp | str, n_bytes: int | str, rank_map: RankMap,
                    group: Sequence[int] | None = None,
                    algorithm: Algorithm | str = Algorithm.AUTO) -> CollectiveCost:
    """Cost of `op` on `n_bytes` for `group` (default: every rank) of a placed topology.

    AUTO evaluates every applicable algorithm and returns the fastest, with all candidates'
    times in `candidates`. Raises `UnknownCollectiveError`, `SizeError`, `PlacementError` or
    `AlgorithmNotApplicableError` with the reason.
    """
    return _cost(parse_op(op), parse_bytes(n_bytes), parse_algorithm(algorithm), rank_map,
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
             group: Sequence[int] | None = None,
             algorithm: Algorithm | str = Algorithm.AUTO) -> CollectiveCost:
        """See `cost_collective`."""
        return cost_collective(op, n_bytes, self.rank_map, group, algorithm)

    def sweep(self, op: CollectiveOp | str, sizes: Iterable[int | str],
              group: Sequence[int] | None = None,
              algorithm: Algorithm | str = Algorithm.AUTO) -> list[CollectiveCost]:
        """Costs at each size (the algorithm may change with size under AUTO)."""
        return [self.cost(op, s, group, algorithm) for s in sizes]


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
    _schedule.cache_clear()
    _profile.cache_clear()
    _cost.cache_clear()
