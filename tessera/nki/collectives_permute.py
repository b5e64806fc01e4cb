"""`nki.collectives`, continued: all_to_all_v, the permutes and the rank ids.

Rules from the `nki.collectives` pages (stub at 732f514f): all_to_all_v and
collective_permute take exactly one HBM tensor per list; all_to_all_v reads per-rank counts
and displacements from a uint32 metadata tensor at run time; the implicit permutes send
each member's tensor to its successor in the rank-list's ring (position + 1) and receive
its predecessor's, one tensor per channel, channel ids 0..k-1, at most 4 channels for a
rank-list holding every rank of the node (the run's world, here) and 2 otherwise. Rank ids
are plain ints: the hardware returns them in an engine register, and Tessera's kernels
use them where the pages do (a `scalar_offset` of `.ap()`, arithmetic).
"""

from __future__ import annotations

import numpy as np

from tessera.nki import collectives_common as cc
from tessera.nki import collectives_math as cm
from tessera.nki.collectives_common import ReplicaGroup
from tessera.nki.dtypes import uint32
from tessera.nki.errors import DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.runtime import kernel_api
from tessera.nki.stream import Opcode
from tessera.nki.tensor import NkiTensor

__all__ = [
    "all_to_all_v", "collective_permute", "collective_permute_implicit",
    "collective_permute_implicit_current_processing_rank_id",
    "collective_permute_implicit_reduce", "rank_id", "self_index_in_replica_group",
]


def _one(value: object, what: str, op: str) -> NkiTensor:
    tensors = cc.tensors(value, what, op)
    if len(tensors) != 1:
        raise KernelUsageError(f"{op}: {what} holds {len(tensors)} tensors; {op} takes exactly "
                               "one (no coalescing)")
    return tensors[0]


def _metadata(meta: object, rows: tuple[int, ...], n: int, op: str) -> NkiTensor:
    if not isinstance(meta, NkiTensor):
        raise KernelUsageError(f"{op}: metadata_tensor must be an NKI tensor, got "
                               f"{type(meta).__name__}")
    if meta.dtype != uint32:
        raise DTypeError(f"{op}: metadata_tensor {meta.name} is {meta.dtype.name}; it must be "
                         "uint32")
    shapes = [(r, n) for r in rows] if meta.buffer.is_hbm else [(1, r, n) for r in rows]
    if tuple(meta.shape) not in shapes:
        want = " or ".join(str(list(s)) for s in shapes)
        raise ShapeMismatchError(f"{op}: metadata_tensor {meta.name}{list(meta.shape)} must be "
                                 f"{want} in {meta.buffer.value} (rows x rank-list size)")
    return meta


