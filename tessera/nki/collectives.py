"""`nki.collectives`: collective communication inside a kernel, over a `ReplicaGroup`.

Names, signatures and rules follow the `nki.collectives` API reference (the stub
nki/api/nki/collectives/__init__.py at 732f514f and the per-function pages). A
`ReplicaGroup` is a list of disjoint rank-lists; a collective runs within the rank-list
that holds the calling rank, members in rank-list order. Every rank of a group runs in
this process (`nki.multi_rank_simulate`, `tessera.nki.collectives_run`), each with HBM of
its own; a plain launch is rank 0 of a world of one, where collectives over rank-lists of
other ranks are refused unless the trace is symbolic (no values to exchange: the stream
is recorded for the timing model, which prices every collective with `tessera.net`).

Tensor rules from the pages: tensors are all in HBM or all in SBUF (never mixed, never
PSUM); lists of several tensors (coalesced) only in HBM; all_to_all, all_to_all_v and
collective_permute only in HBM; `priority` (DMA QoS 0-3) only on NeuronCore-v4+. Values
are checked before any rank waits, so a bad call fails on the rank that made it.
"""

from __future__ import annotations

from tessera.nki import collectives_common as _cc
from tessera.nki import collectives_math as _cm
from tessera.nki.collectives_common import ReplicaGroup, rg_partition_op
from tessera.nki.collectives_permute import (
    all_to_all_v,
    collective_permute,
    collective_permute_implicit,
    collective_permute_implicit_current_processing_rank_id,
    collective_permute_implicit_reduce,
    rank_id,
    self_index_in_replica_group,
)
from tessera.nki.errors import ShapeMismatchError as _ShapeError
from tessera.nki.refusals import Refused as _Refused
from tessera.nki.runtime import kernel_api as _kernel_api
from tessera.nki.stream import Opcode as _Opcode

__all__ = [
    "ReplicaGroup", "all_gather", "all_gather_v", "all_gather_v_prepare",
    "all_gather_v_trigger", "all_reduce", "all_to_all", "all_to_all_v",
    "all_to_all_v_prepare", "all_to_all_v_trigger", "collective_permute",
    "collective_permute_implicit", "collective_permute_implicit_current_processing_rank_id",
    "collective_permute_implicit_reduce", "rank_id", "reduce_scatter", "rg_partition_op",
    "self_index_in_replica_group",
]

# v2.34 names not modelled yet (docs/nki_coverage.md has the reasons)
_V_REASON = ("variable-length all-gather (one broadcast chunk per rank, equal dst slots) is "
             "not modelled; all_to_all_v is")
_SPLIT_REASON = ("the prepare/trigger split (metadata set up ahead of the data, one shared "
                 "prepare slot) is not modelled; call the plain {0} instead")
all_gather_v = _Refused("nki.collectives.all_gather_v", _V_REASON)
all_gather_v_prepare = _Refused("nki.collectives.all_gather_v_prepare", _V_REASON)
all_gather_v_trigger = _Refused("nki.collectives.all_gather_v_trigger", _V_REASON)
all_to_all_v_prepare = _Refused("nki.collectives.all_to_all_v_prepare",
                                _SPLIT_REASON.format("all_to_all_v"))
all_to_all_v_trigger = _Refused("nki.collectives.all_to_all_v_trigger",
                                _SPLIT_REASON.format("all_to_all_v"))


# --------------------------------------------------------------------- the collectives
@_kernel_api
def all_reduce(srcs: list, dsts: list, replica_group: ReplicaGroup, op: object,
               priority: int | None = None, name: str | None = None) -> None:
    """Every member's dsts get the reduction (nl.add / nl.minimum / nl.maximum) of all
    members' srcs, tensor by tensor; dst i has src i's shape and dtype."""
    opname = "all_reduce"
    ctx, bind = _cc.start(opname)
    srcs, dsts = _cc.tensors(srcs, "srcs", opname), _cc.tensors(dsts, "dsts", opname)
    _cc.pairs(srcs, dsts, opname)
    _cc.memory(ctx, srcs + dsts, opname, coalesced=len(srcs) > 1)
    for s, d in zip(srcs, dsts, strict=True):
        _cc.shape(d, s.shape, "dst", opname)
    red, prio = _cc.reduce_op(op, opname), _cc.priority(ctx, priority, opname)
    call = _cc.Call(ctx, bind, opname, _cc.rank_list(ctx, bind, replica_group, opname))
    dtypes = [s.dtype for s in srcs]
    attrs = _cc.attrs(call, "all_reduce", _cc.nbytes(srcs), reduce_op=red, priority=prio)
    out = _cc.issue(call, _Opcode.ALL_REDUCE, srcs, dsts, attrs, (opname, red, _cc.specs(srcs)),
                    _cc.copies(srcs), lambda parts: _cm.all_reduce(parts, red, dtypes))
    _cc.write(dsts, out)


