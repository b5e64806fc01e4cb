"""Rank placement: rank -> (instance, chip, core), and the orders algorithms walk ranks in.

NeuronX Distributed numbers ranks so that a tensor-parallel group is contiguous inside an
instance: consecutive ranks fill the logical cores of one chip, then the next chip, then the
next instance (`PlacementOrder.CONTIGUOUS`). `ROUND_ROBIN` deals ranks out one per chip
instead, which puts consecutive ranks on different chips.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from tessera.net.errors import PlacementError
from tessera.net.topology import Topology


class PlacementOrder(StrEnum):
    """How consecutive ranks are laid onto chips."""

    CONTIGUOUS = "contiguous"  # fill a chip's cores, then the next chip (NXD)
    ROUND_ROBIN = "round_robin"  # one rank per chip in turn, then wrap to the next core


@dataclass(frozen=True)
class Placement:
    """How `world_size` ranks sit on a topology.

    `lnc` is the logical-NeuronCore size (Trn2: 1 or 2; default the chip's default) and
    `ranks_per_chip` how many logical cores of each chip take a rank (default: all of them;
    1 puts one rank on each chip).
    """

    world_size: int
    lnc: int | None = None
    ranks_per_chip: int | None = None
    order: PlacementOrder = PlacementOrder.CONTIGUOUS


@dataclass(frozen=True)
class RankLocation:
    """Where one rank runs: instance, chip inside the instance, first physical core."""

    instance: int
    chip: int
    core: int


@dataclass(frozen=True, eq=False)
class RankMap:
    """A placement resolved on a topology: per-rank arrays of global chip and core."""

    topology: Topology
    placement: Placement
    lnc: int
    ranks_per_chip: int
    chip: np.ndarray = field(repr=False)  # global chip id of each rank
    core: np.ndarray = field(repr=False)  # first physical core of each rank's logical core
    # Sort keys of each rank (computed once here, so ordering a group is one argsort):
    # (instance, position on the Hamiltonian cycle, core) and (instance, cube label, core).
    ring_key: np.ndarray = field(repr=False, default=None)
    cube_key: np.ndarray = field(repr=False, default=None)
    # The whole world in both orders, with their symmetry across instances (see `period`):
    # placement facts every whole-world schedule starts from, resolved once here.
    world_ring_order: np.ndarray = field(repr=False, default=None)
    world_cube_order: np.ndarray = field(repr=False, default=None)
    world_ring_period: tuple[int, np.ndarray] | None = field(repr=False, default=None)
    world_cube_period: tuple[int, np.ndarray] | None = field(repr=False, default=None)
    instance: np.ndarray = field(repr=False, default=None)  # instance of each rank
    slot: np.ndarray = field(repr=False, default=None)  # chip-in-instance x cores + core

    @property
    def world_size(self) -> int:
        """Number of ranks placed."""
        return self.placement.world_size

    @property
    def key(self) -> str:
        """Cache key: topology and placement."""
        p = self.placement
        return f"{self.topology.key}|{p.world_size}:{self.lnc}:{self.ranks_per_chip}:{p.order}"

    def location(self, rank: int) -> RankLocation:
        """(instance, chip, core) of `rank`."""
        if not 0 <= rank < self.world_size:
            raise PlacementError(f"rank {rank} does not exist ({self.world_size} ranks)")
        inst, chip = divmod(int(self.chip[rank]), self.topology.chips_per_instance)
        return RankLocation(inst, chip, int(self.core[rank]))

    def check_group(self, group: tuple[int, ...]) -> np.ndarray:
        """The group as an int array; raises for unknown or repeated ranks."""
        arr = np.asarray(group, dtype=np.int64)
        if arr.ndim != 1 or arr.size == 0:
            raise PlacementError("a group needs at least one rank")
        bad = arr[(arr < 0) | (arr >= self.world_size)]
        if bad.size:
            raise PlacementError(f"group names rank(s) {bad.tolist()[:5]} but only ranks "
                                 f"0..{self.world_size - 1} exist")
        if np.bincount(arr).max() > 1:
            raise PlacementError("a group lists a rank twice")
        return arr

    def ring_order(self, ranks: np.ndarray) -> np.ndarray:
        """`ranks` in Hamiltonian-cycle order: instance, then snake over chips, then core."""
        return ranks[np.argsort(self.ring_key[ranks])]

    def cube_order(self, ranks: np.ndarray) -> np.ndarray:
        """`ranks` ordered so that XOR partners are near: instance, hypercube label, core."""
        return ranks[np.argsort(self.cube_key[ranks])]

    def period(self, order: np.ndarray) -> tuple[int, np.ndarray] | None:
        """(ranks per instance, instances) if `order` (instance-major) spans >= 2 instances
        that each hold the same chips-in-instance and cores in the same order; else None.

        Such a group looks the same from each of its instances: schedules built on it are
        instance-symmetric and the engine routes one instance's flows (`steps.Representative`).
        """
        return _period(self.instance, self.slot, order)


def _period(instance: np.ndarray, slot: np.ndarray, order: np.ndarray
            ) -> tuple[int, np.ndarray] | None:
    """See `RankMap.period`; `order` must be instance-major (sorted by instance)."""
    inst = instance[order]
    per = int((inst != inst[0]).argmax())  # ranks before the first change of instance
    if per == 0 or order.size % per:
        return None
    blocks = inst.reshape(-1, per)
    first = blocks[:, 0]
    slots = slot[order].reshape(-1, per)
    # sorted by instance: a block lies in one instance iff its ends do
    if (first != blocks[:, -1]).any() or (first[1:] == first[:-1]).any() or (
            slots != slots[0]).any():
        return None
    return per, first


def _sort_key(topology: Topology, chip: np.ndarray, core: np.ndarray, position: np.ndarray
              ) -> np.ndarray:
    """One integer per rank ordering by (instance, position of its chip, core); unique."""
    inst, local = np.divmod(chip, topology.chips_per_instance)
    return ((inst * topology.chips_per_instance + position[local])
            * topology.physical_cores_per_chip + core)


@functools.lru_cache(maxsize=256)
def place(topology: Topology, placement: Placement) -> RankMap:
    """Resolve `placement` on `topology`; raises `PlacementError` if the ranks do not fit."""
    lnc = topology.lnc_default if placement.lnc is None else placement.lnc
    if lnc not in topology.lnc_allowed:
        raise PlacementError(f"{topology.name}: logical core size {lnc} not allowed; "
                             f"allowed: {list(topology.lnc_allowed)}")
    logical = topology.physical_cores_per_chip // lnc
    per_chip = logical if placement.ranks_per_chip is None else placement.ranks_per_chip
    if not 1 <= per_chip <= logical:
        raise PlacementError(f"{topology.name}: ranks_per_chip must be 1..{logical} "
                             f"(logical cores per chip at LNC={lnc}), not {per_chip}")
    n = placement.world_size
    capacity = topology.n_chips * per_chip
    if n < 1:
        raise PlacementError(f"world size must be >= 1, not {n}")
    if n > capacity:
        raise PlacementError(
            f"{n} ranks exceed {topology.name}: {topology.n_chips} chips x {per_chip} ranks "
            f"per chip = {capacity}; use more instances or fewer ranks")
    ranks = np.arange(n, dtype=np.int64)
    if placement.order is PlacementOrder.CONTIGUOUS:
        chip, slot = np.divmod(ranks, per_chip)
    else:
        slot, chip = np.divmod(ranks, topology.n_chips)
    core = slot * lnc
    ring_key = _sort_key(topology, chip, core, topology.ring_position)
    cube_key = _sort_key(topology, chip, core, topology.cube_label)
    ring, cube = np.argsort(ring_key), np.argsort(cube_key)
    instance, local = np.divmod(chip, topology.chips_per_instance)
    slot_in = local * topology.physical_cores_per_chip + core
    return RankMap(topology=topology, placement=placement, lnc=lnc, ranks_per_chip=per_chip,
                   chip=chip, core=core, ring_key=ring_key, cube_key=cube_key,
                   world_ring_order=ring, world_cube_order=cube,
                   world_ring_period=_period(instance, slot_in, ring),
                   world_cube_period=_period(instance, slot_in, cube),
                   instance=instance, slot=slot_in)
