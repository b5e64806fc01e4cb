"""Mixture-of-experts top-k router: for each token, its k <= 8 best experts.

Router logits [T, E] (tokens x experts, 8 <= E <= 16,384) go 128 tokens per tile onto the
partitions. Per tile, as the vendor library's router_topk does it: `max8` on the Vector
engine finds each token's 8 largest logits in descending order, `nc_find_index8` the
expert index of each (equal logits take successive experts, lowest index first), and the
first k of both are stored. `topk_router_softmax` also turns the k logits into routing
weights, softmax(top-k logits), with the row sum from the Scalar engine's reduce registers.
Tokens need not be a multiple of 128.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

TOP = 8  # max8 / nc_find_index8 always produce 8 per token


def _top8(logits, start, p, n_experts):
    """(values [pmax, 8] fp32, indices [pmax, 8] uint32) of tokens start..start+p."""
    pmax = nl.tile_size.pmax
    logits_sb = nl.ndarray((pmax, n_experts), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=logits_sb[0:p], src=logits[start:start + p, :])
    top8_vals = nl.ndarray((pmax, TOP), dtype=nl.float32, buffer=nl.sbuf)
    nisa.max8(dst=top8_vals[0:p], src=logits_sb[0:p])
    top8_idx = nl.ndarray((pmax, TOP), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.nc_find_index8(dst=top8_idx[0:p], data=logits_sb[0:p], vals=top8_vals[0:p])
    return top8_vals, top8_idx


@nki.jit
def topk_router(logits, k=TOP):
    """(top-k logits [T, k] in the logits' dtype, their expert indices [T, k] uint32)."""
    assert 1 <= k <= TOP, f"k must be 1..{TOP}, got {k}"
    tokens, n_experts = logits.shape
    pmax = nl.tile_size.pmax
    values = nl.ndarray((tokens, k), dtype=logits.dtype, buffer=nl.shared_hbm)
    indices = nl.ndarray((tokens, k), dtype=nl.uint32, buffer=nl.shared_hbm)
    for i in nl.affine_range((tokens + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, tokens - start)
        top8_vals, top8_idx = _top8(logits, start, p, n_experts)
        vals_out = nl.ndarray((pmax, k), dtype=logits.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=vals_out[0:p], src=top8_vals[0:p, 0:k])
        nisa.dma_copy(dst=values[start:start + p, :], src=vals_out[0:p])
        nisa.dma_copy(dst=indices[start:start + p, :], src=top8_idx[0:p, 0:k])
    return values, indices


@nki.jit
def topk_router_softmax(logits, k=TOP):
    """(routing weights softmax(top-k logits) [T, k] in the logits' dtype, indices [T, k])."""
    assert 1 <= k <= TOP, f"k must be 1..{TOP}, got {k}"
    tokens, n_experts = logits.shape
    pmax = nl.tile_size.pmax
    weights = nl.ndarray((tokens, k), dtype=logits.dtype, buffer=nl.shared_hbm)
    indices = nl.ndarray((tokens, k), dtype=nl.uint32, buffer=nl.shared_hbm)
    for i in nl.affine_range((tokens + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, tokens - start)
        top8_vals, top8_idx = _top8(logits, start, p, n_experts)
        # max8 sorts descending: column 0 is the row max, negated to serve as the exp bias
        neg_max = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=neg_max[0:p], data=top8_vals[0:p, 0:1], op0=nl.multiply,
                           operand0=-1.0)
        ex = nl.ndarray((pmax, k), dtype=nl.float32, buffer=nl.sbuf)
        row_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=ex[0:p], op=nl.exp, data=top8_vals[0:p, 0:k], bias=neg_max[0:p],
                        scale=1.0, reduce_op=nl.add, reduce_res=row_sum[0:p],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        inv_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv_sum[0:p], data=row_sum[0:p])
        w = nl.ndarray((pmax, k), dtype=logits.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=w[0:p], data=ex[0:p], op0=nl.multiply, operand0=inv_sum[0:p])
        nisa.dma_copy(dst=weights[start:start + p, :], src=w[0:p])
        nisa.dma_copy(dst=indices[start:start + p, :], src=top8_idx[0:p, 0:k])
    return weights, indices


def example_inputs(tokens=200, experts=64, dtype=nl.float32, seed=0):
    """Router logits [tokens, experts] of `dtype` (normal, scale 2)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, 2.0, (tokens, experts)).astype(np.float32).astype(dtype),)


def _topk(logits, k):
    """Top-k values (float64) and indices: descending, equal values lowest index first."""
    v = np.asarray(logits).astype(np.float64)
    order = np.argsort(-v, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(v, order, axis=1), order.astype(np.uint32)


def reference(logits, k=TOP):
    """(top-k logits, expert indices), from a stable descending sort."""
    values, order = _topk(logits, k)
    return values.astype(np.float32), order


def reference_topk_router_softmax(logits, k=TOP):
    """(softmax over the top-k logits, expert indices), in float64."""
    values, order = _topk(logits, k)
    e = np.exp(values - values[:, :1])
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32), order