@_kernel_api
def all_gather(srcs: list, dsts: list, replica_group: ReplicaGroup, collective_dim: int,
               priority: int | None = None, name: str | None = None) -> None:
    """Every member's dst i is all members' src i concatenated along `collective_dim` in
    rank-list order (HBM: dim 0; SBUF: 2-D tiles, dim 0 or 1)."""
    opname = "all_gather"
    ctx, bind = _cc.start(opname)
    srcs, dsts = _cc.tensors(srcs, "srcs", opname), _cc.tensors(dsts, "dsts", opname)
    _cc.pairs(srcs, dsts, opname)
    sbuf = _cc.memory(ctx, srcs + dsts, opname, coalesced=len(srcs) > 1)
    dim = _cc.dim(collective_dim, (0, 1) if sbuf else (0,), "SBUF" if sbuf else "HBM", opname)
    prio = _cc.priority(ctx, priority, opname)
    call = _cc.Call(ctx, bind, opname, _cc.rank_list(ctx, bind, replica_group, opname))
    n = len(call.members)
    if sbuf:
        _cc.two_d(srcs, opname)
    for s, d in zip(srcs, dsts, strict=True):
        want = list(s.shape)
        want[dim] *= n
        _cc.shape(d, tuple(want), "dst", opname)
    attrs = _cc.attrs(call, "all_gather", _cc.nbytes(dsts), collective_dim=dim, priority=prio)
    out = _cc.issue(call, _Opcode.ALL_GATHER, srcs, dsts, attrs, (opname, dim, _cc.specs(srcs)),
                    _cc.copies(srcs), lambda parts: _cm.all_gather(parts, dim))
    _cc.write(dsts, out)


@_kernel_api
def reduce_scatter(srcs: list, dsts: list, replica_group: ReplicaGroup, collective_dim: int,
                   op: object, priority: int | None = None, name: str | None = None) -> None:
    """Member k's dst i is chunk k (along dim 0) of the reduction of all members' src i."""
    opname = "reduce_scatter"
    ctx, bind = _cc.start(opname)
    srcs, dsts = _cc.tensors(srcs, "srcs", opname), _cc.tensors(dsts, "dsts", opname)
    _cc.pairs(srcs, dsts, opname)
    sbuf = _cc.memory(ctx, srcs + dsts, opname, coalesced=len(srcs) > 1)
    _cc.dim(collective_dim, (0,), "SBUF and HBM", opname)
    red, prio = _cc.reduce_op(op, opname), _cc.priority(ctx, priority, opname)
    call = _cc.Call(ctx, bind, opname, _cc.rank_list(ctx, bind, replica_group, opname))
    n = len(call.members)
    if sbuf:
        _cc.two_d(srcs, opname)
    for s, d in zip(srcs, dsts, strict=True):
        if s.shape[0] % n:
            raise _ShapeError(f"{opname}: src {s.name}{list(s.shape)}: dim 0 must split "
                              f"into {n} equal chunks (one per rank)")
        _cc.shape(d, (s.shape[0] // n, *s.shape[1:]), "dst", opname)
    dtypes = [s.dtype for s in srcs]
    attrs = _cc.attrs(call, "reduce_scatter", _cc.nbytes(srcs), reduce_op=red, priority=prio)
    out = _cc.issue(call, _Opcode.REDUCE_SCATTER, srcs, dsts, attrs,
                    (opname, red, _cc.specs(srcs)), _cc.copies(srcs),
                    lambda parts: _cm.reduce_scatter(parts, red, dtypes))
    _cc.write(dsts, out)


@_kernel_api
def all_to_all(srcs: list, dsts: list, replica_group: ReplicaGroup, collective_dim: int,
               priority: int | None = None, name: str | None = None) -> None:
    """Member k's dst i is chunk k (along dim 0) of every member's src i, concatenated in
    rank-list order. HBM only."""
    opname = "all_to_all"
    ctx, bind = _cc.start(opname)
    srcs, dsts = _cc.tensors(srcs, "srcs", opname), _cc.tensors(dsts, "dsts", opname)
    _cc.pairs(srcs, dsts, opname)
    _cc.memory(ctx, srcs + dsts, opname, hbm_only=True)
    dim = _cc.dim(collective_dim, (0,), "all_to_all", opname)
    prio = _cc.priority(ctx, priority, opname)
    call = _cc.Call(ctx, bind, opname, _cc.rank_list(ctx, bind, replica_group, opname))
    n = len(call.members)
    for s, d in zip(srcs, dsts, strict=True):
        if s.shape[0] % n:
            raise _ShapeError(f"{opname}: src {s.name}{list(s.shape)}: dim 0 must split "
                              f"into {n} equal chunks (one per rank)")
        _cc.shape(d, s.shape, "dst", opname)
    attrs = _cc.attrs(call, "all_to_all", _cc.nbytes(srcs), collective_dim=dim, priority=prio)
    out = _cc.issue(call, _Opcode.ALL_TO_ALL, srcs, dsts, attrs, (opname, _cc.specs(srcs)),
                    _cc.copies(srcs), _cm.all_to_all)
    _cc.write(dsts, out)

