"""Base classes shared by every hardware spec dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tessera.hw.sourced import FrozenMap, Provenance, Sourced

# Field metadata keys understood by the loader.
INTERNAL = "internal"  # filled by the loader, never read from YAML
REF = "ref"  # YAML gives a preset name (or an inline mapping) of these kinds

_EMPTY: FrozenMap[str, Provenance] = FrozenMap()


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A frozen group of hardware facts.

    Numeric, boolean and tuple fields hold plain values in SI units; `sources` maps each such
    field name (or `field.key` for mapping entries) to its `Provenance`.
    """

    sources: FrozenMap[str, Provenance] = field(
        default=_EMPTY, repr=False, compare=False, metadata={INTERNAL: True}
    )

    def sourced(self, name: str) -> Sourced[Any]:
        """The value of field `name` (or `field.key` of a mapping field) with its provenance."""
        head, _, key = name.partition(".")
        value = getattr(self, head)
        if key:
            value = {getattr(k, "value", k): v for k, v in value.items()}.get(key)
        prov = self.sources.get(name)
        if prov is None:
            raise KeyError(f"{type(self).__name__} has no sourced field {name!r}")
        return Sourced(value, prov.source, prov.status, prov.note)

    def field_names(self) -> tuple[str, ...]:
        """Names of the fields that come from YAML (in declaration order)."""
        return tuple(
            f.name for f in dataclasses.fields(self) if f.init and not f.metadata.get(INTERNAL)
        )


@dataclass(frozen=True, kw_only=True)
class Preset(Spec):
    """A top-level preset: something that can be looked up by name."""

    name: str
    display_name: str
    aliases: tuple[str, ...]
    origin: str = field(default="", compare=False, metadata={INTERNAL: True})

    @property
    def kind(self) -> str:
        """The preset kind ('core', 'chip', 'gpu', 'instance')."""
        return type(self).KIND  # type: ignore[attr-defined]
