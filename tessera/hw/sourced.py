"""Provenance of hardware numbers: every number in a preset says where it came from.

Spec dataclasses hold plain numbers (so `core.sbuf.partitions` is an int) and keep a
`sources` map from field name to `Provenance`. `Sourced` joins a value with its provenance
for display and for code that wants both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Status(StrEnum):
    """How much a number can be trusted."""

    PUBLISHED = "published"  # stated by the vendor or the cited page
    DERIVED = "derived"  # our arithmetic on published numbers; formula in the source
    UNCERTAIN = "uncertain"  # conflicting or third-party figures; the note says why
    UNKNOWN = "unknown"  # not published: value is None and the note gives the reason
    OVERRIDDEN = "overridden"  # replaced by `with_overrides` (what-if hardware)


@dataclass(frozen=True)
class Provenance:
    """Where a number comes from: a citation, its status and an optional note.

    `source` is the full citation (document title, URL, section); `cited_as` is the short form
    written in the preset (e.g. "[A2] compute engines table"), which displays compactly.
    """

    source: str
    status: Status = Status.PUBLISHED
    note: str = ""
    cited_as: str = ""


@dataclass(frozen=True)
class Sourced(Generic[V]):
    """A value together with its provenance (the `Sourced` value type of the design)."""

    value: V | None
    source: str
    status: Status = Status.PUBLISHED
    note: str = ""

    @property
    def known(self) -> bool:
        """False when the fact is not published (value is None)."""
        return self.value is not None


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping, so frozen specs stay hashable (cost caches key on them)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def replace(self, key: K, value: V) -> FrozenMap[K, V]:
        """A copy with one entry set."""
        data = dict(self._data)
        data[key] = value
        return FrozenMap(data)


def as_plain(value: Any) -> Any:
    """Enum members and frozen maps turned into plain Python values (for display and JSON)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {as_plain(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [as_plain(v) for v in value]
    return value
