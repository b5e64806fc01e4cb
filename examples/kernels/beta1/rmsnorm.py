"""Beta-1 twin of ../rmsnorm.py: RMSNorm over the last axis, y = x / sqrt(mean(x^2) + eps)
* gamma, rows on partitions, written the way the Beta-1 (`neuronxcc.nki`) tutorials write
it.

gamma [H] is loaded once onto every partition: the partition index `0 * i_p` makes the
load read the one [1, H] row 128 times (one stride-0 DMA, as the Beta-2 kernel's
`.broadcast(0, 128)` view). Per 128-row tile, each call returns its tile:
`nisa.activation` squares with the row sum (reduce_cmd reset_reduce) written into
`sum_sq`, one `nisa.tensor_scalar` gives sum / H + eps, `nisa.activation` the rsqrt and
`nisa.scalar_tensor_tensor` x * rstd * gamma. Rows past R are masked off in every call.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

EPS = 1e-6


@nki.jit
def rmsnorm(x, gamma, eps=EPS):
    """RMS-normalise each row of x [R, H] and scale by gamma [H]."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_f = nl.arange(hidden)[None, :]
    # gamma repeated on every partition: every partition reads row 0 of the [1, H] view
    g_tile = nl.load(gamma.reshape((1, hidden))[0 * i_p, i_f])
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        live = i * pmax + i_p < rows
        x_tile = nl.load(x[i * pmax + i_p, i_f], mask=live)
        sum_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(op=nl.square, data=x_tile, reduce_op=nl.add, reduce_res=sum_sq,
                        reduce_cmd=nisa.reduce_cmd.reset_reduce, dtype=nl.float32,
                        mask=live)
        mean_sq = nisa.tensor_scalar(sum_sq, nl.multiply, 1.0 / hidden, op1=nl.add,
                                     operand1=eps, mask=live)
        rstd = nisa.activation(op=nl.rsqrt, data=mean_sq, mask=live)
        y = nisa.scalar_tensor_tensor(data=x_tile, op0=nl.multiply, operand0=rstd,
                                      op1=nl.multiply, operand1=g_tile, dtype=x.dtype,
                                      mask=live)
        nl.store(out[i * pmax + i_p, i_f], value=y, mask=live)
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
