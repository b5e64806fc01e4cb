"""Prices of instances, with their date and source; an unknown price stays unknown."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.hw import InstanceSpec


@dataclass(frozen=True)
class Price:
    """On-demand price of one instance per hour (None when no source gives one)."""

    usd_per_hour: float | None
    as_of: str
    source: str

    def label(self) -> str:
        """`$21.50/h (2023-02-27)` or `unknown`."""
        if self.usd_per_hour is None:
            return "unknown"
        return f"${self.usd_per_hour:,.2f}/h ({self.as_of})"


def price_of(instance: InstanceSpec) -> Price:
    """The instance preset's on-demand price and its provenance."""
    p = instance.price
    prov = p.sources.get("on_demand_usd_per_hour")
    source = "" if prov is None else (prov.cited_as or prov.source)
    return Price(p.on_demand_usd_per_hour, p.as_of, source)


@dataclass(frozen=True)
class Costs:
    """What a configuration costs to run (None where the price is unknown)."""

    usd_per_hour: float | None
    usd_per_million_tokens: float | None

    @classmethod
    def of(cls, price: Price, instances: int, tokens_per_s: float) -> Costs:
        """Costs of `instances` instances producing `tokens_per_s`."""
        if price.usd_per_hour is None:
            return cls(None, None)
        per_hour = price.usd_per_hour * instances
        return cls(per_hour, per_hour / (tokens_per_s * 3600.0) * 1e6)

    def to_train(self, tokens: float, tokens_per_s: float) -> tuple[float, float | None]:
        """(seconds, dollars) to train on `tokens` tokens."""
        seconds = tokens / tokens_per_s
        dollars = None if self.usd_per_hour is None else seconds / 3600.0 * self.usd_per_hour
        return seconds, dollars
