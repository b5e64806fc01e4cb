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
from tessera.compiler.lowering import supports


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
    if node.op != "aten.mul.Tensor" or len(node.inputs) != 2 \
            or not supports("rmsnorm", node.dtype):
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


# ---------------------------------------------------------------------- rotary embedding
_PASS_THROUGH = frozenset(("aten.unsqueeze.default", "aten.view.default",
                           "aten._unsafe_view.default", "aten.reshape.default",
                           "aten._to_copy.default", "aten.expand.default",
                           "aten.alias.default"))


def recognise_rope(graph: Graph) -> Graph:
    """x * cos + rotate_half(x) * sin -> the library `rope` of x with the tables' halves.

    `rotate_half(x)` is `cat(-x2, x1)` over the last axis (x1, x2 its halves, from `chunk`/
    `split` or two slices). The library kernel takes cos/sin of half width, so the tables
    must repeat their first half: a table computed in the graph must be the cos or sin of a
    `cat(a, a)` (through casts, reshapes and scaling by a number; this pass runs before
    constant folding erases that structure); a constant table must have equal halves. A
    constant without values (a symbolic compile on the meta device computes nothing) is
    taken as a RoPE table: the chain's shape is RoPE's, and only the price depends on it.
    """
    by_name = {n.name: n for n in graph.nodes}
    replaced: dict[str, Node] = {}
    for node in graph.nodes:
        found = _rope_match(node, by_name, graph)
        if found is not None:
            replaced[node.name] = Node(node.name, NodeKind.KERNEL, "rope", found,
                                       node.shape, node.dtype, (), node.module)
    if not replaced:
        return graph
    return graph.replace_nodes([replaced.get(n.name, n) for n in graph.nodes],
                               outputs=list(graph.outputs))


def _rope_match(node: Node, by_name: dict[str, Node], graph: Graph
                ) -> tuple[str, str, str] | None:
    """(x, cos, sin) when `node` is the add of the rotate-half RoPE; else None."""
    if node.op != "aten.add.Tensor" or len(node.inputs) != 2 or len(node.shape) not in (3, 4) \
            or not supports("rope", node.dtype) or node.attr("kwargs", ()):
        return None
    seq, dim = node.shape[-2], node.shape[-1]
    for first in (0, 1):
        direct = by_name.get(node.inputs[first])
        rotated = by_name.get(node.inputs[1 - first])
        for x, cos in _products(direct):
            for turned, sin in _products(rotated):
                if x == turned or _rotated_source(by_name.get(turned), by_name) != x:
                    continue
                tables = (cos, sin)
                if graph.shape_of(x) != node.shape or graph.dtype_of(x) != node.dtype \
                        or any(graph.dtype_of(t) != node.dtype
                               or tuple(graph.shape_of(t)[-2:]) != (seq, dim)
                               or not _repeats_halves(t, by_name, graph)
                               for t in tables):
                    continue
                return x, cos, sin
    return None


def _products(node: Node | None) -> list[tuple[str, str]]:
    """Both (a, b) orders of a two-tensor multiply."""
    if node is None or node.op != "aten.mul.Tensor" or len(node.inputs) != 2:
        return []
    a, b = node.inputs
    return [(a, b), (b, a)]


def _rotated_source(cat: Node | None, by_name: dict[str, Node]) -> str | None:
    """x when `cat` is cat([-x2, x1], -1) of x's halves; else None."""
    if cat is None or cat.op != "aten.cat.default" or len(cat.inputs) != 2:
        return None
    args = cat.attr("args", ())
    if len(args) > 1 and args[1] not in (-1, len(cat.shape) - 1):
        return None
    neg = by_name.get(cat.inputs[0])
    if neg is None or neg.op != "aten.neg.default":
        return None
    second = _half_of(by_name.get(neg.inputs[0]), by_name)
    first = _half_of(by_name.get(cat.inputs[1]), by_name)
    if first is None or second is None or first[0] != second[0] or (first[1], second[1]) \
            != (0, 1):
        return None
    return first[0]


def _half_of(node: Node | None, by_name: dict[str, Node]) -> tuple[str, int] | None:
    """(x, 0 or 1) when `node` is the first or second half of x's last axis."""
    if node is None:
        return None
    args = node.attr("args", ())
    if node.op == "getitem":
        split = by_name.get(node.inputs[0])
        if split is None or split.op not in ("aten.split_with_sizes.default",
                                             "aten.split.Tensor") or len(args) != 2:
            return None
        sargs = split.attr("args", ())
        sizes = sargs[1] if len(sargs) > 1 else None
        dim = sargs[2] if len(sargs) > 2 else 0
        half = node.shape[-1] if node.shape else 0
        # two equal parts of the last axis (the cat of the rotation checks the whole width)
        parts = list(sizes) if isinstance(sizes, tuple | list) else [sizes, sizes]
        if dim not in (-1, len(node.shape) - 1) or parts != [half, half]:
            return None
        return (split.inputs[0], args[1]) if args[1] in (0, 1) else None
    if node.op == "aten.slice.Tensor" and len(args) >= 4:
        rank = len(node.shape)
        if args[1] not in (-1, rank - 1):
            return None
        half = node.shape[-1]
        if args[2] == 0 and args[3] == half:
            return node.inputs[0], 0
        if args[2] == half and args[3] >= 2 * half:
            return node.inputs[0], 1
    return None


def _repeats_halves(name: str, by_name: dict[str, Node], graph: Graph) -> bool:
    """The table `name` has two equal halves over its last axis (see `recognise_rope`)."""
    if name in graph.constants:
        value = graph.constants[name]
        if getattr(value, "is_meta", False):
            return True
        half = value.shape[-1] // 2
        return bool((value[..., :half] == value[..., half:]).all())
    node = by_name.get(name)
    while node is not None and (node.op in _PASS_THROUGH or (
            node.op == "aten.mul.Tensor" and len(node.inputs) == 1)):
        node = by_name.get(node.inputs[0])
    if node is None or node.op not in ("aten.cos.default", "aten.sin.default"):
        return False
    cat = by_name.get(node.inputs[0])
    if cat is None or cat.op != "aten.cat.default":
        return False
    args = cat.attr("args", ())
    if len(args) > 1 and args[1] not in (-1, len(cat.shape) - 1):
        return False
    parts = list(args[0]) if args and isinstance(args[0], tuple | list) else []
    # the same tensor twice: one input referenced by two equal Args, or two equal names
    return len(parts) == 2 and all(isinstance(p, Arg) for p in parts) \
        and cat.inputs[parts[0].index] == cat.inputs[parts[1].index]
