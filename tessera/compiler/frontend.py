"""Core ATen (an `ExportedProgram`) -> the compiler's `Graph`.

Each ATen call becomes one `Node` of the kind `ATEN_KINDS` gives it, keeping the op name,
the call's argument template (tensor arguments replaced by `Arg(i)`, so the generic
executor can replay it) and the module path from `nn_module_stack`. Parameters, buffers and
captured constants become graph inputs with their values (none when the model was built on
the meta device). Ops that create tensors from nothing (`arange`, `full`, ...) are evaluated
here, once: with static shapes they are constants. Ops outside the table are collected and
reported together (`UnsupportedOpsError`), or kept as HOST nodes with `fallback="host"`.
"""

from __future__ import annotations

import operator
import re

import torch
from torch.export.graph_signature import InputKind, OutputKind

from tessera.compiler.errors import CompileError, UnsupportedOpsError
from tessera.compiler.graph import Arg, Graph, Node, NodeKind, Value, ValueRole, make_attrs
from tessera.compiler.overrides import is_custom, op_key

_K = NodeKind
# ATen op (without overload) -> kind
ATEN_KINDS: dict[str, NodeKind] = {
    **dict.fromkeys(("linear", "matmul", "mm", "bmm", "addmm"), _K.DOT),
    **dict.fromkeys(("scaled_dot_product_attention", "rms_norm", "layer_norm", "softmax",
                     "_softmax"), _K.KERNEL),
    **dict.fromkeys((
        "add", "sub", "rsub", "mul", "div", "neg", "exp", "log", "rsqrt", "sqrt", "pow",
        "tanh", "sigmoid", "silu", "gelu", "relu", "erf", "abs", "reciprocal", "cos", "sin",
        "maximum", "minimum", "where", "gt", "ge", "lt", "le", "eq", "ne", "logical_and",
        "logical_or", "logical_not", "bitwise_not", "_to_copy", "clone", "clamp",
        "masked_fill", "alias", "lift_fresh_copy", "outer", "square", "floor_divide",
        "remainder", "fmod", "floor", "ceil", "round", "sign", "isnan", "log1p", "expm1",
        "addcmul", "lerp", "hardtanh", "leaky_relu", "elu", "softplus", "tan", "atan",
        "bitwise_and", "bitwise_or", "full_like", "zeros_like", "ones_like",
        "empty_like"), _K.ELEMENTWISE),
    # cumsum: a running reduction (the Vector engine's scan), e.g. HF position ids
    **dict.fromkeys(("sum", "mean", "amax", "amin", "var", "any", "all", "max", "min",
                     "cumsum"), _K.REDUCE),
    "expand": _K.BROADCAST,
    **dict.fromkeys(("view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "flatten",
                     "getitem"), _K.RESHAPE),
    **dict.fromkeys(("permute", "transpose", "t"), _K.TRANSPOSE),
    **dict.fromkeys(("slice", "select", "narrow", "split", "split_with_sizes", "unbind",
                     "chunk"), _K.SLICE),
    "cat": _K.CONCAT,
    **dict.fromkeys(("embedding", "index_select", "gather", "index"), _K.GATHER),
    **dict.fromkeys(("index_put", "index_copy", "scatter", "slice_scatter", "select_scatter"),
                    _K.SCATTER),
}
# ops that make a tensor from their arguments alone: evaluated at compile time
CREATION = frozenset(("arange", "full", "zeros", "ones", "scalar_tensor", "empty", "eye",
                      "tril", "triu"))
# bookkeeping calls with no value
_SKIPPED = frozenset(("_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range",
                      "sym_constrain_range_for_size"))

_ROLES = {InputKind.USER_INPUT: ValueRole.USER, InputKind.PARAMETER: ValueRole.PARAMETER,
          InputKind.BUFFER: ValueRole.BUFFER, InputKind.CONSTANT_TENSOR: ValueRole.CONSTANT}


def op_name(target: object) -> str:
    """`aten.linear.default` for an OpOverload, `getitem` for operator.getitem."""
    if target is operator.getitem:
        return "getitem"
    return str(target)


def base_name(op: str) -> str:
    """`linear` for `aten.linear.default`."""
    parts = op.split(".")
    return parts[1] if len(parts) >= 3 else parts[-1]


