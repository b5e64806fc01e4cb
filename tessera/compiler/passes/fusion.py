"""Fusion: neighbouring ops that one library kernel runs together.

* matmul epilogue: an activation (silu, gelu, gelu-tanh, relu) whose only input is a
  Linear/addmm with no other reader runs on the matmul's PSUM -> SBUF copy (the library
  matmul's `activation=`), so its tensor never goes to HBM;
* SwiGLU: `mul(silu(gate), up)` where the silu has no other reader becomes the library
  `swiglu` kernel (one pass over both operands instead of two).

Each rewrite keeps the graph's order and renames readers of the removed value to the fused
node; `verify()` holds after every rewrite (tests run it).
"""

from __future__ import annotations

import dataclasses

from tessera.compiler.frontend import base_name
from tessera.compiler.graph import Graph, Node, NodeKind

_EPILOGUE = {"silu": "silu", "relu": "relu"}


def _activation_name(node: Node) -> str | None:
    base = base_name(node.op)
    if base in _EPILOGUE:
        return _EPILOGUE[base]
    if base == "gelu":
        approximate = dict(node.attr("kwargs", ())).get("approximate", "none")
        args = node.attr("args", ())
        if len(args) > 1:
            approximate = args[1]
        return "gelu_tanh" if approximate == "tanh" else "gelu"
    return None


def fuse_matmul_activation(graph: Graph) -> Graph:
    """Fold single-reader activations into the Linear/addmm that feeds them."""
    users = graph.users()
    by_name = {n.name: n for n in graph.nodes}
    replaced: dict[str, Node] = {}
    removed: dict[str, str] = {}  # activation node -> the matmul that now produces it
    for node in graph.nodes:
        act = _activation_name(node)
        if act is None or len(node.inputs) != 1:
            continue
        src = by_name.get(node.inputs[0])
        if src is None or base_name(src.op) not in ("linear", "addmm") \
                or len(users[src.name]) != 1 or src.attr("activation") is not None \
                or src.dtype != node.dtype:
            continue
        attrs = tuple(sorted((*src.attrs, ("activation", act))))
        replaced[src.name] = dataclasses.replace(src, attrs=attrs)
        removed[node.name] = src.name
    return _rebuild(graph, replaced, removed)


def fuse_swiglu(graph: Graph) -> Graph:
    """mul(silu(gate), up) -> swiglu(gate, up)."""
    users = graph.users()
    by_name = {n.name: n for n in graph.nodes}
    replaced: dict[str, Node] = {}
    removed: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "aten.mul.Tensor" or len(node.inputs) != 2:
            continue
        for gate_i, other in ((0, 1), (1, 0)):
            silu = by_name.get(node.inputs[gate_i])
            if silu is None or base_name(silu.op) != "silu" or len(users[silu.name]) != 1:
                continue
            up = node.inputs[other]
            if graph.shape_of(up) != silu.shape or node.shape != silu.shape \
                    or graph.dtype_of(up) != silu.dtype:
                continue
            replaced[node.name] = Node(node.name, NodeKind.KERNEL, "swiglu",
                                       (silu.inputs[0], up), node.shape, node.dtype,
                                       (), node.module)
            removed[silu.name] = ""  # nothing reads it any more
            break
    return _rebuild(graph, replaced, removed)


def _rebuild(graph: Graph, replaced: dict[str, Node], removed: dict[str, str]) -> Graph:
    """Apply replacements, drop removed nodes and point their readers at the new producer."""
    if not replaced and not removed:
        return graph
    rename = {old: new for old, new in removed.items() if new}
    nodes = []
    for node in graph.nodes:
        if node.name in removed:
            continue
        node = replaced.get(node.name, node)
        if any(i in rename for i in node.inputs):
            node = dataclasses.replace(node, inputs=tuple(rename.get(i, i) for i in node.inputs))
        nodes.append(node)
    outputs = [rename.get(o, o) for o in graph.outputs]
    return graph.replace_nodes(nodes, outputs=outputs)
