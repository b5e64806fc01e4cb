"""Layout: which transposes are materialised, and by whom.

The device holds every value it computes contiguously, so a transpose (`permute`,
`transpose`, `t`) is priced as a copy into the new layout. When every reader of a transpose
copies it again anyway (`clone`, `_to_copy`: what `.contiguous()` and `.reshape` of a
permuted tensor export to), that reader's copy can read the source through a strided access
pattern (DMA descriptors take any strides) and write the permuted layout once, so the
transpose itself is only a strided view of its input. Such transposes get the attribute
`layout="strided"`, which the lowering prices as a view; the copy that follows is priced as
before, so each permute-then-copy pair moves its bytes once instead of twice.
"""

from __future__ import annotations

import dataclasses

from tessera.compiler.frontend import base_name
from tessera.compiler.graph import Graph, NodeKind

# readers that write their input out in full, in a layout of their own
_COPIES = frozenset(("clone", "_to_copy"))
STRIDED = "strided"


def elide_transposes(graph: Graph) -> Graph:
    """Mark transposes that only copies read as strided views (see the module docstring)."""
    users = graph.users()
    by_name = {n.name: n for n in graph.nodes}
    marked = {}
    for node in graph.nodes:
        readers = users[node.name]
        if node.kind is not NodeKind.TRANSPOSE or not readers \
                or node.name in graph.outputs \
                or not all(base_name(by_name[r].op) in _COPIES for r in readers):
            continue
        attrs = tuple(sorted((*node.attrs, ("layout", STRIDED))))
        marked[node.name] = dataclasses.replace(node, attrs=attrs)
    if not marked:
        return graph
    return graph.replace_nodes([marked.get(n.name, n) for n in graph.nodes],
                               outputs=list(graph.outputs))
