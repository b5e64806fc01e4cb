"""Tessera's kernel library, written in `tessera.nki` (see `registry.py` for the contract)."""

from __future__ import annotations

# Each kernel module registers its KernelDef(s) when imported.
from tessera.kernels import (  # noqa: F401
    add_norm,
    attention,
    cross_entropy,
    decode_attention,
    elementwise,
    embedding,
    matmul,
    norms,
    rope,
    softmax,
    transpose,
)
from tessera.kernels.registry import KernelDef, Op, all_kernels, get, register
from tessera.kernels.tune import tune

__all__ = ["KernelDef", "Op", "all_kernels", "get", "register", "tune"]
