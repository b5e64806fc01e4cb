"""Row softmax of an [R, C] tensor: softmax over the last axis, 128 rows per tile.

Per tile: max on the Vector engine (negated, so it can serve as a bias), exp(x - max) with
the row sum accumulated by the Scalar engine in the same instruction, one reciprocal per row,
and a multiply by that per-row scalar. Rows need not be a multiple of 128.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402


@nki.jit
def softmax_rows(x):
    """out[r, :] = exp(x[r, :] - max(x[r, :])) / sum(exp(x[r, :] - max(x[r, :])))."""
    rows, cols = x.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, rows - start)
        xt = nl.ndarray((pmax, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt[0:p], src=x[start:start + p, :])
        # -max per row: negated so the activation below can add it as its bias
        neg_max = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=neg_max[0:p], op=nl.maximum, data=xt[0:p], axis=(1,),
                           negate=True)
        # exp(x - max), and the row sum of it from the Scalar engine's reduce registers
        ex = nl.ndarray((pmax, cols), dtype=nl.float32, buffer=nl.sbuf)
        row_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=ex[0:p], op=nl.exp, data=xt[0:p], bias=neg_max[0:p], scale=1.0,
                        reduce_op=nl.add, reduce_res=row_sum[0:p],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        inv_sum = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv_sum[0:p], data=row_sum[0:p])
        yt = nl.ndarray((pmax, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=yt[0:p], data=ex[0:p], op0=nl.multiply, operand0=inv_sum[0:p])
        nisa.dma_copy(dst=out[start:start + p, :], src=yt[0:p])
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
