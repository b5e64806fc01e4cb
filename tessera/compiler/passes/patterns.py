"""Library ops written out by hand in the model's code, recognised and run whole.

Hugging Face's Llama family normalises with its own module, not `torch.nn.RMSNorm`:

    variance = x.to(float32).pow(2).mean(-1, keepdim=True)
    y = weight * (x.to(float32) * torch.rsqrt(variance + eps)).to(x.dtype)

which exports as `_to_copy`, `pow`, `mean`, `add`, `rsqrt`, `mul`, `_to_copy`, `mul`: six to
eight ops, each a pass over HBM. `recognise_rms_norm` finds that chain (the casts are
optional, either operand order of the last multiply) and replaces its last node by one
`aten.rms_norm` of the uncast input, keeping the node's name so its readers are unchanged;
the rest of the chain is left for dead-code elimination. The library kernel computes the
statistics in float32 as the hand-written form does.
"""

from __future__ import annotations

from tessera.compiler.graph import Arg, Graph, Node, NodeKind, make_attrs

_FLOATS = ("float32", "bfloat16")


def recognise_rms_norm(graph: Graph) -> Graph:
    """weight * (x * rsqrt(mean(x^2, -1) + eps)) -> rms_norm(x, [H], weight, eps)."""
    by_name = {n.name: n for n in graph.nodes}
    replaced: dict[str, Node] = {}
    for node in graph.nodes:
        found = _match(node, by_name, graph)
        if found is None:
            continue
        x, weight, eps = found
        width = node.shape[-1]
        replaced[node.name] = Node(
            node.name, NodeKind.KERNEL, "aten.rms_norm.default", (x, weight), node.shape,
            node.dtype, make_attrs({"args": (Arg(0), (width,), Arg(1), eps), "kwargs": {}}),
            node.module)
    if not replaced:
        return graph
    return graph.replace_nodes([replaced.get(n.name, n) for n in graph.nodes],
                               outputs=list(graph.outputs))


def _match(node: Node, by_name: dict[str, Node], graph: Graph
           ) -> tuple[str, str, float] | None:
    """(x, weight, eps) when `node` ends the hand-written RMSNorm chain; else None."""
    if node.op != "aten.mul.Tensor" or len(node.inputs) != 2 or node.dtype not in _FLOATS:
        return None
    width = node.shape[-1] if node.shape else 0
    for w_i in (0, 1):
        weight, other = node.inputs[w_i], node.inputs[1 - w_i]
        if graph.shape_of(weight) != (width,) or graph.dtype_of(weight) != node.dtype:
            continue
        scaled = _uncast(by_name.get(other), by_name)
        if scaled is None or scaled.op != "aten.mul.Tensor" or len(scaled.inputs) != 2:
            continue
        for x_i in (0, 1):
            chain = _statistics(by_name.get(scaled.inputs[1 - x_i]), by_name)
            if chain is None or chain[0] != scaled.inputs[x_i]:
                continue
            x = _source(by_name.get(scaled.inputs[x_i]), scaled.inputs[x_i])
            if graph.shape_of(x) == node.shape and graph.dtype_of(x) == node.dtype:
                return x, weight, chain[1]
    return None


def _statistics(rsqrt: Node | None, by_name: dict[str, Node]) -> tuple[str, float] | None:
    """(the value squared, eps) of rsqrt(mean(v ** 2, -1, keepdim=True) + eps)."""
    if rsqrt is None or rsqrt.op != "aten.rsqrt.default":
        return None
    add = by_name.get(rsqrt.inputs[0])
    if add is None or add.op != "aten.add.Tensor" or len(add.inputs) != 1:
        return None
    args = add.attr("args", ())
    if len(args) != 2 or not isinstance(args[1], int | float):
        return None
    mean = by_name.get(add.inputs[0])
    if mean is None or mean.op != "aten.mean.dim":
        return None
    margs = mean.attr("args", ())
    if len(margs) < 3 or tuple(margs[1]) not in ((-1,), (len(mean.shape) - 1,)) \
            or margs[2] is not True:
        return None
    square = by_name.get(mean.inputs[0])
    if square is None or square.op != "aten.pow.Tensor_Scalar" \
            or square.attr("args", ())[1:] != (2,):
        return None
    return square.inputs[0], float(args[1])


def _uncast(node: Node | None, by_name: dict[str, Node]) -> Node | None:
    """The node behind a dtype cast (`_to_copy` with only a dtype), or the node itself."""
    if node is not None and node.op == "aten._to_copy.default" \
            and set(dict(node.attr("kwargs", ()))) <= {"dtype"}:
        return by_name.get(node.inputs[0])
    return node


def _source(node: Node | None, name: str) -> str:
    """The uncast value of `name` (what the float32 upcast was taken from)."""
    if node is not None and node.op == "aten._to_copy.default" \
            and set(dict(node.attr("kwargs", ()))) <= {"dtype"}:
        return node.inputs[0]
    return name
