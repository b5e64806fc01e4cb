"""Running every rank of a replica group in one process: `nki.multi_rank_simulate`.

The NKI CPU simulator page documents `nki.multi_rank_simulate(kernel, *, world_size,
per_rank_inputs)`: rank r runs `kernel(*args, **kwargs)` with its own (args, kwargs) pair and
the call returns every rank's outputs in rank order. Here each rank is an ordinary launch
(`nki.simulate`) with its own HBM: its inputs are copied into HBM of its own and its outputs
are its own, so ranks share nothing but what the collectives move.

The ranks run on threads of their own but take turns (`multicore.TurnScheduler`): a rank
keeps the turn until it enters a collective that some member of its rank-list has not
entered yet, or ends. Each rank's n-th collective on a rank-list meets the n-th one of every
other member of that rank-list (like a communicator); the last member to arrive computes
every member's result, and each member writes its own destination tensors when its turn
comes back. Runs are therefore deterministic, and when no rank can go on the run is
deadlocked: a `CollectiveDeadlockError` names a waiting rank and the member it waits for.
Members that meet with different calls (an all_gather against an all_reduce, other shapes)
raise a `CollectiveMismatchError` naming both ranks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tessera.nki.errors import CoreDeadlockError, KernelUsageError
from tessera.nki.launch import (
    Kernel,
    TensorSpec,
    TraceResult,
    _as_kernel,
    _is_array_like,
    _launch,
)
from tessera.nki.multicore import TurnScheduler
from tessera.nki.runtime import ExecMode, default_chip


class CollectiveDeadlockError(CoreDeadlockError):
    """A rank waits in a collective that a member of its rank-list never enters."""

    rule = "collective-deadlock"


class CollectiveMismatchError(KernelUsageError):
    """Members of a rank-list meet with different collectives (operation, shapes, group)."""

    rule = "collective-mismatch"


@dataclass(frozen=True)
class RankBinding:
    """Which rank this thread's launch is, and the run it belongs to (None: a plain
    single-rank launch, rank 0 of a world of one)."""

    scheduler: RankScheduler | None
    rank: int
    world_size: int


_SINGLE = RankBinding(None, 0, 1)
_local = threading.local()


def binding() -> RankBinding:
    """The rank the calling kernel runs as."""
    return getattr(_local, "binding", _SINGLE)


@dataclass
class _Meeting:
    """The n-th collective of one rank-list: who has arrived, with what."""

    name: str  # e.g. "all_gather #0 on ranks [0, 1]"
    members: tuple[int, ...]
    signature: tuple
    first: int  # the first rank to arrive (the one a mismatch is compared with)
    locations: dict[int, str] = field(default_factory=dict)
    payloads: dict[int, object] = field(default_factory=dict)
    results: dict[int, object] | None = None
    collected: int = 0


# Combines the members' payloads (in rank-list order) into each member's result, by rank.
Combine = Callable[[list[object]], dict[int, object]]


class RankScheduler(TurnScheduler):
    """Turn-taking, collective meetings and deadlock detection for a multi-rank run."""

    worker = "rank"

    def __init__(self, world_size: int) -> None:
        super().__init__(world_size)
        self.world_size = world_size
        self._waits: list[_Meeting | None] = [None] * world_size
        self._entered = [0] * world_size  # collectives each rank has entered
        self._numbers: list[dict[tuple[int, ...], int]] = [{} for _ in range(world_size)]
        self._meetings: dict[tuple[tuple[int, ...], int], _Meeting] = {}

    def meet(self, rank: int, op: str, members: tuple[int, ...], signature: tuple,
             location: str, payload: object, combine: Combine) -> object:
        """Enter `rank`'s next collective on `members` with `payload`; return its result
        once every member has entered the same collective."""
        with self._cond:
            number = self._numbers[rank].get(members, 0)
            self._numbers[rank][members] = number + 1
            self._entered[rank] += 1
            key = (members, number)
            meeting = self._meetings.get(key)
            if meeting is None:
                name = f"{op} #{number} on ranks {list(members)}"
                meeting = self._meetings[key] = _Meeting(name, members, signature, rank)
            elif signature != meeting.signature:
                first = meeting.first
                raise CollectiveMismatchError(
                    f"collective mismatch: rank {rank}'s {op} #{number} on ranks "
                    f"{list(members)} is {_describe(signature)}, but rank {first}'s "
                    f"(at {meeting.locations[first]}) is {_describe(meeting.signature)}; "
                    "every member of a rank-list must make the same collective calls in the "
                    "same order", location)
            meeting.locations[rank] = location
            meeting.payloads[rank] = payload
            if len(meeting.payloads) == len(members):
                meeting.results = combine([meeting.payloads[r] for r in members])
            else:
                self._waits[rank] = meeting
                self._pass_turn(rank)
                self._waits[rank] = None
            assert meeting.results is not None
            meeting.collected += 1
            if meeting.collected == len(members):
                del self._meetings[key]
            return meeting.results[rank]

    # ------------------------------------------------------------------ hooks
    def _can_go(self, rank: int) -> bool:
        w = self._waits[rank]
        return w is None or w.results is not None

    def _failed(self, rank: int, err: BaseException) -> BaseException:
        err.add_note(f"(raised on rank {rank} of {self.world_size})")
        return err

    def _state(self, rank: int) -> str:
        w = self._waits[rank]
        if w is not None:
            return f"waits at {w.name} at {w.locations[rank]}"
        n = self._entered[rank]
        return f"finished the kernel after {n} collective{'' if n == 1 else 's'}"

    def _deadlock(self) -> CollectiveDeadlockError:
        """No rank can go on: name a waiting rank and a member that never arrives."""
        rank = next(r for r in range(self.world_size) if self._waits[r] is not None)
        w = self._waits[rank]
        assert w is not None
        peer = next(m for m in w.members if m not in w.payloads)
        return CollectiveDeadlockError(
            f"collective deadlock: rank {rank} waits at {w.name} for rank {peer}, but rank "
            f"{peer} {self._state(peer)}, so it never comes. Every member of a rank-list "
            "must enter the same collectives in the same order", w.locations[rank])


def _describe(signature: tuple) -> str:
    op, *rest = signature
    return f"{op}({', '.join(str(x) for x in rest)})"


# --------------------------------------------------------------------- the launch
def _per_rank(world_size: object, per_rank_inputs: object
              ) -> tuple[int, list[tuple[tuple, dict]]]:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise KernelUsageError(f"multi_rank_simulate: world_size must be a positive int, got "
                               f"{world_size!r}")
    if isinstance(per_rank_inputs, Mapping):
        if set(per_rank_inputs) != set(range(world_size)):
            raise KernelUsageError(f"multi_rank_simulate: per_rank_inputs needs one key per "
                                   f"rank 0..{world_size - 1}, got {sorted(per_rank_inputs)}")
        pairs = [per_rank_inputs[r] for r in range(world_size)]
    elif isinstance(per_rank_inputs, Sequence) and not isinstance(per_rank_inputs, str):
        pairs = list(per_rank_inputs)
        if len(pairs) != world_size:
            raise KernelUsageError(f"multi_rank_simulate: per_rank_inputs has {len(pairs)} "
                                   f"entries for world_size={world_size}")
    else:
        raise KernelUsageError("multi_rank_simulate: per_rank_inputs is a sequence (rank "
                               "order) or a mapping rank -> (args, kwargs)")
    out = []
    for rank, pair in enumerate(pairs):
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and isinstance(pair[0], tuple | list) and isinstance(pair[1], Mapping)):
            raise KernelUsageError(f"multi_rank_simulate: rank {rank}'s inputs must be an "
                                   f"(args tuple, kwargs dict) pair, got {pair!r}")
        out.append((tuple(pair[0]), dict(pair[1])))
    _check_same_specialization(out)
    return world_size, out


def _check_same_specialization(pairs: list[tuple[tuple, dict]]) -> None:
    """Tensors may differ in values only; every other argument is equal on every rank."""
    args0, kwargs0 = pairs[0]
    for rank, (args, kwargs) in enumerate(pairs[1:], start=1):
        if len(args) != len(args0) or set(kwargs) != set(kwargs0):
            raise KernelUsageError(f"multi_rank_simulate: rank {rank} passes other parameters "
                                   "than rank 0; every rank runs the same specialization")
        named = [(f"argument {i}", a, b) for i, (a, b) in enumerate(zip(args, args0, strict=True))]
        named += [(f"argument {k!r}", kwargs[k], kwargs0[k]) for k in kwargs0]
        for what, value, first in named:
            if _is_array_like(value) or _is_array_like(first):
                (sa, da), (sb, db) = _spec(value), _spec(first)
                if sa != sb or da != db:
                    raise KernelUsageError(
                        f"multi_rank_simulate: {what} is {da}{list(sa)} on rank {rank} but "
                        f"{db}{list(sb)} on rank 0; tensors must have one shape and dtype on "
                        "every rank")
                continue
            try:
                same = bool(value == first)
            except Exception:  # noqa: BLE001 - an object without a usable ==
                same = value is first
            if not same:
                raise KernelUsageError(f"multi_rank_simulate: {what} is {value!r} on rank "
                                       f"{rank} but {first!r} on rank 0; non-tensor arguments "
                                       "must be equal on every rank")


def _spec(value: object) -> tuple[tuple[int, ...], str]:
    """(shape, dtype name) of an array-like argument (a TensorSpec included)."""
    if isinstance(value, TensorSpec):
        return value.shape, value.dtype.name  # type: ignore[attr-defined]
    arr = value if hasattr(value, "shape") and hasattr(value, "dtype") else np.asarray(value)
    return tuple(arr.shape), str(arr.dtype).removeprefix("torch.")


def multi_rank_trace(kernel: object, *, world_size: int, per_rank_inputs: object,
                     symbolic: bool = False, chip: object = None) -> list[TraceResult]:
    """Run `kernel` as every rank of a `world_size` world in this process; each rank's
    `TraceResult` (outputs and instruction stream), in rank order. See the module doc."""
    k: Kernel = _as_kernel(kernel)
    if k.lnc != 1:
        raise KernelUsageError(f"{k.fn.__name__}[{k.lnc}]: multi-rank runs launch each rank "
                               "with LNC=1; ranks of two physical cores are not modelled")
    n, pairs = _per_rank(world_size, per_rank_inputs)
    mode = ExecMode.SYMBOLIC if symbolic else ExecMode.FUNCTIONAL
    target = chip or default_chip()
    scheduler = RankScheduler(n)
    results: list[TraceResult | None] = [None] * n

    def body(rank: int) -> None:
        _local.binding = RankBinding(scheduler, rank, n)
        try:
            args, kwargs = pairs[rank]
            results[rank] = _launch(k, args, kwargs, mode, target)
        finally:
            _local.binding = _SINGLE

    scheduler.run(body)
    return [r for r in results if r is not None]


def multi_rank_simulate(kernel: object, *, world_size: int, per_rank_inputs: object
                        ) -> list[object]:
    """`nki.multi_rank_simulate`: run `kernel` on `world_size` ranks in one CPU process.

    `per_rank_inputs` gives each rank an (args, kwargs) pair, as a sequence in rank order or
    a mapping rank -> pair. Tensors (numpy arrays) may differ across ranks in values only;
    every other argument must be equal on every rank. Returns each rank's outputs, in rank
    order. Each rank has HBM of its own; ranks communicate only through `nki.collectives`.
    """
    traces = multi_rank_trace(kernel, world_size=world_size, per_rank_inputs=per_rank_inputs)
    return [t.outputs for t in traces]
