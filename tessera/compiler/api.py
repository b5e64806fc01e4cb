"""`tessera.compile(model, example_inputs, ...)` -> `CompiledModel`.

    compiled = tessera.compile(model, (ids,), chip="trn2")
    logits = compiled(ids)          # runs on the simulated NeuronCore (library kernels)
    print(compiled.profile)         # per op, per layer and total predicted time
    print(compiled.graph)           # the graph IR after the passes
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tessera import hw
from tessera.compiler import graph_cache
from tessera.compiler.errors import CompileError
from tessera.compiler.export import export
from tessera.compiler.frontend import to_graph
from tessera.compiler.graph import Graph, ValueRole
from tessera.compiler.graph_cache import graph_key
from tessera.compiler.lowering import Lowered, lower
from tessera.compiler.overrides import op_key
from tessera.compiler.passes.memory import plan_memory
from tessera.compiler.pipeline import optimise
from tessera.compiler.price import OpCost, price
from tessera.compiler.profile import ModelProfile
from tessera.cost import Fidelity
from tessera.cost.batch import BatchStep, EstimateRequest, tune_missing
from tessera.cost.executor import BatchExecutor, ExecutorKind, resolve_executor
from tessera.kernels.tune import TuneStep
from tessera.nki.runtime import default_chip

if TYPE_CHECKING:  # buckets builds on this module
    from tessera.compiler.buckets import BucketedModel


class CompiledModel:
    """A model compiled for one chip: call it like the model; `.profile`, `.graph`."""

    def __init__(self, graph: Graph, lowered: dict[str, Lowered], profile: ModelProfile,
                 symbolic: bool, single_output: bool) -> None:
        self.graph = graph
        self.lowered = lowered
        self.profile = profile
        self.symbolic = symbolic
        self._single = single_output

    def __call__(self, *inputs: torch.Tensor) -> object:
        if self.symbolic:
            raise CompileError("this model was compiled symbolically (shapes only): compile "
                               "it with real weights and inputs to run it")
        user = [v for v in self.graph.inputs if v.role is ValueRole.USER]
        if len(inputs) != len(user):
            raise CompileError(f"the compiled model takes {len(user)} input(s) "
                               f"({', '.join(v.name for v in user)}), got {len(inputs)}")
        env: dict[str, object] = dict(self.graph.constants)
        for value, given in zip(user, inputs, strict=True):
            if not isinstance(given, torch.Tensor):
                raise CompileError(f"input {value.name} must be a torch.Tensor, got "
                                   f"{type(given).__name__}")
            if tuple(given.shape) != value.shape:
                raise CompileError(f"input {value.name} was compiled for shape "
                                   f"{list(value.shape)}, got {list(given.shape)} (compile "
                                   "one graph per shape, or use buckets)")
            env[value.name] = given
        with torch.no_grad():
            for node in self.graph.nodes:
                env[node.name] = self.lowered[node.name].run([env[i] for i in node.inputs])
        outs = tuple(env[o] for o in self.graph.outputs)
        return outs[0] if self._single else outs

    def report(self, path: str | Path) -> dict[str, Path]:
        """Write profile.json, layers.png (per-layer breakdown) and trace.json (Perfetto:
        one lane per engine, ops as spans named by module path) into folder `path`;
        returns {kind: file written}."""
        from tessera.compiler.reports.model_folder import write_model_report  # imports this module

        return write_model_report(self, path)

    def __repr__(self) -> str:
        return (f"CompiledModel({len(self.graph.nodes)} nodes, {self.profile.chip}, "
                f"{self.profile.total_s * 1e6:.1f} us predicted)")


def compile(model: torch.nn.Module, example_inputs: object, chip: str | None = None,  # noqa: A001
            dtype: torch.dtype | str | None = None, kernels: Mapping[str, object] | None = None,
            symbolic: bool = False, fallback: str = "error",
            fidelity: Fidelity | str = Fidelity.SIMULATED, cache: bool = True,
            buckets: Sequence[int] | None = None,
            progress: Callable[[TuneStep | BatchStep], None] | None = None,
            workers: int | None = None, executor: BatchExecutor | None = None
            ) -> CompiledModel | BucketedModel:
    """Compile `model` for `chip` (a preset name; default `nki.default_chip()`).

    `example_inputs`: a tensor or a tuple of them (the shapes the graph is compiled for).
    `dtype` casts the model and its floating inputs first (e.g. torch.bfloat16).
    `symbolic`: predict only (a model on the meta device works; calling it is an error).
    `fallback`: "error" lists every op without a lowering; "host" runs them on the host.
    `fidelity`: SIMULATED (library kernels scheduled by tessera.sim; the default) or
    ROOFLINE (formulas: fast).
    `kernels`: op (name like "rms_norm", or a torch op) -> an NKI kernel to use instead of
    the library's (see `tessera.compiler.overrides`).
    `cache`: reuse the prices of an identical graph compiled before (on disk,
    `tessera.compiler.graph_cache`).
    `buckets`: sequence lengths (dim 1 of every input): one graph per bucket, calls padded
    to the next one (a `BucketedModel`; see `tessera.compiler.buckets`).
    `workers`: processes that tune the kernel shapes missing from the cost cache in
    parallel (SIMULATED; default the machine's cores; 1 tunes them here, one by one).
    `executor`: instead of `workers`, where to tune them: a `tessera.cost.executor.
    BatchExecutor`, e.g. `BatchExecutor.ray("ray://head:10001")` for a Ray cluster.
    `progress`: called while new kernel shapes are tuned (SIMULATED: minutes for a large
    model's shapes the first time): a `cost.batch.BatchStep` per shape tuned in the pool,
    or with `workers=1` a `tessera.kernels.tune.TuneStep` per configuration.
    """
    if buckets is not None:
        from tessera.compiler.buckets import BucketedModel, pad_to

        inputs = example_inputs if isinstance(example_inputs, tuple | list) \
            else (example_inputs,)
        return BucketedModel(buckets, lambda b: compile(  # type: ignore[return-value]
            model, tuple(pad_to(a, b) for a in inputs), chip, dtype, kernels, symbolic,
            fallback, fidelity, cache, progress=progress, workers=workers,
            executor=executor))
    plan = resolve_executor(executor, workers)  # a conflict fails before the export
    given = {op_key(k): v for k, v in (kernels or {}).items()}
    chip_name = chip or default_chip()
    try:
        spec = hw.load_chip(chip_name)
    except hw.HwError as err:
        raise CompileError(f"chip {chip_name!r}: {err}") from None
    fid = Fidelity(fidelity)
    args = example_inputs if isinstance(example_inputs, tuple | list) else (example_inputs,)
    if dtype is not None:
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        model = model.to(dt)
        args = tuple(a.to(dt) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                     for a in args)
    if symbolic and any(p.is_meta for p in model.parameters()):
        args = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    program = export(model, tuple(args))
    graph = optimise(to_graph(program, fallback, frozenset(given)))
    lowered = lower(graph, given)
    costs = _priced(graph, lowered, spec, fid, cache and not any(
        low.user is not None for low in lowered.values()), progress, plan)
    profile = ModelProfile(spec.name, fid.value, costs, plan_memory(graph, lowered))
    single = len(graph.outputs) == 1
    return CompiledModel(graph, lowered, profile, symbolic, single)


def _priced(graph: Graph, lowered: dict[str, Lowered], spec: hw.ChipSpec, fid: Fidelity,
            cache: bool, progress: Callable[[TuneStep | BatchStep], None] | None,
            plan: BatchExecutor) -> tuple[OpCost, ...]:
    """Each node's cost, from the graph cache when an identical graph was priced before."""
    key = graph_key(graph, lowered, spec.name, fid.value) if cache else ""
    if cache:
        found = graph_cache.load(key)
        if found is not None and [o.node for o in found] == [n.name for n in graph.nodes]:
            return found
    one_by_one = plan.kind is ExecutorKind.LOCAL and plan.workers == 1
    if fid is Fidelity.SIMULATED and not one_by_one:
        # tune the graph's new kernel shapes side by side; pricing then reads the cache
        calls = [EstimateRequest(c.kernel, dict(c.shapes), c.dtype)
                 for low in lowered.values() for c in low.kernels]
        tune_missing(calls, spec.name, executor=plan, progress=progress)
    costs = tuple(price(n, lowered[n.name], spec, fid, progress) for n in graph.nodes)
    if cache:
        graph_cache.store(key, costs)
    return costs
