"""The graph compiler: a PyTorch model on the simulated NeuronCore (docs/compiler.md).

    from tessera.compiler import compile
    compiled = compile(model, (ids,), chip="trn2")
    compiled(ids); print(compiled.profile); print(compiled.graph)

Path: `export` (torch.export, core ATen with library ops kept whole) -> `frontend.to_graph`
(the `Graph` IR) -> `pipeline.optimise` (passes) -> `lowering.lower` (a library kernel, view,
copy or host op per node) -> `price` (cost per op) -> `ModelProfile`.
"""

from tessera.compiler.api import CompiledModel, compile
from tessera.compiler.eager import EagerRun, eager_profile
from tessera.compiler.errors import CompileError, UnsupportedOpsError
from tessera.compiler.graph import Graph, GraphError, Node, NodeKind, Value, ValueRole
from tessera.compiler.overrides import nki_op, override
from tessera.compiler.price import OpCost
from tessera.compiler.profile import LayerTime, ModelProfile

__all__ = ["CompileError", "CompiledModel", "EagerRun", "Graph", "GraphError", "LayerTime",
           "ModelProfile", "Node", "NodeKind", "OpCost", "UnsupportedOpsError", "Value",
           "ValueRole", "compile", "eager_profile", "nki_op", "override"]
