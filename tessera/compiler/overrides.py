"""User NKI kernels in place of the library's: by op name, by decorator, or as custom ops.

    compiled = tessera.compile(model, (ids,), kernels={"rms_norm": my_rmsnorm})

    @tessera.compiler.override(torch.ops.aten.rms_norm)   # every later compile
    @nki.jit
    def my_rmsnorm(x, weight): ...

    my_norm = tessera.compiler.nki_op("mylib::my_norm", my_rmsnorm_kernel)  # a custom op
    # ... model code calls my_norm(x, w); torch.export keeps it as one node

A user kernel is called with the op's tensor arguments in order (the shapes of the graph,
e.g. x [B, S, H] and weight [H] for rms_norm) and must return one tensor of the op's
shape. At compile time it is traced symbolically on those shapes: a kernel that fails or
returns another shape is a `CompileError` naming the op, its module and both shapes. It
runs functionally in `tessera.nki` when the model is called, and its time is its own
`sim` profile, so a slower kernel shows up as a slower model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from tessera import nki, sim
from tessera.compiler.errors import CompileError
from tessera.compiler.graph import Graph, Node
from tessera.nki.errors import NkiError

_GLOBAL: dict[str, object] = {}  # op key -> kernel, from @override
_CUSTOM: dict[str, object] = {}  # graph op name ("mylib.my_norm.default") -> kernel


def op_key(op: object) -> str:
    """The key of an op: `rms_norm` for aten ops (however named), `mylib.my_norm` for
    custom ones."""
    name = str(getattr(op, "_qualified_op_name", None) or op)
    name = name.replace("::", ".")
    parts = name.split(".")
    if parts[0] == "aten":
        return parts[1] if len(parts) > 1 else name
    if len(parts) >= 2 and parts[0] != "torch":
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def override(op: object) -> Callable[[object], object]:
    """Decorator: use this NKI kernel for `op` in every later compile."""

    def register(kernel: object) -> object:
        _GLOBAL[op_key(op)] = kernel
        return kernel

    return register


def clear_overrides() -> None:
    """Forget the kernels registered with `override` (not the custom ops)."""
    _GLOBAL.clear()


def nki_op(name: str, kernel: object) -> Callable[..., torch.Tensor]:
    """A `torch.library.custom_op` named `name` ("mylib::my_norm") that runs `kernel` in
    tessera.nki eagerly and survives torch.export as one node, which the compiler runs and
    prices as the same kernel."""
    if "::" not in name:
        raise CompileError(f"nki_op needs a qualified name like 'mylib::my_op', got {name!r}")
    arity = _arity(kernel)
    run = nki.simulate(kernel)

    def impl(*tensors: torch.Tensor) -> torch.Tensor:
        return run(*tensors)

    schema = "(" + ", ".join(f"Tensor t{i}" for i in range(arity)) + ") -> Tensor"
    op = torch.library.custom_op(name, impl, mutates_args=(), schema=schema)

    def fake(*tensors: torch.Tensor) -> torch.Tensor:
        specs = [nki.TensorSpec(tuple(t.shape), _nki_dtype(str(t.dtype).removeprefix("torch.")))
                 for t in tensors]
        out = nki.trace(kernel, symbolic=True)(*specs).outputs
        return torch.empty(tuple(out.shape), dtype=tensors[0].dtype, device=tensors[0].device)

    op.register_fake(fake)
    _CUSTOM[op_key(name)] = kernel
    return op


def _arity(kernel: object) -> int:
    import inspect

    fn = getattr(kernel, "fn", kernel)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.default is inspect.Parameter.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params)


def is_custom(op: str) -> bool:
    """Whether a graph op name is a custom op made by `nki_op`."""
    return op_key(op) in _CUSTOM


def kernel_for(node: Node, given: Mapping[str, object] | None) -> object | None:
    """The user kernel for `node`: `kernels=` first, then `@override`, then `nki_op`."""
    key = op_key(node.op)
    for table in (given or {}, _GLOBAL, _CUSTOM):
        if key in table:
            return table[key]
    return None


@dataclass(frozen=True)
class UserKernel:
    """A user kernel bound to one node: its name and the specs it was checked on."""

    name: str
    kernel: object
    specs: tuple[object, ...]


def bind(node: Node, graph: Graph, kernel: object) -> UserKernel:
    """Check `kernel` on the node's input shapes (symbolic trace) and bind it."""
    name = getattr(getattr(kernel, "fn", kernel), "__name__", "kernel")
    where = f"{node.op} at {node.module or 'the top module'}"
    try:
        specs = tuple(nki.TensorSpec(graph.shape_of(i), _nki_dtype(graph.dtype_of(i)))
                      for i in node.inputs)
        out = nki.trace(kernel, symbolic=True)(*specs).outputs
    except (NkiError, TypeError, ValueError) as err:
        raise CompileError(f"user kernel {name} for {where} failed on inputs "
                           f"{[list(graph.shape_of(i)) for i in node.inputs]}: "
                           f"{str(err).splitlines()[0]}") from None
    shape = tuple(getattr(out, "shape", ()))
    if shape != node.shape:
        raise CompileError(f"user kernel {name} for {where} returns {list(shape)}, the op "
                           f"produces {list(node.shape)}")
    return UserKernel(name, kernel, specs)


@functools.lru_cache(maxsize=256)
def profile_user_kernel(user: UserKernel, chip: str) -> sim.Profile:
    """The kernel's own profile on `chip` (memoised per kernel, shapes and chip)."""
    return sim.profile(user.kernel, *user.specs, chip=chip, symbolic=True)


def _nki_dtype(dtype: str) -> str:
    if dtype in ("int64",):
        return "int32"  # NKI has no 64-bit integers: ids travel as int32
    return dtype
