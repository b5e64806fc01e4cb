"""Fusion: neighbouring ops that one library kernel runs together.

* matmul epilogue: an activation (silu, gelu, gelu-tanh, relu) whose only input is a
  Linear/addmm with no other reader runs on the matmul's PSUM -> SBUF copy (the library
  matmul's `activation=`), so its tensor never goes to HBM;
* SwiGLU: `mul(silu(gate), up)` where the silu has no other reader becomes the library
  `swiglu` kernel (one pass over both operands instead of two);
* residual add into the norm: `rms_norm(add(x, r), ...)` becomes the library
  `add_rmsnorm`, which returns the sum and its norm `(h, y)`: the sum is normalised while
  it is in SBUF instead of going to HBM and coming back. The add and the norm become two
  `getitem` views of the fused node (keeping their names, so their readers are unchanged),
  all three where the norm was and in the norm's module; fused only when nothing between
  the add and the norm reads the sum (in a pre-norm block the norm follows the add).

Each rewrite keeps the graph's order and renames readers of the removed value to the fused
node; `verify()` holds after every rewrite (tests run it).
"""

from __future__ import annotations

import dataclasses

from tessera.compiler.frontend import base_name
from tessera.compiler.graph import Arg, Graph, Node, NodeKind, make_attrs
from tessera.compiler.lowering import RMS_NORM_EPS, supports

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


def fuse_residual_norm(graph: Graph) -> Graph:
    """rms_norm(add(x, r), [H], w, eps) -> add_rmsnorm(x, r, w) giving (h, y)."""
    by_name = {n.name: n for n in graph.nodes}
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    readers = graph.users()
    dropped: set[str] = set()  # the fused adds
    at_norm: dict[str, tuple[Node, ...]] = {}  # norm name -> fused node, h view, y view
    for node in graph.nodes:
        found = _residual_norm(node, by_name, graph)
        if found is None or found[0].name in dropped:
            continue
        add, weight, eps = found
        if any(position[r] < position[node.name] for r in readers[add.name]
               if r != node.name):
            continue  # the sum is read before the norm: it must exist there
        fused = Node(f"{add.name}_{node.name}", NodeKind.KERNEL, "add_rms_norm",
                     (*add.inputs, weight), node.shape, node.dtype, (("eps", eps),),
                     node.module)
        h = dataclasses.replace(_item(add, fused.name, 0), module=node.module)
        at_norm[node.name] = (fused, h, _item(node, fused.name, 1))
        dropped.add(add.name)
    if not at_norm:
        return graph
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.name not in dropped:
            nodes += at_norm.get(node.name, (node,))
    return graph.replace_nodes(nodes, outputs=list(graph.outputs))


def _residual_norm(node: Node, by_name: dict[str, Node], graph: Graph
                   ) -> tuple[Node, str, float] | None:
    """(the add, the weight's value name, eps) when `node` is an rms_norm of a plain
    same-shape float add with a weight over the last axis; else None."""
    if base_name(node.op) != "rms_norm" or not supports("add_rmsnorm", node.dtype):
        return None
    args = list(node.attr("args", ()))
    kwargs = dict(node.attr("kwargs", ()))
    names = ("input", "normalized_shape", "weight", "eps")
    call = {**dict(zip(names, args, strict=False)), **kwargs}
    source, weight = call.get("input"), call.get("weight")
    if not isinstance(source, Arg) or not isinstance(weight, Arg) \
            or len(tuple(call.get("normalized_shape", ()))) != 1:
        return None
    add = by_name.get(node.inputs[source.index])
    if add is None or add.op != "aten.add.Tensor" or len(add.inputs) != 2 \
            or len(add.attr("args", ())) != 2 or add.attr("kwargs", ()) \
            or add.dtype != node.dtype \
            or any(graph.shape_of(i) != add.shape or graph.dtype_of(i) != add.dtype
                   for i in add.inputs):
        return None
    eps = call.get("eps")
    eps = RMS_NORM_EPS if eps is None else float(eps)
    return add, node.inputs[weight.index], eps


def _item(node: Node, source: str, index: int) -> Node:
    """`node` as element `index` of the tuple `source` produces (a view)."""
    return Node(node.name, NodeKind.RESHAPE, "getitem", (source,), node.shape, node.dtype,
                make_attrs({"args": (Arg(0), index), "kwargs": {}}), node.module)


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
