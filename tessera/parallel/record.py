"""Every collective a real run issues, with its bytes, group and module.

    with CollectiveRecorder() as rec:
        train_step()
    rec.records        # CollectiveCall(op, n_bytes, group, module, backward)

A subclass of PyTorch's comm-debug mode (`torch.distributed.tensor.debug.CommDebugMode`,
which counts collectives per module as DTensor, FSDP2 and the pipeline schedules issue
them) that also keeps each call's buffer size and process group. Sizes follow nccom-test's
convention, as `tessera.net` takes them: the whole buffer (an all-gather's output, a
reduce-scatter's input, an all-reduce's tensor); a point-to-point send counts the tensor
sent (receives are the other side of a send and are not counted again).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.debug import CommDebugMode
from torch.utils._python_dispatch import TorchDispatchMode

# how each recorded op moves data, as `tessera.net` names the collective
_KIND = {
    "all_reduce": "all_reduce", "allreduce_": "all_reduce",
    "all_gather_into_tensor": "all_gather", "_allgather_base_": "all_gather",
    "allgather_": "all_gather", "allgather_into_tensor_coalesced_": "all_gather",
    "all_gather_into_tensor_coalesced": "all_gather",
    "reduce_scatter_tensor": "reduce_scatter", "_reduce_scatter_base_": "reduce_scatter",
    "reduce_scatter_": "reduce_scatter", "reduce_scatter_tensor_coalesced_": "reduce_scatter",
    "reduce_scatter_tensor_coalesced": "reduce_scatter",
    "all_to_all_single": "all_to_all", "alltoall_base_": "all_to_all",
    "broadcast": "broadcast", "broadcast_": "broadcast",
    "send": "send",
}


@dataclass(frozen=True)
class CollectiveCall:
    """One collective as issued: its kind, buffer bytes, group ranks and module."""

    op: str  # all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, send
    n_bytes: int
    group: tuple[int, ...]
    module: str  # the innermost module that issued it ("Global" outside any)
    backward: bool


class CollectiveRecorder(CommDebugMode):
    """CommDebugMode that also records each collective's bytes and group."""

    def __init__(self, track_modules: bool = True) -> None:
        super().__init__()
        self.records: list[CollectiveCall] = []
        # the module tracker's backward hooks break the pipeline schedules' autograd.grad
        # calls: pipelined runs record without modules (module "Global", backward False),
        # and without CommDebugMode's own counters, which need the tracker
        self.track_modules = track_modules

    def __enter__(self) -> CollectiveRecorder:
        if self.track_modules:
            return super().__enter__()
        TorchDispatchMode.__enter__(self)
        return self

    def __exit__(self, *args: object) -> None:
        if self.track_modules:
            super().__exit__(*args)
        else:
            TorchDispatchMode.__exit__(self, *args)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **(kwargs or {}))
        if self.track_modules:
            out = super().__torch_dispatch__(func, types, args, kwargs)
        elif any(issubclass(t, DTensor) for t in types):
            return NotImplemented  # DTensor runs first; its collectives come back here
        else:
            out = func(*args, **(kwargs or {}))
        if out is NotImplemented:
            return out
        kind = _KIND.get(func._overloadpacket.__name__)
        if kind is not None:
            group = _group(args, kwargs)
            n = _bytes(kind, func._overloadpacket.__name__, args, group)
            tracker = self.advanced_module_tracker
            module, bw = ((tracker.name, bool(tracker.is_bw)) if self.track_modules
                          else ("Global", False))
            self.records.append(CollectiveCall(kind, n, group, module, bw))
        return out

    def volume(self) -> dict[tuple[str, tuple[int, ...]], int]:
        """Bytes by (kind, group), summed over the calls."""
        out: dict[tuple[str, tuple[int, ...]], int] = defaultdict(int)
        for r in self.records:
            out[(r.op, r.group)] += r.n_bytes
        return dict(out)


def _tensors(x: object) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, list | tuple):
        return [t for e in x for t in _tensors(e)]
    return []


def _nbytes(ts: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


def _bytes(kind: str, name: str, args: tuple, group: tuple[int, ...]) -> int:
    """The collective's whole buffer (nccom-test's size) from the op's arguments."""
    tensors = _tensors(args[0]) if args else []
    if kind == "all_gather":
        if name in ("_allgather_base_", "allgather_", "allgather_into_tensor_coalesced_"):
            return _nbytes(tensors)  # c10d ops: the output buffer comes first
        return _nbytes(tensors) * max(1, len(group))  # funcol: the input shard first
    if kind == "reduce_scatter" and name in ("_reduce_scatter_base_", "reduce_scatter_",
                                              "reduce_scatter_tensor_coalesced_"):
        return _nbytes(_tensors(args[1]))  # c10d ops: (output, input, ...)
    return _nbytes(tensors)


def _group(args: tuple, kwargs: dict | None) -> tuple[int, ...]:
    """The ranks of the op's process group (a ProcessGroup object or a group name)."""
    from torch.distributed.distributed_c10d import _resolve_process_group

    for a in (*args, *(kwargs or {}).values()):
        if isinstance(a, torch.ScriptObject):
            try:  # a c10d op's ProcessGroup reaches dispatch as a boxed script object
                a = dist.ProcessGroup.unbox(a)
            except (RuntimeError, TypeError):
                continue
        pg = None
        if isinstance(a, dist.ProcessGroup):
            pg = a
        elif isinstance(a, str):
            try:
                pg = _resolve_process_group(a)
            except (ValueError, RuntimeError, KeyError):
                continue
        if pg is not None:
            return tuple(dist.get_process_group_ranks(pg))
    return tuple(range(dist.get_world_size()))


def mesh_dim_of(group: tuple[int, ...], degrees: tuple[int, ...],
                names: tuple[str, ...]) -> str:
    """The mesh dimension a group spans ("tp", "dp_shard", ...; "dp" for replicate and shard
    together, "+"-joined names otherwise; "self" for a group of one), from the mesh's
    degrees in row-major rank order (`config.MESH_DIMS`)."""
    if len(group) < 2:
        return "self"

    def coords(rank: int) -> list[int]:
        out = []
        for d in reversed(degrees):
            out.append(rank % d)
            rank //= d
        return out[::-1]

    first = coords(group[0])
    varying = {names[i] for r in group[1:] for i, c in enumerate(coords(r)) if c != first[i]}
    if varying == {"dp_replicate", "dp_shard"}:
        return "dp"
    if varying == {"dp_replicate"}:
        return "dp"  # replication alone is plain data parallelism
    return "+".join(sorted(varying))
