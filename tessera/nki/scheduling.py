"""The NKI scheduling API: instruction handles, `depends_on`, `no_reorder`, `with_schedule`.

Per the NKI documentation ("How to Use the NKI Scheduling APIs", "nki.language.no_reorder",
"nki.isa.NkiInstruction", "nki.isa.dependency"):

- every `nisa.*` call returns an `NkiInstruction`; `consumer.depends_on(*producers,
  kind=...)` adds an edge. `dependency.runtime` is a hardware semaphore wait (the consumer
  starts after the producer has finished); `dependency.schedule` only constrains the issue
  order (the consumer starts no earlier than the producer starts; engines may overlap).
  Without `kind` the edge is a runtime one, as before the parameter existed.
- `with nl.no_reorder():` keeps the block's instructions in program order (an edge between
  each instruction and the next, dynamically scoped).
- `kernel.with_schedule([("consumer", "producer" or [...]), ...])` adds edges between the
  instructions whose `name=` match, before scheduling.

The edges travel with the trace (`TraceResult.edges`, stream positions) to `tessera.sim`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from tessera.nki.errors import KernelUsageError, NkiError

if TYPE_CHECKING:  # the handle holds the per-core context; runtime imports this module
    from tessera.nki.runtime import CoreContext


class dependency(Enum):  # noqa: N801 - NKI's spelling (`nki.isa.dependency`)
    """What a `depends_on` edge enforces."""

    runtime = "runtime"  # a semaphore wait: after the producer has finished
    schedule = "schedule"  # issue order only: no earlier than the producer starts


@dataclass(frozen=True)
class ScheduleEdge:
    """`consumer` (a stream position) waits for `producer` as `kind` says."""

    consumer: int
    producer: int
    kind: dependency


class NkiInstruction:
    """The instruction(s) one `nisa.*` call issued, for adding dependencies."""

    def __init__(self, ctx: CoreContext, first: int, end: int) -> None:
        self._ctx, self.first, self.end = ctx, first, end

    def depends_on(self, *producers: NkiInstruction,
                   kind: dependency | None = None) -> NkiInstruction:
        """This instruction waits for `producers` (`kind`: `nisa.dependency.runtime`, the
        default, or `.schedule`); returns self, so calls chain."""
        try:
            self._add(producers, kind)
        except NkiError as err:
            raise err.with_location(_caller()) from None
        return self

    def _add(self, producers: tuple[NkiInstruction, ...], kind: dependency | None) -> None:
        kind = dependency.runtime if kind is None else kind
        if not isinstance(kind, dependency):
            raise KernelUsageError(f"depends_on: kind must be nisa.dependency.runtime or "
                                   f".schedule, got {kind!r}")
        for producer in producers:
            if not isinstance(producer, NkiInstruction):
                raise KernelUsageError(f"depends_on: a producer must be the handle a nisa "
                                       f"call returned, got {type(producer).__name__}")
            if producer._ctx is not self._ctx:
                raise KernelUsageError("depends_on: both instructions must be issued by the "
                                       "same core")
            if producer.first < self.end and self.first < producer.end:
                raise KernelUsageError("depends_on: an instruction cannot wait for itself")
            for consumer in range(self.first, self.end):
                for p in range(producer.first, producer.end):
                    self._ctx.edges.append((consumer, p, kind.value))

    def __repr__(self) -> str:
        insts = self._ctx.stream[self.first:self.end]
        return f"NkiInstruction({', '.join(i.opcode.value for i in insts)})"


def _caller() -> str:
    from tessera.nki.runtime import kernel_location  # runtime imports this module

    return str(kernel_location())


@contextlib.contextmanager
def no_reorder() -> Iterator[None]:
    """`with nl.no_reorder():` the block's instructions execute in program order."""
    from tessera.nki.runtime import current  # the language module imports this one

    ctx = current()
    if ctx.no_reorder_depth == 0:
        ctx.no_reorder_last = None
    ctx.no_reorder_depth += 1
    try:
        yield
    finally:
        ctx.no_reorder_depth -= 1
        if ctx.no_reorder_depth == 0:
            ctx.no_reorder_last = None


def schedule_pairs(pairs: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Check `with_schedule`'s argument: `[("consumer", "producer" or ["p1", ...]), ...]`."""
    try:
        return _pairs(pairs)
    except NkiError as err:
        raise err.with_location(_caller()) from None


def _pairs(pairs: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if isinstance(pairs, str | bytes) or not hasattr(pairs, "__iter__"):
        raise KernelUsageError(f"with_schedule needs a list of (consumer, producers) name "
                               f"pairs, got {type(pairs).__name__}")
    out = []
    for pair in pairs:  # type: ignore[attr-defined]
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise KernelUsageError(f"with_schedule: each entry is (consumer name, producer "
                                   f"name or list of names), got {pair!r}")
        consumer, producers = pair
        producers = (producers,) if isinstance(producers, str) else tuple(producers)
        if not producers or not all(isinstance(p, str) for p in producers):
            raise KernelUsageError(f"with_schedule: the producers of {consumer!r} must be "
                                   f"instruction names, got {pair[1]!r}")
        out.append((consumer, producers))
    return tuple(out)


def named_edges(pairs: tuple[tuple[str, tuple[str, ...]], ...],
                calls: list[tuple[str, int, int]], kind: dependency
                ) -> list[tuple[int, int, str]]:
    """`with_schedule` pairs as (consumer, producer, kind) index edges of one core.

    `calls` are the core's named nisa calls, (name, first, end) in program order. A name
    issued once pairs with every call of the other name; a name issued in a loop pairs
    call by call with another issued as often (the k-th consumer waits for the k-th
    producer, as each iteration's instructions depend on each other)."""
    by_name: dict[str, list[tuple[int, int]]] = {}
    for name, first, end in calls:
        by_name.setdefault(name, []).append((first, end))
    edges: list[tuple[int, int, str]] = []
    for consumer, producers in pairs:
        for name in (consumer, *producers):
            if name not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                raise KernelUsageError(f"with_schedule: no instruction is named {name!r} "
                                       f"(names given with name=...: {known})")
        if consumer in producers:
            raise KernelUsageError(f"with_schedule: {consumer!r} cannot wait for itself")
        cons = by_name[consumer]
        for producer in producers:
            prods = by_name[producer]
            if len(cons) == len(prods):
                matched = list(zip(cons, prods, strict=True))
            elif len(prods) == 1 or len(cons) == 1:
                matched = [(c, p) for c in cons for p in prods]
            else:
                raise KernelUsageError(
                    f"with_schedule: {consumer!r} is issued {len(cons)} times and "
                    f"{producer!r} {len(prods)} times; pair names issued equally often, "
                    "or once")
            for (c0, c1), (p0, p1) in matched:
                edges += [(c, p, kind.value) for c in range(c0, c1) for p in range(p0, p1)]
    return edges
