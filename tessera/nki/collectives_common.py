"""The shared part of `nki.collectives`: `ReplicaGroup`, the argument checks every
collective makes, and `issue`, which records a collective's instruction and meets the other
members of the rank-list (`tessera.nki.collectives_run`). The rules are those of the
`nki.collectives` pages; see tessera/nki/collectives.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from tessera.nki.attrs import CollectiveAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.collectives_run import RankBinding, binding
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.isa._common import check_partitions, record
from tessera.nki.ops import to_op
from tessera.nki.runtime import CoreContext, current
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

_REDUCE_OPS = ("add", "minimum", "maximum")
# implicit permutes: channels of a rank-list holding every rank of the node (here: of the
# run's world), and of any other rank-list
MAX_CHANNELS_ALL, MAX_CHANNELS = 4, 2


@dataclass(frozen=True, init=False, eq=True)
class ReplicaGroup:
    """The ranks a collective runs on: disjoint rank-lists, each running the collective on
    its own (`ReplicaGroup([[0, 1, 2, 3], [4, 5, 6, 7]])`). A rank's position in its
    rank-list orders gathered chunks and the ring of the implicit permutes."""

    rank_lists: tuple[tuple[int, ...], ...]

    def __init__(self, rank_lists: object) -> None:
        try:
            lists = tuple(tuple(r for r in lst) for lst in rank_lists)  # type: ignore[union-attr]
        except TypeError:
            raise KernelUsageError(f"ReplicaGroup takes a list of rank-lists, e.g. "
                                   f"[[0, 1]], got {rank_lists!r}") from None
        seen: set[int] = set()
        for lst in lists:
            if not lst:
                raise KernelUsageError(f"ReplicaGroup({_show(lists)}): a rank-list is empty")
            for r in lst:
                if isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 0:
                    raise KernelUsageError(f"ReplicaGroup({_show(lists)}): rank {r!r} is not "
                                           "a non-negative int")
                if int(r) in seen:
                    raise KernelUsageError(f"ReplicaGroup({_show(lists)}): rank {r} is in two "
                                           "rank-lists; rank-lists must not overlap")
                seen.add(int(r))
        if not lists:
            raise KernelUsageError("ReplicaGroup([]): no rank-lists")
        object.__setattr__(self, "rank_lists", tuple(tuple(int(r) for r in lst)
                                                     for lst in lists))

    @staticmethod
    def from_partition_op(world_size: int, op: rg_partition_op, operand: int) -> ReplicaGroup:
        """Partition ranks 0..world_size-1: ranks with equal `op(rank, operand)` form one
        rank-list, lists ordered by their lowest rank (the `ReplicaGroup` page, v2.33+:
        `div` 4 of 8 ranks gives [[0..3], [4..7]], `mod` 4 gives [[0, 4], [1, 5], ...],
        `bitwise_and` 0 one list of every rank)."""
        where = "ReplicaGroup.from_partition_op"
        if isinstance(world_size, bool) or not isinstance(world_size, int | np.integer) or (
                world_size < 1):
            raise KernelUsageError(f"{where}: world_size={world_size!r}; it is a positive int")
        if not isinstance(op, rg_partition_op):
            names = ", ".join(f"rg_partition_op.{m.name}" for m in rg_partition_op)
            raise KernelUsageError(f"{where}: op={op!r}; it is one of {names}")
        if isinstance(operand, bool) or not isinstance(operand, int | np.integer) or (
                operand < (0 if op is rg_partition_op.bitwise_and else 1)):
            least = "a non-negative" if op is rg_partition_op.bitwise_and else "a positive"
            raise KernelUsageError(f"{where}: operand={operand!r}; {op.name} takes {least} "
                                   "int")
        lists: dict[int, list[int]] = {}  # insertion order: by each list's lowest rank
        for rank in range(int(world_size)):
            lists.setdefault(op.apply(rank, int(operand)), []).append(rank)
        return ReplicaGroup(list(lists.values()))

    def rank_list_of(self, rank: int) -> tuple[int, ...] | None:
        """The rank-list holding `rank` (None if no rank-list does)."""
        return next((lst for lst in self.rank_lists if rank in lst), None)

    def __repr__(self) -> str:
        return f"ReplicaGroup({_show(self.rank_lists)})"


class rg_partition_op(Enum):  # noqa: N801 (the vendor's name)
    """How `ReplicaGroup.from_partition_op` maps a rank to its rank-list id:
    `op(rank, operand)`. The members are the three the `ReplicaGroup` page shows."""

    bitwise_and = "bitwise_and"  # rank & operand (0: every rank in one list)
    div = "div"  # rank // operand: contiguous blocks of `operand` ranks
    mod = "mod"  # rank % operand: strided lists, one per residue

    def apply(self, rank: int, operand: int) -> int:
        """The rank-list id of `rank`."""
        if self is rg_partition_op.bitwise_and:
            return rank & operand
        if self is rg_partition_op.div:
            return rank // operand
        return rank % operand


def _show(lists: tuple[tuple[int, ...], ...]) -> str:
    return str([list(lst) for lst in lists])


# --------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Call:
    """One collective call being issued: its context, rank and rank-list."""

    ctx: CoreContext
    bind: RankBinding
    op: str
    members: tuple[int, ...]

    @property
    def position(self) -> int:
        return self.members.index(self.bind.rank)

    @property
    def peers_exist(self) -> bool:
        """False in a single-rank symbolic trace of a wider rank-list (nothing to meet)."""
        return all(r < self.bind.world_size for r in self.members)


def start(op: str) -> tuple[CoreContext, RankBinding]:
    """The running kernel and its rank; collectives need an LNC=1 launch."""
    ctx = current()
    if ctx.run.num_cores > 1:
        raise KernelUsageError(f"{op}: collectives in an LNC=2 launch are not modelled; run "
                               "each rank with LNC=1 (nki.multi_rank_simulate)")
    return ctx, binding()


def rank_list(ctx: CoreContext, bind: RankBinding, group: object, op: str
              ) -> tuple[int, ...]:
    """The rank-list of `group` that holds the calling rank."""
    if not isinstance(group, ReplicaGroup):
        raise KernelUsageError(f"{op}: replica_group must be a nki.collectives.ReplicaGroup, "
                               f"got {type(group).__name__}")
    members = group.rank_list_of(bind.rank)
    if members is None:
        raise KernelUsageError(f"{op}: rank {bind.rank} is in no rank-list of {group!r}")
    check_world(ctx, bind, members, op)
    return members


def check_world(ctx: CoreContext, bind: RankBinding, ranks: tuple[int, ...], op: str) -> None:
    """Every rank named exists in this run (a one-rank symbolic trace excepted)."""
    outside = [r for r in ranks if r >= bind.world_size]
    if not outside:
        return
    if bind.scheduler is None and ctx.run.symbolic:
        return  # a one-rank symbolic trace records the stream; there are no values to move
    if bind.scheduler is None:
        raise KernelUsageError(
            f"{op} over ranks {list(ranks)}: this launch runs rank 0 only; run every rank "
            f"with nki.multi_rank_simulate(kernel, world_size={max(ranks) + 1}, "
            "per_rank_inputs=...)")
    raise KernelUsageError(f"{op}: ranks {outside} are outside this run's world of "
                           f"{bind.world_size} ranks (0..{bind.world_size - 1})")


def tensors(value: object, what: str, op: str) -> list[NkiTensor]:
    """`value` as a non-empty list of NKI tensors."""
    if not isinstance(value, list | tuple) or not value:
        raise KernelUsageError(f"{op}: {what} is a non-empty list of NKI tensors, got "
                               f"{value!r}")
    for t in value:
        if not isinstance(t, NkiTensor):
            raise KernelUsageError(f"{op}: {what} holds {type(t).__name__}; it takes NKI "
                                   "tensors (nl.ndarray or views)")
    return list(value)


def channels(value: object, what: str, op: str) -> list[NkiTensor]:
    """One tensor per channel from a list of one-tensor lists."""
    if not isinstance(value, list | tuple) or not value:
        raise KernelUsageError(f"{op}: {what} is a list of one-tensor lists, one per channel")
    out = []
    for ch, inner in enumerate(value):
        found = tensors(inner, f"{what}[{ch}]", op)
        if len(found) != 1:
            raise KernelUsageError(f"{op}: {what}[{ch}] holds {len(found)} tensors; each "
                                   "channel takes exactly one (no coalescing)")
        out.append(found[0])
    return out


def memory(ctx: CoreContext, tensors: list[NkiTensor], op: str, hbm_only: bool = False,
           coalesced: bool = False) -> bool:
    """All HBM or all SBUF (True: SBUF); coalesced lists only in HBM."""
    for t in tensors:
        if t.buffer is Buffer.PSUM or (hbm_only and t.buffer.on_chip):
            where = "HBM" if hbm_only else "HBM or SBUF"
            raise BufferKindError(f"{op}: {t.name}{list(t.shape)} is in {t.buffer.value}; "
                                  f"{op} tensors must be in {where}")
    kinds = {t.buffer.on_chip for t in tensors}
    if len(kinds) > 1:
        raise BufferKindError(f"{op}: tensors mix HBM and SBUF; all must be in HBM or all in "
                              "SBUF")
    sbuf = kinds == {True}
    if sbuf and coalesced:
        raise BufferKindError(f"{op}: several tensors per list (coalesced) need HBM; SBUF "
                              "collectives take one tensor")
    for t in tensors:
        check_partitions(ctx, t, t.name, op)
    return sbuf


def two_d(srcs: list[NkiTensor], op: str) -> None:
    """SBUF collectives gather or scatter whole 2-D tiles."""
    for s in srcs:
        if s.ndim != 2:
            raise ShapeMismatchError(f"{op}: SBUF collectives take 2-D tiles; src {s.name} "
                                     f"is {list(s.shape)}")


def pairs(srcs: list[NkiTensor], dsts: list[NkiTensor], op: str) -> None:
    """One dst per src, of the src's dtype."""
    if len(srcs) != len(dsts):
        raise KernelUsageError(f"{op}: {len(srcs)} srcs but {len(dsts)} dsts; one dst per src")
    for s, d in zip(srcs, dsts, strict=True):
        if s.dtype != d.dtype:
            raise DTypeError(f"{op}: src {s.name} is {s.dtype.name} but dst {d.name} is "
                             f"{d.dtype.name}; a collective moves elements of one dtype")


