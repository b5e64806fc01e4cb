"""Steps of a schedule, and a group's layout (rank orders and symmetry) shared by algorithms.

A `Step` names its flows by global rank (src -> dst), the bytes of each flow as a fraction
of the collective's `n_bytes`, whether the sender reduces (reads two operands), how many
times the same step repeats, how many messages (separate DMAs) its busiest sender issues and
over how many DMA engines it spreads them (`lanes`: 1 = one after another), and any HBM
accesses the sender's chip makes per flow beyond the flow's own read and write (`hbm_extra`:
KangaRing's read of the secondary's chunk, or its duplicated write to the secondary [CCI]).

Symmetry: when a group holds the same cores of the same chips in each of several instances
(e.g. the whole world of a cluster), ring, halving-doubling and hierarchical steps look the
same from every instance. Such steps carry a `Representative`: the flows sent by one
instance's ranks, and the instances the pattern repeats over. The engine routes only those
(exactly: see `engine`), which keeps first costings on 1,000-chip clusters cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tessera.net.placement import RankMap

Period = tuple[int, np.ndarray]  # (ranks per instance, instance ids)


@dataclass(frozen=True, eq=False)
class Representative:
    """The flows one instance's ranks send in an instance-symmetric step.

    Promise (the layout is checked by `RankMap.period`, the pattern by each builder; the engine
    relies on it): relabelling the instances in `instances` by a transitive group of
    permutations that keep each rank's chip-in-instance and core maps the step onto itself,
    so every instance sends and receives the same pattern.
    """

    src: np.ndarray = field(repr=False)
    dst: np.ndarray = field(repr=False)
    instances: np.ndarray = field(repr=False)  # instance ids the pattern repeats over


@dataclass(frozen=True, eq=False)
class Step:
    """Flows that run at the same time; repeated `count` times.

    With `pair_labels` set, the flows are every ordered pair of distinct `src` ranks that
    share a label (`dst` is unused): the mesh pattern, kept implicit because it has n^2 flows.
    `messages` is the most messages one rank issues in the step, as the builder knows it
    (None: counted from the flows; tests check that builders declare the counted value).
    """

    src: np.ndarray = field(repr=False)
    dst: np.ndarray | None = field(repr=False)  # None: `make_dst` builds it when needed
    fraction: float
    reduce: bool
    count: int = 1
    pair_labels: np.ndarray | None = field(default=None, repr=False)
    rep: Representative | None = field(default=None, repr=False)
    messages: int | None = None
    # Symmetric steps are costed from `rep`; their full destination list is built only if
    # asked for (it is the largest array of a 2,048-rank schedule).
    make_dst: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    lanes: int = 1  # DMA engines a sender issues its messages on at once
    hbm_extra: int = 0  # HBM accesses of the sender's chip per flow beyond read + write
    flow_key: tuple = field(init=False, repr=False, compare=False)

    def reversed_phase(self) -> Step:
        """The mirror step of the all-gather half: same flows, no reduction."""
        return Step(self.src, self.dst, self.fraction, False, self.count, self.pair_labels,
                    self.rep, self.messages, self.make_dst, self.lanes, self.hbm_extra)

    def __post_init__(self) -> None:
        # `flow_key`: equal for steps with the same flows and fraction (a phase and its
        # mirror), the engine's dedup key; set once here, being read on every costing
        object.__setattr__(self, "flow_key", (id(self.src), id(self.dst), id(self.make_dst),
                                              self.fraction, id(self.pair_labels),
                                              self.lanes, self.hbm_extra))

    @property
    def messages_per_sender(self) -> int:
        """Most messages one rank issues in this step (each peer transfer is its own DMA)."""
        return self.count_messages() if self.messages is None else self.messages

    @property
    def issue_rounds(self) -> int:
        """Message issues the busiest sender pays one after another: its messages spread
        over `lanes` DMA engines that start together."""
        return -(-self.messages_per_sender // self.lanes)

    @property
    def destinations(self) -> np.ndarray:
        """The receiver of each flow (`dst`, or built by `make_dst` when deferred)."""
        if self.dst is not None:
            return self.dst
        assert self.make_dst is not None, "a step needs dst or make_dst"
        return self.make_dst()

    def count_messages(self) -> int:
        """`messages_per_sender` counted from the flow arrays."""
        if self.pair_labels is not None:
            _, sizes = np.unique(self.pair_labels, return_counts=True)
            return int(sizes.max()) - 1
        return int(np.bincount(self.src).max()) if self.src.size else 0


class GroupLayout:
    """A group of ranks with its orders and symmetry, computed once, shared by algorithms.

    `world`: the group is every rank in rank order; its orders come with the placement.
    Plain attributes filled on first use (not `cached_property`, which locks on Python 3.11:
    this is on every first costing's path).
    """

    def __init__(self, rm: RankMap, members: np.ndarray, world: bool = False) -> None:
        self.rm = rm
        self.members = members
        self._ring: tuple[np.ndarray, Period | None] | None = None
        self._cube: tuple[np.ndarray, Period | None] | None = None
        if world:
            self._ring = (rm.world_ring_order, rm.world_ring_period)
            self._cube = (rm.world_cube_order, rm.world_cube_period)

    def _ring_layout(self) -> tuple[np.ndarray, Period | None]:
        if self._ring is None:
            order = self.rm.ring_order(self.members)
            self._ring = (order, self.rm.period(order))
        return self._ring

    def _cube_layout(self) -> tuple[np.ndarray, Period | None]:
        if self._cube is None:
            order = self.rm.cube_order(self.members)
            self._cube = (order, self.rm.period(order))
        return self._cube

    @property
    def ring_order(self) -> np.ndarray:
        """Members in Hamiltonian-cycle order (instance-major)."""
        return self._ring_layout()[0]

    @property
    def ring_period(self) -> Period | None:
        """Symmetry of `ring_order` across instances (see `RankMap.period`)."""
        return self._ring_layout()[1]

    @property
    def cube_order(self) -> np.ndarray:
        """Members in hypercube-label order (instance-major)."""
        return self._cube_layout()[0]

    @property
    def cube_period(self) -> Period | None:
        """Symmetry of `cube_order` across instances (see `RankMap.period`)."""
        return self._cube_layout()[1]


def rep_of(period: Period | None, src: np.ndarray, dst: np.ndarray) -> Representative | None:
    """The first instance's flows of a symmetric step whose flows are listed sender-major."""
    if period is None:
        return None
    per, insts = period
    return Representative(src[:per], dst[:per], insts)


def shift(a: np.ndarray, k: int, axis: int = 0) -> np.ndarray:
    """`np.roll(a, -k, axis)` (element i takes element i + k), without np.roll's overhead."""
    if axis == 0:
        return np.concatenate((a[k:], a[:k]))
    return np.concatenate((a[:, k:], a[:, :k]), axis=1)
