"""Backward-pass work of each forward op, from the tensors the backward reads and writes.

A matmul's backward is two matmuls: the input gradient dX = dY W^T (M x N x K) and, when
the weight trains, the weight gradient dW = X^T dY (K x M x N); a batched matmul of two
activations (unfused attention) needs both operands' gradients. Every other kernel's
backward is priced from its own forward estimate, with its FLOPs and its HBM bytes scaled
by the counts below (derived per kernel in the comments: tensors of the op's size read or
written by the backward, over those of the forward).
"""

from __future__ import annotations

from tessera.plan.devices import Device, OpTime
from tessera.plan.layers import BlockOp
from tessera.plan.workload import TrainDtype

# kernel -> (FLOPs factor, bytes factor) of its backward relative to its forward
BACKWARD_FACTORS: dict[str, tuple[float, float]] = {
    # reads x, dy, writes dx (+ a weight-gradient partial): 3 row-sized tensors vs 2
    "rmsnorm": (2.0, 1.5),
    "layernorm": (2.0, 1.5),
    # reads the sum h, dy and the residual's incoming gradient, writes d(sum): 4 vs 4
    "add_rmsnorm": (2.0, 1.0),
    # reads gate, up and d(out), writes d(gate), d(up): 5 vs 3
    "swiglu": (2.0, 5.0 / 3.0),
    # reads x and dy, writes dx: 3 vs 2
    "gelu": (2.0, 1.5),
    "gelu_tanh": (2.0, 1.5),
    "silu": (2.0, 1.5),
    # reads y and dy, writes dx: 3 vs 2; about as many operations per element
    "softmax": (1.0, 1.5),
    # the inverse rotation: the same work
    "rope": (1.0, 1.0),
    # the incoming gradient is added to the residual stream's: one add, as in forward
    "residual_add": (1.0, 1.0),
    # reads the saved logits, writes their gradient: 2 vs 1 (forward reads them only)
    "cross_entropy": (1.0, 2.0),
    # scatter-adds the rows' gradients into the table: the forward's gather, reversed
    "embedding": (1.0, 1.0),
    # a transpose back
    "copy": (1.0, 1.0),
    # recomputes the scores, then dV, dP, dQ, dK: 5 matmuls vs 2; reads q, k, v, o, dO and
    # writes dq, dk, dv: twice the forward's q, k, v, o (Dao 2023, section 3.1.2)
    "flash_attention": (2.5, 2.0),
}


def backward_time(device: Device, op: BlockOp, dtype: str, matmul_dtype: TrainDtype,
                  weight_trains: bool, forward: OpTime | None = None) -> tuple[float, float]:
    """(seconds of the backward of one `op` with all its calls, of which weight-gradient
    matmuls) on `device`; `forward` is the op's forward time per call when known."""
    sh = dict(op.shapes)
    if op.kernel == "matmul":
        m, k, n = sh["M"], sh["K"], sh["N"]
        mdt = matmul_dtype if op.weight else TrainDtype.BF16
        dx = device.op("matmul", (("M", m), ("K", n), ("N", k)), dtype, mdt).time_s
        dw = 0.0
        if op.weight and weight_trains:
            dw = device.op("matmul", (("M", k), ("K", m), ("N", n)), dtype, mdt).time_s
        return op.calls * (dx + dw), op.calls * dw
    if op.kernel == "batched_matmul":
        b, m, k, n = sh["B"], sh["M"], sh["K"], sh["N"]
        da = device.op("batched_matmul", (("B", b), ("M", m), ("K", n), ("N", k)), dtype)
        db = device.op("batched_matmul", (("B", b), ("M", k), ("K", m), ("N", n)), dtype)
        return op.calls * (da.time_s + db.time_s), 0.0
    flops_f, bytes_f = BACKWARD_FACTORS[op.kernel]
    fwd = forward or device.op(op.kernel, op.shapes, dtype)
    return op.calls * fwd.scaled(flops_f, bytes_f).time_s, 0.0