def shape(t: NkiTensor, want: tuple[int, ...], what: str, op: str) -> None:
    """`t` must have shape `want`."""
    if tuple(t.shape) != tuple(want):
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} must be {list(want)}")


def reduce_op(value: object, op: str) -> str:
    """The reduction's name: add, minimum or maximum."""
    name = to_op(value, "op").name
    if name not in _REDUCE_OPS:
        raise KernelUsageError(f"{op}: op=nl.{name}; the reduction is nl.add, nl.minimum or "
                               "nl.maximum")
    return name


def priority(ctx: CoreContext, priority: object, op: str) -> int | None:
    """The DMA QoS level (0..3), NeuronCore-v4+ only; None when not given."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 3:
        raise KernelUsageError(f"{op}: priority={priority!r}; the DMA QoS level is 0..3")
    lim = ctx.run.limits
    if lim.version < 4:
        raise KernelUsageError(f"{op}: priority is available on NeuronCore-v4 and newer only; "
                               f"this kernel runs on {lim.chip} (v{lim.version})")
    return int(priority)


def dim(value: object, allowed: tuple[int, ...], where: str, op: str) -> int:
    """`collective_dim`, one of `allowed`."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise KernelUsageError(f"{op}: collective_dim={value!r}; {where} supports "
                               f"{' or '.join(map(str, allowed))}")
    return int(value)


