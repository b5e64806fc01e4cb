"""Run collectives for real through torch.distributed, and cost the same calls on a topology.

The parallel layers call one API: each `Communicator` method performs the collective with
torch.distributed (gloo on CPU, NCCL when CUDA is available) and, when a `CollectiveModel` is
attached, records what the modelled hardware would take for it. A peer that dies or stops
answering turns into a `CommError` within `timeout_s` instead of a hang.

    comm = Communicator(rank, world_size, "file:///tmp/rendezvous", timeout_s=10,
                        model=CollectiveModel.for_instance("trn1.32xlarge", world_size))
    total = comm.all_reduce(torch.ones(4))
    comm.records[-1].predicted_time_s
    comm.close()
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import torch
import torch.distributed as tdist

from tessera.net.collectives import CollectiveModel
from tessera.net.ops import CollectiveOp
from tessera.parallel.errors import CommError

T = TypeVar("T")


class Backend(StrEnum):
    """torch.distributed backend; AUTO is NCCL when CUDA is available, else gloo."""

    AUTO = "auto"
    GLOO = "gloo"
    NCCL = "nccl"


@dataclass(frozen=True)
class CommGroup:
    """A subset of ranks with its own torch process group (made by `Communicator.new_group`)."""

    ranks: tuple[int, ...]
    handle: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class CommRecord:
    """One executed collective: what ran, how long it took here, what the model predicts."""

    op: CollectiveOp
    n_bytes: int
    group: tuple[int, ...]
    wall_s: float
    predicted_time_s: float | None


class Communicator:
    """This process's endpoint: collectives over torch.distributed, costed on a model."""

    def __init__(self, rank: int, world_size: int, init_method: str, *,
                 backend: Backend | str = Backend.AUTO, timeout_s: float = 30.0,
                 model: CollectiveModel | None = None) -> None:
        backend = Backend(backend)
        if backend is Backend.AUTO:
            backend = Backend.NCCL if torch.cuda.is_available() else Backend.GLOO
        if model is not None and model.rank_map.world_size != world_size:
            raise CommError(f"the model places {model.rank_map.world_size} ranks but the "
                            f"world has {world_size}")
        self.rank, self.world_size, self.backend = rank, world_size, backend
        self.timeout_s, self.model = timeout_s, model
        self.records: list[CommRecord] = []
        self._world = tuple(range(world_size))
        try:
            tdist.init_process_group(backend.value, init_method=init_method, rank=rank,
                                     world_size=world_size,
                                     timeout=datetime.timedelta(seconds=timeout_s))
        except Exception as exc:  # torch raises several types for a failed rendezvous
            raise CommError(f"rank {rank}: could not join {world_size} ranks at "
                            f"{init_method} within {timeout_s:g} s: {exc}") from exc

    # --- plumbing ---------------------------------------------------------------------------

    def _device(self) -> torch.device:
        if self.backend is Backend.NCCL:
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _run(self, op: CollectiveOp | None, n_bytes: int, group: CommGroup | None,
             fn: Callable[[], T]) -> T:
        """Run `fn`, turning any torch failure into `CommError`; record `op` (None: no record)."""
        ranks = self._world if group is None else group.ranks
        start = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:
            name = "barrier" if op is None else op.value
            raise CommError(f"{name} on rank {self.rank} (group {list(ranks)[:8]}) failed: "
                            f"a peer rank died or did not answer within {self.timeout_s:g} s "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                            ) from exc
        wall = time.perf_counter() - start
        if op is None:
            return out
        predicted = None
        if self.model is not None and len(ranks) >= 2:
            cost_group = ranks[:2] if op is CollectiveOp.SEND_RECV else ranks
            predicted = self.model.cost(op, max(n_bytes, 1), cost_group).time_s
        self.records.append(CommRecord(op, n_bytes, tuple(ranks), wall, predicted))
        return out

    def _members(self, group: CommGroup | None) -> tuple[int, ...]:
        ranks = self._world if group is None else group.ranks
        if self.rank not in ranks:
            raise CommError(f"rank {self.rank} is not in group {list(ranks)}")
        return ranks

    @staticmethod
    def _handle(group: CommGroup | None) -> object:
        return None if group is None else group.handle

    # --- API --------------------------------------------------------------------------------

    def new_group(self, ranks: Sequence[int]) -> CommGroup:
        """A sub-group. Collective: every rank of the world must call it, in the same order."""
        members = tuple(int(r) for r in ranks)
        if not members or any(not 0 <= r < self.world_size for r in members):
            raise CommError(f"group {list(members)} names ranks outside 0..{self.world_size - 1}")
        return CommGroup(members, tdist.new_group(ranks=list(members)))

    def all_reduce(self, tensor: torch.Tensor, group: CommGroup | None = None) -> torch.Tensor:
        """Sum `tensor` over the group, in place; returns it."""
        self._members(group)
        return self._run(CollectiveOp.ALL_REDUCE, tensor.nbytes, group, lambda: (
            tdist.all_reduce(tensor, group=self._handle(group)), tensor)[1])

    def all_gather(self, tensor: torch.Tensor, group: CommGroup | None = None) -> torch.Tensor:
        """Every member's `tensor`, concatenated along dim 0 in group order."""
        n = len(self._members(group))
        parts = [torch.empty_like(tensor) for _ in range(n)]
        return self._run(CollectiveOp.ALL_GATHER, tensor.nbytes * n, group, lambda: (
            tdist.all_gather(parts, tensor.contiguous(), group=self._handle(group)),
            torch.cat(parts))[1])

    def reduce_scatter(self, tensor: torch.Tensor, group: CommGroup | None = None
                       ) -> torch.Tensor:
        """Sum over the group of `tensor`, split along dim 0; returns this rank's chunk."""
        ranks = self._members(group)
        n = len(ranks)
        if tensor.shape[0] % n:
            raise CommError(f"reduce_scatter: dim 0 ({tensor.shape[0]}) is not divisible by "
                            f"the group size {n}")
        chunks = [c.contiguous() for c in tensor.chunk(n)]
        out = torch.empty_like(chunks[0])
        return self._run(CollectiveOp.REDUCE_SCATTER, tensor.nbytes, group, lambda: (
            tdist.reduce_scatter(out, chunks, group=self._handle(group)), out)[1])

    def all_to_all(self, tensor: torch.Tensor, group: CommGroup | None = None) -> torch.Tensor:
        """Chunk i of dim 0 goes to the group's i-th rank; returns the received chunks."""
        n = len(self._members(group))
        if tensor.shape[0] % n:
            raise CommError(f"all_to_all: dim 0 ({tensor.shape[0]}) is not divisible by {n}")
        ins = [c.contiguous() for c in tensor.chunk(n)]
        outs = [torch.empty_like(c) for c in ins]
        return self._run(CollectiveOp.ALL_TO_ALL, tensor.nbytes, group, lambda: (
            tdist.all_to_all(outs, ins, group=self._handle(group)), torch.cat(outs))[1])

    def broadcast(self, tensor: torch.Tensor, src: int = 0,
                  group: CommGroup | None = None) -> torch.Tensor:
        """`src`'s tensor (a global rank in the group) to every member, in place."""
        if src not in self._members(group):
            raise CommError(f"broadcast source {src} is not in the group")
        return self._run(CollectiveOp.BROADCAST, tensor.nbytes, group, lambda: (
            tdist.broadcast(tensor, src, group=self._handle(group)), tensor)[1])

    def send(self, tensor: torch.Tensor, dst: int) -> None:
        """Send `tensor` to rank `dst` (which must call `recv`)."""
        pair = CommGroup((self.rank, dst), None)
        self._run(CollectiveOp.SEND_RECV, tensor.nbytes, pair,
                  lambda: tdist.send(tensor.contiguous(), dst))

    def recv(self, tensor: torch.Tensor, src: int) -> torch.Tensor:
        """Receive into `tensor` from rank `src`; returns it."""
        pair = CommGroup((src, self.rank), None)
        return self._run(CollectiveOp.SEND_RECV, tensor.nbytes, pair,
                         lambda: (tdist.recv(tensor, src), tensor)[1])

    def permute(self, tensor: torch.Tensor, group: CommGroup | None = None,
                shift: int = 1) -> torch.Tensor:
        """Send `tensor` to the member `shift` places on; return what arrives from behind."""
        ranks = self._members(group)
        i, n = ranks.index(self.rank), len(ranks)
        dst, src = ranks[(i + shift) % n], ranks[(i - shift) % n]
        out = torch.empty_like(tensor)

        def exchange() -> torch.Tensor:
            if dst == self.rank:
                out.copy_(tensor)
                return out
            ops = [tdist.P2POp(tdist.isend, tensor.contiguous(), dst),
                   tdist.P2POp(tdist.irecv, out, src)]
            for req in tdist.batch_isend_irecv(ops):
                req.wait()
            return out

        return self._run(CollectiveOp.PERMUTE, tensor.nbytes, group, exchange)

    def barrier(self) -> None:
        """Wait for every rank (fails with `CommError` like the collectives)."""
        self._run(None, 0, None, lambda: tdist.barrier())

    def close(self) -> None:
        """Leave the process group."""
        if tdist.is_initialized():
            tdist.destroy_process_group()

    def __enter__(self) -> Communicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
