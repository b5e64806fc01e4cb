"""`torch.compile(model, backend="tessera")`: the compiler behind PyTorch's own entry point.

Dynamo hands the backend each graph it captured (a `torch.fx.GraphModule`) with example
inputs; the backend compiles it with `tessera.compile` and returns the `CompiledModel` as
the graph's callable, so the model runs on the simulated NeuronCore. The backend is
registered under the `torch_dynamo_backends` entry point (pyproject.toml), so no import is
needed; options: `torch.compile(model, backend="tessera", options={"chip": "trn1",
"fidelity": "roofline", "fallback": "host"})`; the chip defaults to `nki.default_chip()`
(`NEURON_PLATFORM_TARGET_OVERRIDE`, else trn2). Every graph compiled this way is kept in
`compiled_graphs()` (in capture order) so its profile can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from tessera.compiler.api import CompiledModel, compile
from tessera.compiler.errors import CompileError

_OPTIONS = ("chip", "fidelity", "fallback", "dtype")
_COMPILED: list[CompiledModel] = []


def compiled_graphs() -> tuple[CompiledModel, ...]:
    """The graphs `torch.compile(..., backend="tessera")` compiled in this process."""
    return tuple(_COMPILED)


def clear_compiled_graphs() -> None:
    """Forget the graphs compiled so far."""
    _COMPILED.clear()


def tessera_backend(gm: torch.fx.GraphModule, example_inputs: list[object],
                    options: Mapping[str, object] | None = None, **_: object
                    ) -> Callable[..., object]:
    """A dynamo backend: compile `gm` for the chip in `options` and run it there."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise CompileError(f"unknown tessera backend option(s) {unknown}; known: "
                           f"{', '.join(_OPTIONS)}")
    if not all(isinstance(x, torch.Tensor) for x in example_inputs):
        kinds = sorted({type(x).__name__ for x in example_inputs
                        if not isinstance(x, torch.Tensor)})
        raise CompileError(f"the captured graph takes {kinds} inputs (dynamic shapes): use "
                           "torch.compile(..., dynamic=False)")
    with torch.no_grad():
        returns_tuple = isinstance(gm(*example_inputs), tuple | list)
    compiled = compile(gm, tuple(example_inputs), **options)  # type: ignore[arg-type]
    _COMPILED.append(compiled)

    def run(*args: torch.Tensor) -> object:
        out = compiled(*args)
        if returns_tuple and not isinstance(out, tuple):
            return (out,)
        return out

    return run
