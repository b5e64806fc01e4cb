"""How the model reports sort a compiled model's ops: by layer, by what they do, by lane.

Shared by the JSON report, the per-layer PNG and the Perfetto trace, so the three agree.

* layers are `ModelProfile.layer_of` (`layers.3`, `model.embed_tokens`, `lm_head`; "(top)"
  for ops of the top module), the rows of `ModelProfile.by_layer()`.
* `op_group`: what the time is spent on: `matmul` (linear, matmul, bmm), `attention` (a
  whole SDPA: the flash kernel, or matmuls around a masked softmax), `norm` (rms/layer
  norm, softmax), `elementwise` (the library's pointwise kernels: residual add, SwiGLU,
  activations), `embedding`, `copy` (permutes, slices, concatenations, pointwise ops
  without a library kernel), `view` (no device work) and `host` (fallback ops).
* `op_lane`: the trace lane of an op: `host` and `copy` ops have lanes of their own; a
  library kernel goes on the resource that bounds it (`tensor`, `vector`, ..., `hbm`,
  `latency` when fixed latencies dominate); a view has no lane (it takes no time).
"""

from __future__ import annotations

from tessera.compiler.price import OpCost, PriceKind

GROUPS = ("matmul", "attention", "norm", "elementwise", "embedding", "copy", "host", "view")
_KERNEL_GROUPS = {
    "matmul": "matmul", "batched_matmul": "matmul", "flash_attention": "attention",
    "rmsnorm": "norm", "add_rmsnorm": "norm", "layernorm": "norm", "softmax": "norm",
    "embedding": "embedding",
}
# lanes in the order a reader scans them: the engines, memory, then the non-kernel work
LANES = ("tensor", "vector", "scalar", "gpsimd", "sync", "dma", "hbm", "latency", "unknown",
         "copy", "host")


def op_group(op: OpCost) -> str:
    """What the op's time is spent on (one of `GROUPS`; see the module docstring)."""
    if op.priced_as == PriceKind.HOST:
        return "host"
    if op.priced_as == PriceKind.VIEW:
        return "view"
    if op.priced_as == PriceKind.COPY:
        return "copy"
    if "scaled_dot_product_attention" in op.op:
        return "attention"
    groups = {_KERNEL_GROUPS.get(k, "elementwise") for k in op.kernels}
    for group in GROUPS:  # a mixed op takes the first group of the list
        if group in groups:
            return group
    return "elementwise"


def op_lane(op: OpCost) -> str | None:
    """The trace lane of the op, or None for a view (see the module docstring)."""
    if op.priced_as == PriceKind.VIEW:
        return None
    if op.priced_as in (PriceKind.HOST, PriceKind.COPY):
        return op.priced_as
    return op.bound


def lane_order(names: set[str]) -> list[str]:
    """`names` in `LANES` order, any others after them in name order."""
    return [n for n in LANES if n in names] + sorted(names - set(LANES))
