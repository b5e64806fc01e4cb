"""Beta-1 twin of ../softmax.py: row softmax of an [R, C] tensor (softmax over the last
axis, 128 rows per tile), written the way the Beta-1 (`neuronxcc.nki`) tutorials write it.

The fused-softmax tutorial spells it with nl.max / nl.exp / nl.sum; this twin keeps the
Beta-2 kernel's fused instructions, each returning its tile: `nisa.tensor_reduce` gives
the negated row max (usable as a bias), `nisa.activation` exp(x - max) with the row sum
(reduce_cmd reset_reduce) written in place into `row_sum`, `nisa.reciprocal` one value
per row and `nisa.tensor_scalar` the scaling. The last tile's rows past R are masked off
in every call.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402


@nki.jit
def softmax_rows(x):
    """out[r, :] = exp(x[r, :] - max(x[r, :])) / sum(exp(x[r, :] - max(x[r, :])))."""
    rows, cols = x.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_f = nl.arange(cols)[None, :]
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        live = i * pmax + i_p < rows
        x_tile = nl.load(x[i * pmax + i_p, i_f], mask=live)
        # -max per row: negated so that the activation below can add it as its bias
        neg_max = nisa.tensor_reduce(nl.maximum, x_tile, axis=(1,), negate=True,
                                     keepdims=True, dtype=nl.float32, mask=live)
        # exp(x - max), and the row sum of it from the Scalar engine's reduce registers
        row_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        ex = nisa.activation(op=nl.exp, data=x_tile, bias=neg_max, scale=1.0,
                             reduce_op=nl.add, reduce_res=row_sum,
                             reduce_cmd=nisa.reduce_cmd.reset_reduce, dtype=nl.float32,
                             mask=live)
        inv_sum = nisa.reciprocal(row_sum, mask=live)
        y = nisa.tensor_scalar(ex, nl.multiply, inv_sum, dtype=x.dtype, mask=live)
        nl.store(out[i * pmax + i_p, i_f], value=y, mask=live)
    return out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """One random [R, C] array of `dtype` with a spread of logits (scale 4)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, 4.0, shape).astype(np.float32).astype(dtype),)


def reference(x):
    """Numerically stable softmax over the last axis, in float64."""
    v = x.astype(np.float64)
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
