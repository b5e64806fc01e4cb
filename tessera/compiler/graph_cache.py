"""The on-disk cache of compiled graphs' prices: a second compile of a model is fast.

A compiled graph's ops are priced once per (graph, chip, fidelity) and stored in
`graphs.json` under Tessera's cache folder (`cost.cache.cache_dir()`), keyed by a hash of
the graph's text form (ops, shapes, attributes, module paths) and of its lowering (the
kernels each node runs), and tagged with a fingerprint of everything that turns a graph
into a time: the timing model and hardware (`cost.cache.model_fingerprint`), the kernel
library and the compiler's own sources. A change to any of them misses the cache. Graphs
with user kernels are not cached (their source is not part of the key).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

from tessera.compiler.graph import Graph, NodeKind
from tessera.compiler.lowering import Lowered
from tessera.compiler.price import OpCost
from tessera.cost.cache import JsonCache, model_fingerprint

_FILE = "graphs.json"
_PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def fingerprint() -> str:
    """The timing model's fingerprint plus the kernel library's and the compiler's."""
    digest = hashlib.sha256(model_fingerprint().encode())
    for folder in ("kernels", "compiler", "cost"):
        for path in sorted((_PACKAGE / folder).rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def graph_key(graph: Graph, lowered: dict[str, Lowered], chip: str, fidelity: str) -> str:
    """A hash of the graph, its lowering, the chip and the fidelity."""
    digest = hashlib.sha256(graph.format().encode())
    for node in graph.nodes:
        low = lowered[node.name]
        digest.update(repr((node.name, [(c.kernel, sorted(c.shapes.items()), c.dtype,
                                         c.calls, c.factor) for c in low.kernels],
                            low.moved_bytes, low.host)).encode())
    digest.update(f"|{chip}|{fidelity}".encode())
    return digest.hexdigest()[:24]


def load(key: str) -> tuple[OpCost, ...] | None:
    """The priced ops stored under `key`, if any are valid for this Tessera."""
    payload = JsonCache(_FILE).get(key, fingerprint())
    if payload is None:
        return None
    try:
        return tuple(_op(d) for d in payload["ops"])
    except (KeyError, TypeError, ValueError):
        return None


def store(key: str, ops: tuple[OpCost, ...]) -> None:
    """Remember the priced ops of a graph."""
    JsonCache(_FILE).put(key, fingerprint(), {"ops": [_row(op) for op in ops]})


def _row(op: OpCost) -> dict:
    row = dataclasses.asdict(op)
    row["kind"] = op.kind.value
    return row


def _op(row: dict) -> OpCost:
    return OpCost(**{**row, "kind": NodeKind(row["kind"]),
                     "kernels": tuple(row["kernels"]),
                     "busy_s": tuple((str(r), float(b)) for r, b in row["busy_s"])})
