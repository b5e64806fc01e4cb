"""The contract between library kernels and everything that uses them (cost, compiler).

Each library kernel registers one `KernelDef`: the op it implements, the `@nki.jit`
kernel, how to build its inputs for given shapes (real arrays for tests, `TensorSpec`s
for symbolic profiling), a numpy reference, its FLOP and minimum HBM-byte counts (for the
roofline), and its tunable block sizes with their candidate values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Op(Enum):
    """Operations the kernel library implements (one `KernelDef` each)."""

    MATMUL = "matmul"                      # shapes: M, K, N (+ B for batched); layout flags
    BATCHED_MATMUL = "batched_matmul"
    SOFTMAX = "softmax"                    # rows, cols
    RMSNORM = "rmsnorm"
    ADD_RMSNORM = "add_rmsnorm"            # residual add + RMSNorm: rows, cols; (h, y) out
    LAYERNORM = "layernorm"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"
    SILU = "silu"
    SWIGLU = "swiglu"
    RESIDUAL_ADD = "residual_add"
    ROPE = "rope"
    EMBEDDING = "embedding"
    TRANSPOSE = "transpose"
    BATCHED_TRANSPOSE = "batched_transpose"
    CROSS_ENTROPY = "cross_entropy"
    FLASH_ATTENTION = "flash_attention"
    DECODE_ATTENTION = "decode_attention"


Shapes = Mapping[str, int]


@dataclass(frozen=True)
class KernelDef:
    """One library kernel and everything needed to run, check, cost and tune it.

    - `kernel`: the `@nki.jit` kernel; called as kernel(*inputs, **params).
    - `make_inputs(shapes, dtype, rng)`: numpy inputs (rng is a numpy Generator), in the
      order the kernel takes them. Symbolic profiling uses their shapes/dtypes only, via
      `input_specs` (derived automatically from `make_inputs` unless given).
    - `reference(*inputs, **params)`: the expected output(s) in float32/float64.
    - `flops(shapes)`, `hbm_bytes(shapes, itemsize)`: the work the op must do at minimum
      (compulsory HBM traffic: read inputs once, write outputs once).
    - `tunables`: block-size parameter -> candidate values; `defaults`: the value used when
      no tuned configuration exists. `shape_keys`: the names `shapes` must provide.
    """

    op: Op
    name: str
    kernel: Callable[..., object]
    shape_keys: tuple[str, ...]
    make_inputs: Callable[..., tuple[np.ndarray, ...]]
    reference: Callable[..., object]
    flops: Callable[[Shapes], float]
    hbm_bytes: Callable[[Shapes, int], float]
    tunables: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    defaults: Mapping[str, int] = field(default_factory=dict)
    input_specs: Callable[..., tuple[object, ...]] | None = None
    dtypes: tuple[str, ...] = ("float32", "bfloat16")


_REGISTRY: dict[Op, KernelDef] = {}


def register(definition: KernelDef) -> KernelDef:
    """Add a kernel to the library (one per op; a second registration is an error)."""
    if definition.op in _REGISTRY and _REGISTRY[definition.op] is not definition:
        raise ValueError(f"{definition.op.value} is already registered by "
                         f"{_REGISTRY[definition.op].name}")
    _REGISTRY[definition.op] = definition
    return definition


def get(op: Op | str) -> KernelDef:
    """The registered kernel for `op` (an `Op` or its value)."""
    _load_all()
    key = op if isinstance(op, Op) else _op_from_name(op)
    found = _REGISTRY.get(key)
    if found is None:
        known = ", ".join(sorted(o.value for o in _REGISTRY))
        raise KeyError(f"no library kernel for {key.value}; available: {known}")
    return found


def all_kernels() -> tuple[KernelDef, ...]:
    """Every registered kernel, in `Op` order."""
    _load_all()
    return tuple(_REGISTRY[o] for o in Op if o in _REGISTRY)


def _op_from_name(name: str) -> Op:
    try:
        return Op(name)
    except ValueError:
        known = ", ".join(o.value for o in Op)
        raise KeyError(f"unknown op {name!r}; known ops: {known}") from None


def _load_all() -> None:
    # kernel modules register themselves on import
    import tessera.kernels  # noqa: F401