def nbytes(tensors: list[NkiTensor]) -> int:
    """Bytes of the tensors together."""
    return sum(t.size * t.dtype.itemsize for t in tensors)


# --------------------------------------------------------------------- issuing
def issue(call: Call, opcode: Opcode, reads: list[NkiTensor], writes: list[NkiTensor],
          attrs: CollectiveAttrs, signature: tuple, payload: Callable[[], object],
          combine: Callable[[list[object]], list[object]]) -> object:
    """Record the instruction, meet the rank-list's other members, return this rank's
    result (None in symbolic mode, or without peers)."""
    inst = record(call.ctx, Engine.DMA, opcode, reads, writes, attrs)
    symbolic = call.ctx.run.symbolic
    members = call.members
    if symbolic or not call.peers_exist:
        if call.bind.scheduler is None or not call.peers_exist:
            return None
        # a symbolic multi-rank run still meets: pairing and deadlocks are the same
        return call.bind.scheduler.meet(call.bind.rank, call.op, members, signature,
                                        str(inst.location), None,
                                        lambda parts: dict.fromkeys(members))
    mine = payload()

    def by_rank(parts: list[object]) -> dict[int, object]:
        return dict(zip(members, combine(parts), strict=True))

    if len(members) == 1 or call.bind.scheduler is None:
        return by_rank([mine])[call.bind.rank]
    return call.bind.scheduler.meet(call.bind.rank, call.op, members, signature,
                                    str(inst.location), mine, by_rank)


def write(dsts: list[NkiTensor], values: object) -> None:
    """Store this rank's results (None: symbolic, or nothing received)."""
    if values is None:
        return
    for d, v in zip(dsts, values, strict=True):  # type: ignore[call-overload]
        if v is not None:
            d.numpy()[...] = np.asarray(v).reshape(d.shape)


def specs(tensors: list[NkiTensor]) -> tuple:
    """Shapes and dtypes: what the members of a meeting must agree on."""
    return tuple((tuple(t.shape), t.dtype.name) for t in tensors)


def copies(tensors: list[NkiTensor]) -> Callable[[], list[np.ndarray]]:
    """This rank's contribution: copies of the tensors' values, taken when called."""
    return lambda: [t.numpy().copy() for t in tensors]


def attrs(call: Call, net_op: str, n_bytes: int, **kw: object) -> CollectiveAttrs:
    """The instruction's attributes, as tessera.net prices them."""
    return CollectiveAttrs(net_op=net_op, ranks=len(call.members), n_bytes=n_bytes,
                           chip=call.ctx.run.limits.chip, **kw)  # type: ignore[arg-type]