def to_graph(program: torch.export.ExportedProgram, fallback: str = "error",
             kernels: frozenset[str] = frozenset()) -> Graph:
    """The exported program as a `Graph` (see the module docstring); ops named in
    `kernels` (op keys with a user kernel) and custom ops made by `nki_op` are KERNEL
    nodes."""
    if fallback not in ("error", "host"):
        raise CompileError(f"fallback must be 'error' or 'host', got {fallback!r}")
    sig = program.graph_signature
    kinds = {s.arg.name: (s.kind, s.target) for s in sig.input_specs}
    inputs: list[Value] = []
    constants: dict[str, object] = {}
    nodes: list[Node] = []
    unsupported: list[tuple[str, str]] = []
    for fx in program.graph_module.graph.nodes:
        if fx.op == "placeholder":
            kind, target = kinds[fx.name]
            role = _ROLES.get(kind)
            if role is None:
                raise CompileError(f"input {fx.name} of kind {kind.name} is not supported")
            shape, dtype = _meta(fx)
            inputs.append(Value(fx.name, role, shape, dtype))
            if role is not ValueRole.USER:
                value = (program.state_dict[target] if target in program.state_dict
                         else program.constants[target])
                if not value.is_meta:
                    constants[fx.name] = value.detach()
        elif fx.op == "call_function":
            name = op_name(fx.target)
            base = base_name(name)
            if base in _SKIPPED:
                continue
            if base in CREATION and not _tensor_inputs(fx):
                value = fx.target(*fx.args, **fx.kwargs)
                shape, dtype = tuple(value.shape), _dtype(value.dtype)
                inputs.append(Value(fx.name, ValueRole.CONSTANT, shape, dtype))
                constants[fx.name] = value
                continue
            kind = ATEN_KINDS.get(base)
            if kind is None and (op_key(name) in kernels or is_custom(name)):
                kind = NodeKind.KERNEL
            module = _module_path(fx)
            if kind is None:
                unsupported.append((name, module))
                kind = NodeKind.HOST
            refs = _tensor_inputs(fx)
            index = {r.name: i for i, r in enumerate(refs)}
            template = make_attrs({"args": _template(fx.args, index),
                                   "kwargs": _template(fx.kwargs, index)})
            shape, dtype = _meta(fx)
            nodes.append(Node(fx.name, kind, name, tuple(r.name for r in refs), shape, dtype,
                              template, module))
        elif fx.op == "output":
            continue
        else:
            raise CompileError(f"unexpected {fx.op} node {fx.name} in the exported graph")
    if unsupported and fallback == "error":
        raise UnsupportedOpsError(sorted(set(unsupported)))
    outputs = [s.arg.name for s in sig.output_specs if s.kind is OutputKind.USER_OUTPUT]
    graph = Graph(tuple(inputs), tuple(nodes), tuple(outputs), constants)
    graph.verify()
    return graph


def _tensor_inputs(fx: torch.fx.Node) -> list[torch.fx.Node]:
    """The fx nodes among the call's arguments, in order, each once."""
    seen: dict[str, torch.fx.Node] = {}

    def walk(value: object) -> None:
        if isinstance(value, torch.fx.Node):
            seen.setdefault(value.name, value)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(fx.args)
    walk(fx.kwargs)
    return list(seen.values())


def _template(value: object, index: dict[str, int]) -> object:
    """Arguments with fx nodes replaced by `Arg(i)` (hashable: lists become tuples)."""
    if isinstance(value, torch.fx.Node):
        return Arg(index[value.name])
    if isinstance(value, list | tuple):
        return tuple(_template(v, index) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _template(v, index)) for k, v in value.items()))
    return value


def _meta(fx: torch.fx.Node) -> tuple[tuple[int, ...], str]:
    val = fx.meta.get("val")
    if isinstance(val, list | tuple):  # several results: the first describes the node
        val = val[0]
    if not isinstance(val, torch.Tensor):
        raise CompileError(f"{fx.name} ({fx.target}) produces {type(val).__name__}, not a "
                           "tensor: dynamic shapes are not supported (export with static "
                           "shapes, or use buckets)")
    try:
        shape = tuple(int(d) for d in val.shape)
    except TypeError:
        raise CompileError(f"{fx.name} has a symbolic shape {list(val.shape)}: compile one "
                           "graph per static shape (buckets)") from None
    return shape, _dtype(val.dtype)


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _module_path(fx: torch.fx.Node) -> str:
    stack = fx.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = str(list(stack.values())[-1][0])
    # graphs captured by dynamo name modules from the frame: L['self'].h[0].attn
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\['([^']*)'\]", r".\1", path)
    return path.strip(".")
