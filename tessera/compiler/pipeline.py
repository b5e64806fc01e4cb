"""The compiler's passes, in order: this file is the table of contents.

    graph = dead_code(graph)               # passes/dead_code.py
    graph = recognise_rope(graph)          # passes/patterns.py: before folding (structure)
    graph = fold_constants(graph)          # passes/constants.py: positions, rope tables
    graph = dead_code(graph)
    graph = recognise_rms_norm(graph)      # passes/patterns.py: hand-written RMSNorm
    graph = dead_code(graph)
    graph = fuse_swiglu(graph)             # passes/fusion.py: silu(gate) * up
    graph = fuse_matmul_activation(graph)  # passes/fusion.py: activation in the epilogue
    graph = fuse_residual_norm(graph)      # passes/fusion.py: residual add into RMSNorm
    graph = elide_transposes(graph)        # passes/layout.py: permute-then-copy moves once
then `lowering.lower` picks a kernel per node and `passes/memory.plan_memory` plans HBM.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.compiler.graph import Graph
from tessera.compiler.passes.constants import fold_constants
from tessera.compiler.passes.dead_code import dead_code
from tessera.compiler.passes.fusion import (
    fuse_matmul_activation,
    fuse_residual_norm,
    fuse_swiglu,
)
from tessera.compiler.passes.layout import elide_transposes
from tessera.compiler.passes.patterns import recognise_rms_norm, recognise_rope

Pass = Callable[[Graph], Graph]
PASSES: tuple[tuple[str, Pass], ...] = (
    ("dead_code", dead_code),
    ("recognise_rope", recognise_rope),
    ("fold_constants", fold_constants),
    ("dead_code_after_folding", dead_code),
    ("recognise_rms_norm", recognise_rms_norm),
    ("dead_code_after_patterns", dead_code),
    ("fuse_swiglu", fuse_swiglu),
    ("fuse_matmul_activation", fuse_matmul_activation),
    ("fuse_residual_norm", fuse_residual_norm),
    ("elide_transposes", elide_transposes),
)


def optimise(graph: Graph, verify: bool = False) -> Graph:
    """Run `PASSES` in order (`verify`: check the graph after each, as the tests do)."""
    for _, fn in PASSES:
        graph = fn(graph)
        if verify:
            graph.verify()
    return graph
