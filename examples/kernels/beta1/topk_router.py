"""Beta-1 twin of ../topk_router.py: mixture-of-experts top-k router (each token's k <= 8
best experts), written the way the Beta-1 (`neuronxcc.nki`) kernels write it.

Router logits [T, E] go 128 tokens per tile onto the partitions (loaded as float32). Per
tile `nisa.max8` returns each token's 8 largest logits in descending order and
`nisa.nc_find_index8` the expert index of each; the first k columns (index vector `i_k`)
are stored. `topk_router_softmax` also turns the k logits into routing weights,
softmax(top-k logits): `nisa.activation` gives exp(v - max) with the row sum
(reduce_cmd reset_reduce) written into `row_sum`. Tokens past T are masked off in every
call.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

TOP = 8  # max8 / nc_find_index8 always produce 8 per token


def _top8(logits, i, live):
    """(values [128, 8] fp32, indices [128, 8] uint32) of the tokens of tile i."""
    pmax = nl.tile_size.pmax
    i_p = nl.arange(pmax)[:, None]
    i_e = nl.arange(logits.shape[1])[None, :]
    logits_sb = nl.load(logits[i * pmax + i_p, i_e], dtype=nl.float32, mask=live)
    top8_vals = nisa.max8(src=logits_sb, mask=live)
    top8_idx = nisa.nc_find_index8(data=logits_sb, vals=top8_vals, dtype=nl.uint32,
                                   mask=live)
    return top8_vals, top8_idx


@nki.jit
def topk_router(logits, k=TOP):
    """(top-k logits [T, k] in the logits' dtype, their expert indices [T, k] uint32)."""
    assert 1 <= k <= TOP, f"k must be 1..{TOP}, got {k}"
    tokens = logits.shape[0]
    pmax = nl.tile_size.pmax
    values = nl.ndarray((tokens, k), dtype=logits.dtype, buffer=nl.shared_hbm)
    indices = nl.ndarray((tokens, k), dtype=nl.uint32, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_k = nl.arange(k)[None, :]
    for i in nl.affine_range((tokens + pmax - 1) // pmax):
        live = i * pmax + i_p < tokens
        top8_vals, top8_idx = _top8(logits, i, live)
        vals_out = nisa.tensor_copy(top8_vals[i_p, i_k], dtype=logits.dtype, mask=live)
        nl.store(values[i * pmax + i_p, i_k], value=vals_out, mask=live)
        nl.store(indices[i * pmax + i_p, i_k], value=top8_idx[i_p, i_k], mask=live)
    return values, indices


@nki.jit
def topk_router_softmax(logits, k=TOP):
    """(routing weights softmax(top-k logits) [T, k] in the logits' dtype, indices [T, k])."""
    assert 1 <= k <= TOP, f"k must be 1..{TOP}, got {k}"
    tokens = logits.shape[0]
    pmax = nl.tile_size.pmax
    weights = nl.ndarray((tokens, k), dtype=logits.dtype, buffer=nl.shared_hbm)
    indices = nl.ndarray((tokens, k), dtype=nl.uint32, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_k = nl.arange(k)[None, :]
    i_col = nl.arange(1)[None, :]
    for i in nl.affine_range((tokens + pmax - 1) // pmax):
        live = i * pmax + i_p < tokens
        top8_vals, top8_idx = _top8(logits, i, live)
        # max8 sorts descending: column 0 is the row max, negated to serve as the exp bias
        neg_max = nisa.tensor_scalar(top8_vals[i_p, i_col], nl.multiply, -1.0, mask=live)
        row_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        ex = nisa.activation(op=nl.exp, data=top8_vals[i_p, i_k], bias=neg_max, scale=1.0,
                             reduce_op=nl.add, reduce_res=row_sum,
                             reduce_cmd=nisa.reduce_cmd.reset_reduce, dtype=nl.float32,
                             mask=live)
        inv_sum = nisa.reciprocal(row_sum, mask=live)
        w = nisa.tensor_scalar(ex, nl.multiply, inv_sum, dtype=logits.dtype, mask=live)
        nl.store(weights[i * pmax + i_p, i_k], value=w, mask=live)
        nl.store(indices[i * pmax + i_p, i_k], value=top8_idx[i_p, i_k], mask=live)
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
