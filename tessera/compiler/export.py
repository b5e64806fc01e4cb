"""torch.export -> core ATen, keeping the ops the kernel library implements whole.

`export(model, args)` traces non-strictly (`torch.export.export(strict=False)`: the model's
Python runs as written) and decomposes to core ATen with the default table minus the ops
that have library kernels (`KEPT`), so a Linear stays one `aten.linear` node and attention
one `aten.scaled_dot_product_attention` node instead of their math expansions. Exporting
a model built on the meta device gives shapes without values (symbolic compilation).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch

from tessera.compiler.errors import CompileError

aten = torch.ops.aten

# ops with a library kernel (or a direct lowering) that decomposition would take apart
KEPT = (aten.linear.default, aten.matmul.default, aten.scaled_dot_product_attention.default,
        aten.layer_norm.default, aten.rms_norm.default, aten.softmax.int, aten.silu.default)


def export(model: torch.nn.Module, args: tuple, kwargs: Mapping[str, object] | None = None
           ) -> torch.export.ExportedProgram:
    """The model as a core-ATen `ExportedProgram` with the `KEPT` ops whole."""
    if not isinstance(model, torch.nn.Module):
        raise CompileError(f"tessera.compile needs a torch.nn.Module, got "
                           f"{type(model).__name__}")
    try:
        program = torch.export.export(model, tuple(args), dict(kwargs or {}), strict=False)
    except Exception as err:  # torch raises many types; the message is what helps
        raise CompileError(f"torch.export could not trace {type(model).__name__}: "
                           f"{type(err).__name__}: {str(err).splitlines()[0]}") from err
    table = torch.export.default_decompositions()
    for op in KEPT:
        if op in table:
            del table[op]
    with warnings.catch_warnings():  # pytree's LeafSpec deprecation, from torch itself
        warnings.simplefilter("ignore", FutureWarning)
        return program.run_decompositions(table)
