"""The compiler's graph IR: a closed set of op kinds over named, shaped values.

A `Graph` is the model after export: its `inputs` (the user's tensors, parameters,
buffers and constants, each a `Value`), its `nodes` in a topological order, and the names of
its `outputs`. Every node produces one value named after it. Op kinds form a closed set
(tinygrad's habit: a small enum with named groups), and a node keeps the ATen op it came
from and the module path (`layers.3.attn`) it was traced in, so errors and profiles speak
the user's language.

Graphs are immutable; passes return new graphs (`Graph.replace_nodes`). `verify()` checks
the structure: unique names, every use defined earlier, outputs defined, arity per kind.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class NodeKind(Enum):
    """What a node does, in groups: compute (DOT, ELEMENTWISE, REDUCE), movement
    (BROADCAST, RESHAPE, TRANSPOSE, SLICE, CONCAT, GATHER, SCATTER) and library kernels
    (KERNEL)."""

    DOT = "dot"  # matmul family: linear, addmm, mm, bmm
    ELEMENTWISE = "elementwise"  # pointwise unary/binary/ternary (with broadcasting)
    REDUCE = "reduce"  # sum, mean, amax over axes
    BROADCAST = "broadcast"  # expand
    RESHAPE = "reshape"  # view, reshape, (un)squeeze, flatten
    TRANSPOSE = "transpose"  # permute, transpose
    SLICE = "slice"  # slice, select, narrow
    CONCAT = "concat"  # cat
    GATHER = "gather"  # embedding, index_select
    SCATTER = "scatter"  # index_put, index_copy, slice_scatter: write part of a tensor
    KERNEL = "kernel"  # a whole library op: softmax, norms, attention, ...
    HOST = "host"  # no lowering: runs on the host (fallback="host")

    @property
    def moves_data_only(self) -> bool:
        """Movement kinds compute nothing: they copy or re-index."""
        return self in _MOVEMENT


_MOVEMENT = frozenset({NodeKind.BROADCAST, NodeKind.RESHAPE, NodeKind.TRANSPOSE, NodeKind.SLICE,
                       NodeKind.CONCAT, NodeKind.GATHER, NodeKind.SCATTER})


class ValueRole(Enum):
    """Where a graph input comes from."""

    USER = "user"  # an argument of the model's forward
    PARAMETER = "parameter"
    BUFFER = "buffer"
    CONSTANT = "constant"  # a tensor the trace captured or a pass folded


@dataclass(frozen=True)
class Value:
    """A graph input: its name, role, shape and dtype (a torch dtype name: "float32")."""

    name: str
    role: ValueRole
    shape: tuple[int, ...]
    dtype: str

    @property
    def num_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * itemsize(self.dtype)


@dataclass(frozen=True)
class Node:
    """One operation. `op` is the ATen op it came from (`aten.linear.default`) or, for a
    KERNEL node, the library op name; `attrs` are its settings as sorted (name, value)
    pairs; `module` the module path it was traced in ("" at the top)."""

    name: str
    kind: NodeKind
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: tuple[tuple[str, object], ...] = ()
    module: str = ""

    def attr(self, key: str, default: object = None) -> object:
        """One setting (`default` when absent)."""
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def num_bytes(self) -> int:
        """Bytes of the value this node produces."""
        return int(np.prod(self.shape, dtype=np.int64)) * itemsize(self.dtype)


@dataclass(frozen=True)
class Arg:
    """In an op's argument template (`attrs["args"]`), the node's `index`-th input."""

    index: int


def make_attrs(values: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """Attributes as the sorted, hashable pairs `Node.attrs` holds."""
    return tuple(sorted((k, _hashable(v)) for k, v in values.items()))


def _hashable(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


class GraphError(ValueError):
    """A graph that breaks the IR's rules (a pass or front-end bug, or a bad hand-built
    graph)."""


_ARITY = {NodeKind.DOT: (2, 3), NodeKind.ELEMENTWISE: (1, 3), NodeKind.REDUCE: (1, 1),
          NodeKind.BROADCAST: (1, 1), NodeKind.RESHAPE: (1, 1), NodeKind.TRANSPOSE: (1, 1),
          NodeKind.SLICE: (1, 1), NodeKind.CONCAT: (1, 1 << 16), NodeKind.GATHER: (2, 1 << 8),
          NodeKind.SCATTER: (2, 1 << 8),
          NodeKind.KERNEL: (1, 1 << 16), NodeKind.HOST: (0, 1 << 16)}


@dataclass(frozen=True)
class Graph:
    """A model as the compiler sees it (see the module docstring). `constants` holds the
    values of PARAMETER/BUFFER/CONSTANT inputs (torch tensors; empty in symbolic mode)."""

    inputs: tuple[Value, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    constants: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        """The node named `name`."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}")

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of a node or input by name."""
        return self._values[name][0]

    def dtype_of(self, name: str) -> str:
        """The dtype of a node or input by name."""
        return self._values[name][1]

    @functools.cached_property
    def _values(self) -> dict[str, tuple[tuple[int, ...], str]]:
        # built once per graph (graphs are immutable): lowering asks per input of every node
        table = {v.name: (v.shape, v.dtype) for v in self.inputs}
        table.update({n.name: (n.shape, n.dtype) for n in self.nodes})
        return table

    def users(self) -> dict[str, list[str]]:
        """For each value name, the nodes that read it (in graph order)."""
        out: dict[str, list[str]] = {v.name: [] for v in self.inputs}
        for n in self.nodes:
            out.setdefault(n.name, [])
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return out

    def replace_nodes(self, nodes: Iterable[Node], outputs: Iterable[str] | None = None,
                      inputs: Iterable[Value] | None = None,
                      constants: Mapping[str, object] | None = None) -> Graph:
        """A new graph with these nodes (and optionally outputs, inputs, constants)."""
        return dataclasses.replace(
            self, nodes=tuple(nodes),
            outputs=tuple(outputs) if outputs is not None else self.outputs,
            inputs=tuple(inputs) if inputs is not None else self.inputs,
            constants=dict(constants) if constants is not None else self.constants)

    def verify(self) -> None:
        """Raise `GraphError` unless every name is unique, every input of a node is a graph
        input or an earlier node, the outputs exist and each node's arity fits its kind."""
        defined: set[str] = set()
        for v in self.inputs:
            if v.name in defined:
                raise GraphError(f"input {v.name!r} is defined twice")
            defined.add(v.name)
        for n in self.nodes:
            if n.name in defined:
                raise GraphError(f"node {n.name!r} is defined twice")
            missing = [i for i in n.inputs if i not in defined]
            if missing:
                raise GraphError(f"node {n.name!r} ({n.op}) reads {missing}, not defined "
                                 "before it")
            low, high = _ARITY[n.kind]
            if not low <= len(n.inputs) <= high:
                raise GraphError(f"node {n.name!r}: a {n.kind.value} node takes {low} to "
                                 f"{high} inputs, got {len(n.inputs)}")
            if any(d < 0 for d in n.shape):
                raise GraphError(f"node {n.name!r} has a negative dimension {n.shape}")
            defined.add(n.name)
        missing = [o for o in self.outputs if o not in defined]
        if missing:
            raise GraphError(f"outputs {missing} are not defined")

    def format(self) -> str:
        """The graph as text, one line per input and node (what `CompiledModel.graph`
        prints)."""
        lines = [f"graph({len(self.inputs)} inputs, {len(self.nodes)} nodes)"]
        for v in self.inputs:
            lines.append(f"  %{v.name}: {v.role.value} {v.dtype}{list(v.shape)}")
        for n in self.nodes:
            args = ", ".join(f"%{i}" for i in n.inputs)
            attrs = "".join(f", {k}={v!r}" for k, v in n.attrs if k not in _HIDDEN)
            where = f"  # {n.module}" if n.module else ""
            lines.append(f"  %{n.name} = {n.kind.value}[{n.op}]({args}{attrs}) -> "
                         f"{n.dtype}{list(n.shape)}{where}")
        lines.append(f"  return {', '.join('%' + o for o in self.outputs)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


_HIDDEN = ("args", "kwargs")  # the op's call template: shown through its inputs

_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8, "int32": 4,
             "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "float8_e4m3fn": 1,
             "float8_e5m2": 1}


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype name."""
    try:
        return _ITEMSIZE[dtype]
    except KeyError:
        raise GraphError(f"unsupported dtype {dtype!r}") from None
