"""RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * gamma, rows on partitions.

gamma [H] is loaded once into every partition through a stride-0 (broadcast) HBM view.
Per 128-row tile: square with the row sum from the Scalar engine, (sum / H + eps) on the
Vector engine, rsqrt on the Scalar engine, then x * rstd * gamma in one Vector instruction.
Rows need not be a multiple of 128.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

EPS = 1e-6


@nki.jit
def rmsnorm(x, gamma, eps=EPS):
    """RMS-normalise each row of x [R, H] and scale by gamma [H]."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    # gamma repeated on every partition: DMA from a stride-0 view of the [1, H] row
    g_tile = nl.ndarray((pmax, hidden), dtype=gamma.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_tile, src=gamma.reshape((1, hidden)).broadcast(0, pmax))
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, rows - start)
        xt = nl.ndarray((pmax, hidden), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt[0:p], src=x[start:start + p, :])
        sq = nl.ndarray((pmax, hidden), dtype=nl.float32, buffer=nl.sbuf)
        sum_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=sq[0:p], op=nl.square, data=xt[0:p], reduce_op=nl.add,
                        reduce_res=sum_sq[0:p], reduce_cmd=nisa.reduce_cmd.reset_reduce)
        mean_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=mean_sq[0:p], data=sum_sq[0:p], op0=nl.multiply,
                           operand0=1.0 / hidden, op1=nl.add, operand1=eps)
        rstd = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=rstd[0:p], op=nl.rsqrt, data=mean_sq[0:p])
        yt = nl.ndarray((pmax, hidden), dtype=x.dtype, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(dst=yt[0:p], data=xt[0:p], op0=nl.multiply,
                                  operand0=rstd[0:p], op1=nl.multiply, operand1=g_tile[0:p])
        nisa.dma_copy(dst=out[start:start + p, :], src=yt[0:p])
    return out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """x [R, H] standard normal and gamma [H] around 1, as `dtype`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32).astype(dtype)
    return x, gamma


def reference(x, gamma, eps=EPS):
    """x / sqrt(mean(x^2) + eps) * gamma in float64."""
    v = x.astype(np.float64)
    rstd = 1.0 / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps)
    return (v * rstd * gamma.astype(np.float64)).astype(np.float32)
