"""Dead code: drop nodes and constant inputs that no output depends on."""

from __future__ import annotations

from tessera.compiler.graph import Graph, ValueRole


def dead_code(graph: Graph) -> Graph:
    """The graph without nodes whose values reach no output, and without the parameters,
    buffers and constants nothing reads any more (user inputs stay: they are the call's
    signature)."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if node.name in live:
            kept.append(node)
            live.update(node.inputs)
    kept.reverse()
    inputs = [v for v in graph.inputs if v.role is ValueRole.USER or v.name in live]
    constants = {k: v for k, v in graph.constants.items() if k in live}
    return graph.replace_nodes(kept, inputs=inputs, constants=constants)
