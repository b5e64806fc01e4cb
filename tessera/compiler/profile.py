"""A compiled model's predicted time: per op, per layer (module path) and in total.

The model's time is the sum of its ops' times: the compiled graph runs as one instruction
stream on one NeuronCore, one op after the other, and each op's estimate already includes
its own DMA fixed latency and pipeline fill. No launch gap is added between ops (the graph
is one compiled program: nothing is launched per op), and no overlap between neighbouring
ops is credited (the next op's loads could start under the previous op's tail on the real
chip), so the sum is an upper bound of a graph-level schedule; see docs/compiler.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tessera.compiler.passes.memory import MemoryPlan
from tessera.compiler.price import OpCost, PriceKind

TOP = "(top)"  # the ops traced at the top module itself


def layer_names(modules: Iterable[str]) -> dict[str, str]:
    """Module path -> the layer it belongs to, as a reader of the model names its layers.

    A path with a numeric component (an item of a ModuleList or Sequential) belongs to that
    block: `model.layers.3.self_attn.q_proj` -> `model.layers.3`, `encoder.layer.5.output`
    -> `encoder.layer.5`, `h.0.mlp` -> `h.0`. Any other path is cut to its shortest prefix
    that does not contain a block list, so siblings of the blocks stay apart
    (`model.embed_tokens`, `model.norm`, `lm_head`) and a module's parts stay together
    (`embeddings.word_embeddings` -> `embeddings`). The top module's own ops are "(top)".
    """
    paths = set(modules)
    containers = set()
    for path in paths:
        parts = path.split(".") if path else []
        for i, part in enumerate(parts):
            if part.isdigit():
                containers.add(".".join(parts[:i]))
                break
    out = {}
    for path in paths:
        parts = path.split(".") if path else []
        numeric = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        if not parts:
            out[path] = TOP
        elif numeric is not None:
            out[path] = ".".join(parts[:numeric + 1])
        else:
            cut = next((i for i in range(1, len(parts) + 1) if not any(
                c == ".".join(parts[:i]) or c.startswith(".".join(parts[:i]) + ".")
                for c in containers)), len(parts))
            out[path] = ".".join(parts[:cut])
    return out


@dataclass(frozen=True)
class LayerTime:
    """The ops of one module path (or a prefix of it) together."""

    module: str
    time_s: float
    ops: int
    flops: float
    hbm_bytes: float


@dataclass(frozen=True)
class ModelProfile:
    """Per-op costs of a compiled model and what they add up to."""

    chip: str
    fidelity: str
    ops: tuple[OpCost, ...]
    memory: MemoryPlan
    # the total: sum of the ops (see the module docstring)

    @property
    def total_s(self) -> float:
        return sum(op.time_s for op in self.ops)

    @property
    def device_s(self) -> float:
        """Time on the device (host fallback ops excluded)."""
        return sum(op.time_s for op in self.ops if op.priced_as != PriceKind.HOST)

    @property
    def host_s(self) -> float:
        return sum(op.time_s for op in self.ops if op.priced_as == PriceKind.HOST)

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.ops)

    @property
    def hbm_bytes(self) -> float:
        return sum(op.hbm_bytes for op in self.ops)

    @property
    def peak_sbuf_bytes(self) -> int:
        """Per partition, the most any op's kernel holds (SIMULATED only; 0 at ROOFLINE)."""
        return max((op.peak_sbuf_bytes for op in self.ops), default=0)

    @property
    def peak_hbm_bytes(self) -> int:
        return self.memory.peak_bytes

    def busy_s(self) -> dict[str, float]:
        """Busy time per resource (engine name, "hbm", "host") summed over the ops."""
        out: dict[str, float] = {}
        for op in self.ops:
            for r, b in op.busy_s:
                out[r] = out.get(r, 0.0) + b
        return out

    def utilisation(self) -> dict[str, float]:
        """Busy time per resource over the total time (DMA: summed over its engines)."""
        total = self.total_s
        return {r: (b / total if total else 0.0) for r, b in self.busy_s().items()}

    def by_module(self, depth: int | None = None) -> tuple[LayerTime, ...]:
        """Time per module path, cut to its first `depth` components (`layers.3` at depth
        2), in the order the model first reaches each."""
        groups: dict[str, list[OpCost]] = {}
        for op in self.ops:
            parts = op.module.split(".") if op.module else []
            key = ".".join(parts[:depth] if depth is not None else parts)
            groups.setdefault(key, []).append(op)
        return tuple(LayerTime(k or TOP, sum(o.time_s for o in v), len(v),
                               sum(o.flops for o in v), sum(o.hbm_bytes for o in v))
                     for k, v in groups.items())

    def layer_of(self, op: OpCost) -> str:
        """The layer `op` belongs to (see `layer_names`)."""
        return self._layers()[op.module]

    def _layers(self) -> dict[str, str]:
        cached = self.__dict__.get("_layer_names")
        if cached is None:  # frozen dataclass: memoised outside the fields
            cached = layer_names(op.module for op in self.ops)
            object.__setattr__(self, "_layer_names", cached)
        return cached

    def by_layer(self) -> tuple[LayerTime, ...]:
        """Time per layer (`layer_names`: `layers.3`, `model.embed_tokens`, `lm_head`), in
        the order the model first reaches each."""
        groups: dict[str, list[OpCost]] = {}
        for op in self.ops:
            groups.setdefault(self.layer_of(op), []).append(op)
        return tuple(LayerTime(k, sum(o.time_s for o in v), len(v),
                               sum(o.flops for o in v), sum(o.hbm_bytes for o in v))
                     for k, v in groups.items())

    def by_phase(self) -> dict[str, float]:
        """Time per phase ("forward", "backward")."""
        out: dict[str, float] = {}
        for op in self.ops:
            out[op.phase] = out.get(op.phase, 0.0) + op.time_s
        return out

    def top(self, n: int = 10) -> tuple[OpCost, ...]:
        """The `n` costliest ops."""
        return tuple(sorted(self.ops, key=lambda o: -o.time_s)[:n])

    def format(self, depth: int | None = None, top: int = 8) -> str:
        """A text summary: total, per layer (`by_layer`; or per module path cut to `depth`
        components when given), costliest ops."""
        lines = [f"{len(self.ops)} ops on {self.chip} ({self.fidelity}): "
                 f"{_t(self.total_s)} predicted, {self.flops / 1e9:.3g} GFLOP, "
                 f"{self.hbm_bytes / 1e6:.3g} MB of HBM traffic, peak HBM "
                 f"{self.peak_hbm_bytes / 1e6:.3g} MB"]
        if self.host_s:
            lines.append(f"  host fallback ops: {_t(self.host_s)}")
        phases = self.by_phase()
        if len(phases) > 1:
            lines.append("  " + ", ".join(f"{k} {_t(v)}" for k, v in phases.items()))
        lines.append("per layer:")
        rows = _runs(self.by_layer() if depth is None else self.by_module(depth))
        width = max((len(name) for name, _, _ in rows), default=0)
        for name, layer, count in rows:
            time_s = layer.time_s * count
            share = time_s / self.total_s if self.total_s else 0.0
            each = f"  ({count} x {_t(layer.time_s)}, {layer.ops} ops each)" if count > 1 \
                else f"  {layer.ops} ops"
            lines.append(f"  {name:<{width}} {_t(time_s):>10}  {share:6.1%}{each}")
        lines.append("costliest ops:")
        for op in self.top(top):
            what = "+".join(dict.fromkeys(op.kernels)) or op.priced_as
            lines.append(f"  {op.node:<24} {what:<22} {_t(op.time_s):>10}  bound by "
                         f"{op.bound}  ({op.module or 'top'})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _runs(rows: tuple[LayerTime, ...]) -> list[tuple[str, LayerTime, int]]:
    """Consecutive identical blocks (`layers.0`, `layers.1`, ... with the same time and op
    count) as one row `layers.0-31` with their count: a 32-layer model reads in a few
    lines."""
    out: list[tuple[str, LayerTime, int]] = []
    for row in rows:
        stem, _, index = row.module.rpartition(".")
        if out and index.isdigit():
            name, first, count = out[-1]
            prev_stem, _, prev_index = first.module.rpartition(".")
            if (prev_stem == stem and prev_index.isdigit()
                    and int(prev_index) + count == int(index) and first.ops == row.ops
                    and math.isclose(first.time_s, row.time_s, rel_tol=1e-9)):
                out[-1] = (f"{first.module}-{index}", first, count + 1)
                continue
        out.append((row.module, row, 1))
    return out


def _t(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} us"
