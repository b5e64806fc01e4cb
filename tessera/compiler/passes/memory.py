"""HBM memory plan: what the compiled model keeps in device memory, and its peak.

Weights, buffers and constants stay resident for the whole call; every other value lives
from the node that produces it to its last reader (in graph order), except views, which
share their input's bytes. The peak is the resident bytes plus the largest sum of live
values at any node (the value being produced included): what HBM must hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.compiler.graph import Graph, ValueRole
from tessera.compiler.lowering import Lowered


@dataclass(frozen=True)
class MemoryPlan:
    """Device memory of one call, in bytes."""

    resident_bytes: int  # parameters, buffers, constants
    input_bytes: int  # the user's inputs
    peak_activation_bytes: int  # the most intermediate values live at once
    peak_node: str  # where that peak is reached

    @property
    def peak_bytes(self) -> int:
        return self.resident_bytes + self.input_bytes + self.peak_activation_bytes


def plan_memory(graph: Graph, lowered: dict[str, Lowered]) -> MemoryPlan:
    """Liveness over the graph order (see the module docstring)."""
    resident = sum(v.num_bytes for v in graph.inputs if v.role is not ValueRole.USER)
    user = sum(v.num_bytes for v in graph.inputs if v.role is ValueRole.USER)
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.inputs:
            last_use[name] = i
    for name in graph.outputs:
        last_use[name] = len(graph.nodes)
    size = {n.name: (0 if lowered[n.name].is_view else n.num_bytes) for n in graph.nodes}
    live = 0
    peak, peak_node = 0, ""
    dying: dict[int, list[str]] = {}
    for name, i in last_use.items():
        dying.setdefault(i, []).append(name)
    for i, node in enumerate(graph.nodes):
        live += size[node.name]
        if live > peak:
            peak, peak_node = live, node.name
        for name in dying.get(i, ()):
            live -= size.get(name, 0)
        if node.name not in last_use:  # produced and never read
            live -= size[node.name]
    return MemoryPlan(resident, user, peak, peak_node)
