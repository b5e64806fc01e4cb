"""`tessera.eager_profile`: price any PyTorch code as it runs (a whole training step, a
generate loop), without compiling it into one graph.

    with tessera.eager_profile(chip="trn2") as run:
        loss = model(ids).logsumexp(-1).mean()
        loss.backward()
        optimizer.step()
    print(run.profile)                          # per op, per module, forward and backward

The code runs on the CPU unchanged. A `TorchDispatchMode` sees every ATen op it
dispatches (after PyTorch's own decompositions: a Linear is `t` + `mm`), with the module
path from `torch.utils.module_tracker.ModuleTracker` and whether it belongs to the backward
pass; each op is then lowered and priced exactly as `tessera.compile` prices a graph node
(`lowering.lower`, `price.price`). With `fake=True` the block also runs under
`FakeTensorMode`: build the model inside it and nothing is allocated, so the step of a
model far larger than this machine's memory is priced from shapes alone.

What eager mode differs in: strided views are free (`t`, `transpose`, `permute`, `expand`,
`slice`; the copies eager PyTorch makes appear as their own `clone`/`copy_` ops), in-place
and optimizer ops (`add_`, `_foreach_*`, `addcdiv_`) are priced by the bytes they touch,
and attention's backward (`_scaled_dot_product_flash_attention_for_cpu_backward`) is
priced as `ATTENTION_BACKWARD_FACTOR` times the forward flash-attention kernel: the
backward pass of FlashAttention-2 runs five matmuls of the forward's size where the
forward runs two (Dao, "FlashAttention-2", 2023, section 3.1.2; the library has no
backward kernel to simulate). No memory plan is made (`profile.memory` is empty).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.distributed.tensor import DTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.module_tracker import ModuleTracker

from tessera import hw
from tessera.compiler.errors import CompileError
from tessera.compiler.frontend import ATEN_KINDS, base_name
from tessera.compiler.graph import Arg, Graph, Node, NodeKind, Value, ValueRole, make_attrs
from tessera.compiler.lowering import KernelCall, Lowered, lower
from tessera.compiler.passes.memory import MemoryPlan
from tessera.compiler.price import OpCost, price
from tessera.compiler.profile import ModelProfile
from tessera.cost import Fidelity
from tessera.nki.runtime import default_chip

ATTENTION_BACKWARD_FACTOR = 2.5  # five matmuls against two (FlashAttention-2, 3.1.2)
# strided views in eager mode: no bytes move
_EAGER_VIEWS = frozenset(("t", "transpose", "permute", "expand", "slice", "select", "view",
                          "_unsafe_view", "unsqueeze", "squeeze", "detach", "alias",
                          "as_strided", "split", "split_with_sizes", "unbind", "chunk",
                          "narrow", "lift_fresh", "_reshape_alias"))
# bookkeeping with no device work
_IGNORED = frozenset(("_local_scalar_dense", "sym_size", "sym_stride", "sym_numel",
                      "is_same_size", "_record_function_enter_new",
                      "_record_function_exit", "device", "empty", "empty_strided"))


@dataclass(frozen=True)
class DispatchedOp:
    """One ATen call seen while the block ran."""

    op: str
    args: tuple[object, ...]  # the call template (tensors as Arg(i))
    kwargs: tuple[tuple[str, object], ...]
    inputs: tuple[tuple[tuple[int, ...], str], ...]  # (shape, dtype) per tensor argument
    shape: tuple[int, ...]  # the (first) output
    dtype: str
    module: str
    backward: bool


@dataclass
class EagerRun:
    """What `eager_profile` recorded; `.profile` prices it (once, on first use)."""

    chip: str
    fidelity: Fidelity
    ops: list[DispatchedOp] = field(default_factory=list)
    _profile: ModelProfile | None = None

    @property
    def profile(self) -> ModelProfile:
        if self._profile is None:
            self._profile = _price_all(self)
        return self._profile


class _Recorder(TorchDispatchMode):
    def __init__(self, run: EagerRun, tracker: ModuleTracker) -> None:
        super().__init__()
        self.run, self.tracker = run, tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if any(issubclass(t, DTensor) for t in types):
            # let DTensor run first: its local ops (on each rank's shard) come back here
            return NotImplemented
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        if name.startswith("aten.") and base_name(name) not in _IGNORED:
            first = out[0] if isinstance(out, tuple | list) and out else out
            if isinstance(first, torch.Tensor):
                self.run.ops.append(_record(name, args, kwargs, first, self.tracker))
        return out


def _record(name: str, args: tuple, kwargs: dict, out: torch.Tensor,
            tracker: ModuleTracker) -> DispatchedOp:
    tensors: list[torch.Tensor] = []

    def template(value: object) -> object:
        if isinstance(value, torch.Tensor):
            tensors.append(value)
            return Arg(len(tensors) - 1)
        if isinstance(value, list | tuple):
            return tuple(template(v) for v in value)
        return value

    t_args = template(args)
    t_kwargs = tuple(sorted((k, template(v)) for k, v in kwargs.items()))
    # the tracker names modules from the root's class ("LlamaModel.layers.0.mlp"): drop it
    named = sorted((p for p in tracker.parents if p != "Global"), key=len)
    module = named[-1].split(".", 1)[1] if named and "." in named[-1] else ""
    inputs = tuple((tuple(int(d) for d in t.shape), _dtype(t.dtype)) for t in tensors)
    return DispatchedOp(name, t_args, t_kwargs, inputs, tuple(int(d) for d in out.shape),
                        _dtype(out.dtype), module, bool(tracker.is_bw))


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def eager_profile(chip: str | None = None, fidelity: Fidelity | str = Fidelity.ROOFLINE,
                  fake: bool = False, modules: bool = True) -> Iterator[EagerRun]:
    """Record the ATen ops the block dispatches and price them on `chip` (see the module
    docstring); `fake=True` runs the block under FakeTensorMode (shapes only).
    `modules=False` skips module tracking (every op "forward", no module): the tracker's
    backward hooks break code that calls `torch.autograd.grad` on stage inputs, such as
    `torch.distributed.pipelining`'s schedules. DTensor ops are recorded as the local ops
    they run on this rank's shards."""
    name = chip or default_chip()
    try:
        hw.load_chip(name)
    except hw.HwError as err:
        raise CompileError(f"chip {name!r}: {err}") from None
    run = EagerRun(name, Fidelity(fidelity))
    tracker = ModuleTracker() if modules else _NoModules()
    with contextlib.ExitStack() as stack:
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode

            stack.enter_context(FakeTensorMode())
        if modules:
            stack.enter_context(tracker)
        stack.enter_context(_Recorder(run, tracker))
        yield run