@kernel_api
def all_to_all_v(srcs: list, dsts: list, replica_group: ReplicaGroup, metadata_tensor: object,
                 recv_counts_known: bool = False, has_rdispls: bool = False,
                 priority: int | None = None, name: str | None = None) -> None:
    """All-to-all with per-rank element counts read at run time from `metadata_tensor`
    (rows: send_counts, send_displs, recv_counts, [recv_displs]; one column per member).

    Member i sends `src[send_displs[j] : + send_counts[j]]` (flat elements) to member j,
    which writes it at its `recv_displs[i]`, or at `(dst elements / members) * i` without
    `has_rdispls`. Unless `recv_counts_known`, row 2 receives the counts. HBM only.
    """
    op = "all_to_all_v"
    ctx, bind = cc.start(op)
    src, dst = _one(srcs, "srcs", op), _one(dsts, "dsts", op)
    cc.memory(ctx, [src, dst], op, hbm_only=True)
    cc.pairs([src], [dst], op)
    prio = cc.priority(ctx, priority, op)
    call = cc.Call(ctx, bind, op, cc.rank_list(ctx, bind, replica_group, op))
    n = len(call.members)
    rows = (4,) if has_rdispls else (3, 4)
    meta = _metadata(metadata_tensor, rows, n, op)
    cc.memory(ctx, [meta], op)
    writes = [dst] if recv_counts_known else [dst, meta]

    def payload() -> tuple:
        table = meta.numpy().reshape(-1, n).astype(np.int64)
        recv = table[3] if has_rdispls else (dst.size // n) * np.arange(n, dtype=np.int64)
        return src.numpy().reshape(-1).copy(), table[0], table[1], recv, dst.size

    attrs = cc.attrs(call, "all_to_all", cc.nbytes([src]), priority=prio)
    signature = (op, cc.specs([src, dst, meta]), bool(recv_counts_known), bool(has_rdispls))
    out = cc.issue(call, Opcode.ALL_TO_ALL_V, [src, meta], writes, attrs, signature, payload,
                   lambda parts: cm.all_to_all_v(parts, call.members))
    if out is None:
        return
    chunks, counts = out  # type: ignore[misc]
    flat = dst.numpy().reshape(-1).copy()
    for at, values in chunks:
        flat[at:at + values.size] = values
    dst.numpy()[...] = flat.reshape(dst.shape)
    if not recv_counts_known:
        table = meta.numpy().reshape(-1, n).copy()
        table[2] = counts.astype(np.uint32)
        meta.numpy()[...] = table.reshape(meta.shape)


def _source_target_pairs(pairs: object, op: str) -> tuple[tuple[int, int], ...]:
    try:
        out = tuple((a, b) for a, b in pairs)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise KernelUsageError(f"{op}: source_target_pairs is a list of (source, target) "
                               f"rank pairs, got {pairs!r}") from None
    targets: set[int] = set()
    for a, b in out:
        for r in (a, b):
            if isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 0:
                raise KernelUsageError(f"{op}: rank {r!r} in source_target_pairs is not a "
                                       "non-negative int")
        if int(b) in targets:
            raise KernelUsageError(f"{op}: rank {b} is the target of two pairs; each rank "
                                   "receives at most one tensor")
        targets.add(int(b))
    if not out:
        raise KernelUsageError(f"{op}: source_target_pairs is empty")
    return tuple((int(a), int(b)) for a, b in out)


@kernel_api
def collective_permute(srcs: list, dsts: list, source_target_pairs: object,
                       priority: int | None = None, name: str | None = None) -> None:
    """Each (source, target) pair sends the source rank's src into the target rank's dst;
    ranks that are no pair's target keep their dst. One HBM tensor per list."""
    op = "collective_permute"
    ctx, bind = cc.start(op)
    src, dst = _one(srcs, "srcs", op), _one(dsts, "dsts", op)
    cc.memory(ctx, [src, dst], op, hbm_only=True)
    cc.pairs([src], [dst], op)
    cc.shape(dst, src.shape, "dst", op)
    prio = cc.priority(ctx, priority, op)
    pairs = _source_target_pairs(source_target_pairs, op)
    members = tuple(sorted({r for pair in pairs for r in pair}))
    cc.check_world(ctx, bind, members, op)
    if bind.rank not in members:  # neither sends nor receives: nothing to meet
        members = (bind.rank,)
    call = cc.Call(ctx, bind, op, members)
    position = {r: i for i, r in enumerate(members)}
    sources = {position[b]: position[a] for a, b in pairs if b in position and a in position}
    attrs = cc.attrs(call, "permute", cc.nbytes([src]), priority=prio)
    out = cc.issue(call, Opcode.COLLECTIVE_PERMUTE, [src], [dst], attrs,
                   (op, cc.specs([src]), pairs), lambda: src.numpy().copy(),
                   lambda parts: [[v] for v in cm.permute(parts, sources)])
    cc.write([dst], out)


def _ring_setup(ctx: object, bind: cc.RankBinding, group: object, channel_ids: object,
                n_channels: int, op: str) -> cc.Call:
    call = cc.Call(ctx, bind, op, cc.rank_list(ctx, bind, group, op))  # type: ignore[arg-type]
    ids = list(channel_ids) if isinstance(channel_ids, list | tuple) else None
    if ids != list(range(n_channels)):
        raise KernelUsageError(f"{op}: channel_ids={channel_ids!r}; with {n_channels} "
                               f"channel(s) they must be {list(range(n_channels))} "
                               "(consecutive from 0)")
    limit = _channel_limit(call)
    if n_channels > limit:
        raise KernelUsageError(f"{op}: {n_channels} channels; a rank-list of "
                               f"{len(call.members)} of the world's ranks has at most {limit}")
    return call


def _channel_limit(call: cc.Call) -> int:
    world = call.bind.world_size if call.peers_exist else max(call.members) + 1
    whole = set(call.members) == set(range(world))
    return cc.MAX_CHANNELS_ALL if whole else cc.MAX_CHANNELS


def _ring(srcs: list[NkiTensor], dsts: list[NkiTensor], op: str) -> None:
    if len(srcs) != len(dsts):
        raise KernelUsageError(f"{op}: {len(srcs)} source channels but {len(dsts)} "
                               "destination channels")
    cc.pairs(srcs, dsts, op)
    for s, d in zip(srcs, dsts, strict=True):
        cc.shape(d, s.shape, "dst", op)


@kernel_api
def collective_permute_implicit(srcs_by_channel: list, dsts_by_channel: list,
                                replica_group: ReplicaGroup, channel_ids: list | None = None,
                                priority: int | None = None, name: str | None = None) -> None:
    """Ring step: each member sends its channel tensors to its successor in the rank-list
    and receives its predecessor's into `dsts_by_channel` (one tensor per channel)."""
    op = "collective_permute_implicit"
    ctx, bind = cc.start(op)
    srcs = cc.channels(srcs_by_channel, "srcs_by_channel", op)
    dsts = cc.channels(dsts_by_channel, "dsts_by_channel", op)
    cc.memory(ctx, srcs + dsts, op)
    _ring(srcs, dsts, op)
    prio = cc.priority(ctx, priority, op)
    call = _ring_setup(ctx, bind, replica_group, [0] if channel_ids is None else channel_ids,
                       len(srcs), op)
    attrs = cc.attrs(call, "permute", max(cc.nbytes([s]) for s in srcs),
                     channels=len(srcs), priority=prio)
    out = cc.issue(call, Opcode.COLLECTIVE_PERMUTE_IMPLICIT, srcs, dsts, attrs,
                   (op, cc.specs(srcs)), cc.copies(srcs), cm.ring_shift)
    cc.write(dsts, out)


@kernel_api
def collective_permute_implicit_reduce(srcs0_by_channel: list, srcs1_by_channel: list,
                                       dsts_by_channel: list, replica_group: ReplicaGroup,
                                       op: object, channel_ids: list | None = None,
                                       priority: int | None = None,
                                       name: str | None = None) -> None:
    """Ring step with a reduction: each member sends `op(srcs0[c], srcs1[c])` (nl.add /
    nl.minimum / nl.maximum) to its successor and receives its predecessor's result."""
    opname = "collective_permute_implicit_reduce"
    ctx, bind = cc.start(opname)
    srcs0 = cc.channels(srcs0_by_channel, "srcs0_by_channel", opname)
    srcs1 = cc.channels(srcs1_by_channel, "srcs1_by_channel", opname)
    dsts = cc.channels(dsts_by_channel, "dsts_by_channel", opname)
    cc.memory(ctx, srcs0 + srcs1 + dsts, opname)
    _ring(srcs0, dsts, opname)
    _ring(srcs1, dsts, opname)
    red, prio = cc.reduce_op(op, opname), cc.priority(ctx, priority, opname)
    call = _ring_setup(ctx, bind, replica_group, [0] if channel_ids is None else channel_ids,
                       len(dsts), opname)

    def payload() -> list[np.ndarray]:
        return [cm.reduce_values([a.numpy(), b.numpy()], red, a.dtype)
                for a, b in zip(srcs0, srcs1, strict=True)]

    attrs = cc.attrs(call, "permute", max(cc.nbytes([d]) for d in dsts), reduce_op=red,
                     channels=len(dsts), priority=prio)
    out = cc.issue(call, Opcode.COLLECTIVE_PERMUTE_IMPLICIT_REDUCE, srcs0 + srcs1, dsts, attrs,
                   (opname, red, cc.specs(dsts)), payload, cm.ring_shift)
    cc.write(dsts, out)


def _count(value: object, what: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise KernelUsageError(f"{op}: {what} must be a non-negative int, got {value!r}")
    return int(value)


@kernel_api
def collective_permute_implicit_current_processing_rank_id(
        iteration_id: int, replica_group: ReplicaGroup, channel_id: int = 0,
        name: str | None = None) -> int:
    """The rank whose data a ring algorithm processes at step `iteration_id`: this rank at
    step 0, then its predecessor's, and so on around the rank-list's ring."""
    op = "collective_permute_implicit_current_processing_rank_id"
    ctx, bind = cc.start(op)
    step = _count(iteration_id, "iteration_id", op)
    call = cc.Call(ctx, bind, op, cc.rank_list(ctx, bind, replica_group, op))
    channel = _count(channel_id, "channel_id", op)
    limit = _channel_limit(call)
    if channel >= limit:
        raise KernelUsageError(f"{op}: channel_id={channel}; this rank-list has channels "
                               f"0..{limit - 1}")
    return call.members[(call.position - step) % len(call.members)]


@kernel_api
def rank_id(name: str | None = None) -> int:
    """This rank's id: its rank in `nki.multi_rank_simulate` (0 in a plain launch)."""
    _, bind = cc.start("rank_id")
    return bind.rank


@kernel_api
def self_index_in_replica_group(replica_group: ReplicaGroup, name: str | None = None) -> int:
    """This rank's position in its own rank-list of `replica_group` (rank 6 of
    [[0, 1, 2, 3], [4, 5, 6, 7]] is at 2); an error when no rank-list holds it. A plain int,
    like `rank_id` (the hardware returns an NkiScalar)."""
    op = "self_index_in_replica_group"
    _, bind = cc.start(op)
    if not isinstance(replica_group, ReplicaGroup):
        raise KernelUsageError(f"{op}: replica_group must be a nki.collectives.ReplicaGroup, "
                               f"got {type(replica_group).__name__}")
    members = replica_group.rank_list_of(bind.rank)
    if members is None:  # a query: ranks outside the run's world are not an error here
        raise KernelUsageError(f"{op}: rank {bind.rank} is in no rank-list of "
                               f"{replica_group!r}")
    return members.index(bind.rank)
