"""Constant folding: nodes that read only compile-time constants become constants.

Positions, rotary cos/sin tables and masks built from `arange` depend on no input once
shapes are static; computing them here (with the node's own ATen op) leaves the device only
the work that depends on the model's inputs and weights. Parameters are not folded into:
they are the model's state, loaded like inputs. In symbolic mode (no values) nothing folds.
"""

from __future__ import annotations

from tessera.compiler.graph import Graph, Value, ValueRole
from tessera.compiler.lowering import replay


def fold_constants(graph: Graph) -> Graph:
    """The graph with every node whose inputs are all CONSTANT inputs replaced by one."""
    roles = {v.name: v.role for v in graph.inputs}
    constants = dict(graph.constants)
    inputs = list(graph.inputs)
    nodes = []
    for node in graph.nodes:
        foldable = node.inputs and all(
            roles.get(i) is ValueRole.CONSTANT and i in constants for i in node.inputs)
        if not foldable:
            nodes.append(node)
            continue
        value = replay(node)([constants[i] for i in node.inputs])
        constants[node.name] = value
        roles[node.name] = ValueRole.CONSTANT
        inputs.append(Value(node.name, ValueRole.CONSTANT, node.shape, node.dtype))
    return graph.replace_nodes(nodes, inputs=inputs, constants=constants)