class _NoModules:
    """What `_record` reads of a ModuleTracker, when modules are not tracked."""

    parents: frozenset[str] = frozenset({"Global"})
    is_bw = False


def _price_all(run: EagerRun) -> ModelProfile:
    spec = hw.load_chip(run.chip)
    costs: list[OpCost] = []
    cache: dict[tuple, OpCost] = {}
    for i, op in enumerate(run.ops):
        key = (op.op, op.args, op.kwargs, op.inputs, op.shape, op.dtype)
        found = cache.get(key)
        if found is None:
            node, graph = _as_node(i, op)
            found = price(node, _lower_one(node, graph), spec, run.fidelity)
            cache[key] = found
        costs.append(dataclasses.replace(found, node=f"op{i}", module=op.module,
                                         phase="backward" if op.backward else "forward"))
    return ModelProfile(spec.name, run.fidelity.value, tuple(costs), MemoryPlan(0, 0, 0, ""))


def _as_node(i: int, op: DispatchedOp) -> tuple[Node, Graph]:
    values = tuple(Value(f"in{j}", ValueRole.USER, shape, dtype)
                   for j, (shape, dtype) in enumerate(op.inputs))
    base = base_name(op.op)
    kind = ATEN_KINDS.get(base, NodeKind.ELEMENTWISE)
    if base in _EAGER_VIEWS:
        kind = NodeKind.RESHAPE
    attrs = make_attrs({"args": op.args, "kwargs": op.kwargs})
    node = Node(f"op{i}", kind, op.op, tuple(v.name for v in values), op.shape, op.dtype,
                attrs, op.module)
    if len(node.inputs) > 1 << 15:
        raise CompileError(f"{op.op} has too many tensor arguments to price")
    return node, Graph(values, (node,), (node.name,))


def _lower_one(node: Node, graph: Graph) -> Lowered:
    base = base_name(node.op)
    if base in _EAGER_VIEWS:
        return Lowered(node.name, _unused)
    if base == "_scaled_dot_product_flash_attention_for_cpu":
        return _flash(node, graph, backward=False)
    if base == "_scaled_dot_product_flash_attention_for_cpu_backward":
        return _flash(node, graph, backward=True)
    if base == "native_layer_norm":
        node = dataclasses.replace(node, op="aten.layer_norm.default")
    return lower(graph.replace_nodes([node]))[node.name]


def _flash(node: Node, graph: Graph, backward: bool) -> Lowered:
    """CPU flash attention: q, k, v [B, H, S, D] (the backward's come after grad_out)."""
    first = 1 if backward else 0
    q, k = graph.inputs[first].shape, graph.inputs[first + 1].shape
    if len(q) != 4 or len(k) != 4 or q[3] > 128:
        return Lowered(node.name, _unused, moved_bytes=sum(v.num_bytes for v in graph.inputs))
    shapes = {"heads": q[1], "kv_heads": k[1], "seq": q[2], "head_dim": q[3]}
    factor = ATTENTION_BACKWARD_FACTOR if backward else 1.0
    dtype = graph.inputs[first].dtype
    return Lowered(node.name, _unused, (KernelCall("flash_attention", shapes, dtype, q[0],
                                                   factor),))


def _unused(inputs: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - never run
    raise CompileError("an eager profile prices ops; it does not run them")
