"""Lowering: how each node runs on the device and what it costs.

Every node gets one `Lowered`:

* **library kernels** (`kernels`: `KernelCall`s of `tessera.kernels` ops, e.g. "matmul"):
  the node runs through them in `tessera.nki` (functional mode) and is priced by
  `cost.estimate` at the compile's fidelity, each `calls` times (attention runs once per
  batch element; masked attention is two batched matmuls around a softmax);
* a **view** (no kernels, `moved_bytes` 0): reshapes of contiguous data, aliases and the
  like change no byte on the device and cost nothing;
* a **device copy or pointwise op without a library kernel** (no kernels, `moved_bytes`
  > 0): computed exactly (the same IEEE arithmetic) and priced by the roofline memory term,
  its bytes read and written at min(HBM share, DMA rate) plus one DMA fixed latency, the
  way `cost.roofline` prices a memory-bound library op;
* a **host op** (`fallback="host"`): runs on the host CPU, priced at `HOST_BYTES_PER_S`
  plus the device-to-host round trip.

The rules live in `RULES` (ATen op -> rule) and in `tessera.compiler.lower_library`; a rule
returns None when its kernel does not apply (softmax over another axis), and the node falls
back to the copy/pointwise pricing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from tessera.compiler.errors import CompileError
from tessera.compiler.graph import Arg, Graph, Node, NodeKind
from tessera.compiler.overrides import UserKernel, bind, kernel_for

Run = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class KernelCall:
    """One library kernel a node runs: `calls` times at `shapes` in `dtype` (times
    `factor` for work priced as a multiple of a kernel's)."""

    kernel: str  # a tessera.kernels op name ("matmul", "flash_attention", ...)
    shapes: Mapping[str, int]
    dtype: str
    calls: int = 1
    factor: float = 1.0  # the work is this multiple of the kernel's (attention backward)


@dataclass(frozen=True)
class Lowered:
    """One node on the device (see the module docstring): the library kernels it runs, or
    none (a view, a copy/pointwise op of `moved_bytes`, or a host op)."""

    node: str
    run: Run = field(compare=False, repr=False)
    kernels: tuple[KernelCall, ...] = ()
    moved_bytes: int = 0  # copy/pointwise and host ops: bytes read + written
    host: bool = False
    user: UserKernel | None = None  # a user kernel in place of the library's

    @property
    def is_view(self) -> bool:
        return not self.kernels and self.moved_bytes == 0 and not self.host \
            and self.user is None


Rule = Callable[[Node, Graph], Lowered | None]
RULES: dict[str, Rule] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register a lowering rule for ATen ops (base names) or fused op names."""

    def add(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return add


def lower(graph: Graph, kernels: Mapping[str, object] | None = None) -> dict[str, Lowered]:
    """A `Lowered` for every node of `graph`; `kernels` (op key -> NKI kernel) and the
    registered overrides take precedence over the library (`tessera.compiler.overrides`)."""
    from tessera.compiler import lower_library  # noqa: F401  (registers the kernel rules)
    from tessera.compiler.frontend import base_name

    out: dict[str, Lowered] = {}
    for node in graph.nodes:
        kernel = kernel_for(node, kernels)
        if kernel is not None:
            out[node.name] = _user(node, graph, kernel)
            continue
        found = RULES.get(base_name(node.op))
        lowered = found(node, graph) if found is not None else None
        out[node.name] = lowered or generic(node, graph)
    return out


def _user(node: Node, graph: Graph, kernel: object) -> Lowered:
    from tessera import nki

    user = bind(node, graph, kernel)
    run_kernel = nki.simulate(kernel)

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        return run_kernel(*[t.to(torch.int32) if t.dtype == torch.int64 else t
                            for t in inputs])

    return Lowered(node.name, run, user=user)


# rms_norm's eps when the call gives none (torch uses the float32 machine epsilon)
RMS_NORM_EPS = float(torch.finfo(torch.float32).eps)


def supports(kernel: str, dtype: str) -> bool:
    """Whether library `kernel` runs in `dtype` (its `KernelDef.dtypes`): a rule lowers a node
    to it only then, and leaves other dtypes to the generic copy/pointwise path."""
    from tessera.kernels import registry

    return dtype in registry.get(kernel).dtypes

# views: what a reshape/alias of a contiguous value needs on the device
_VIEW_OPS = frozenset(("view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "flatten",
                       "alias", "getitem", "expand", "lift_fresh_copy", "detach",
                       # tuples of views into their input (a fused qkv split): each consumer
                       # reads its part where it lies, nothing is copied
                       "split", "split_with_sizes", "unbind", "chunk"))


def generic(node: Node, graph: Graph) -> Lowered:
    """Run the node's own ATen op; price it as a view, a device copy/pointwise op or a host
    op."""
    from tessera.compiler.frontend import base_name

    run = replay(node)
    if node.kind is NodeKind.HOST:
        return Lowered(node.name, run, moved_bytes=_io_bytes(node, graph), host=True)
    # a transpose that only copies read is a strided view (passes/layout.py)
    if base_name(node.op) in _VIEW_OPS or node.attr("layout") == "strided":
        return Lowered(node.name, run)
    if node.kind is NodeKind.SCATTER:
        return Lowered(node.name, run, moved_bytes=_update_bytes(node, graph))
    return Lowered(node.name, run, moved_bytes=_io_bytes(node, graph))


def _update_bytes(node: Node, graph: Graph) -> int:
    """A scatter writes its updates into the destination where it lies (the output aliases
    input 0, as a KV cache stays on the device between calls and is written slot by slot):
    it reads the indices and updates and writes the updates, never copying the rest."""
    rest = [_bytes(graph.shape_of(i), graph.dtype_of(i)) for i in node.inputs[1:]]
    return sum(rest) + rest[-1]


def _io_bytes(node: Node, graph: Graph) -> int:
    """Bytes an op reads and writes once (inputs at their stored size, the output)."""
    return sum(_bytes(graph.shape_of(i), graph.dtype_of(i)) for i in node.inputs) \
        + node.num_bytes


def _bytes(shape: tuple[int, ...], dtype: str) -> int:
    from tessera.compiler.graph import itemsize

    n = 1
    for d in shape:
        n *= d
    return n * itemsize(dtype)


def resolve(op: str) -> Callable[..., object]:
    """The callable of an op name (`aten.add.Tensor` -> torch.ops.aten.add.Tensor)."""
    if op == "getitem":
        return operator.getitem
    parts = op.split(".")
    try:
        target: object = torch.ops
        for part in parts:
            target = getattr(target, part)
    except AttributeError:
        raise CompileError(f"unknown op {op}") from None
    return target  # type: ignore[return-value]


def replay(node: Node) -> Run:
    """Run the node's ATen op on its inputs, with its recorded argument template."""
    fn = resolve(node.op)
    args = node.attr("args", ())
    kwargs = dict(node.attr("kwargs", ()))

    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        out = fn(*_fill(args, inputs), **{k: _fill(v, inputs) for k, v in kwargs.items()})
        # the device has no strides: every value it holds is laid out contiguously
        if isinstance(out, torch.Tensor) and not out.is_contiguous():
            out = out.contiguous()
        return out

    return run


def _fill(template: object, inputs: list[torch.Tensor]) -> object:
    if isinstance(template, Arg):
        return inputs[template.index]
    if isinstance(template, tuple):
        return [_fill(t, inputs) for t in template]
    return template
