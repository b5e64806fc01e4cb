"""Tessera's kernel library, written in `tessera.nki` (see `registry.py` for the contract)."""

from __future__ import annotations

import importlib

from tessera.kernels.registry import KernelDef, Op, all_kernels, get, register
from tessera.kernels.tune import tune

# Modules that register kernels; a module not written yet is skipped so the package imports.
_MODULES = ("matmul", "norms", "softmax", "elementwise", "rope", "embedding", "transpose",
            "cross_entropy", "attention", "decode_attention")
for _name in _MODULES:
    try:
        importlib.import_module(f"tessera.kernels.{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"tessera.kernels.{_name}":
            raise

__all__ = ["KernelDef", "Op", "all_kernels", "get", "register", "tune"]
