"""LayerNorm over the last axis: y = (x - mean) / sqrt(var + eps) * gamma + beta.

Per 128-row tile the Vector engine computes mean and variance with bn_stats over chunks of
at most nl.tile_size.bn_stats_fmax (512) elements and one bn_aggr over all chunks; the
Scalar engine takes rsqrt(var + eps); normalisation is one tensor_scalar with two per-row
operands, then gamma and beta (broadcast to every partition from HBM) are applied.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

EPS = 1e-5


@nki.jit
def layernorm(x, gamma, beta, eps=EPS):
    """Normalise each row of x [R, H] to zero mean / unit variance, then scale and shift."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    chunk = min(nl.tile_size.bn_stats_fmax, hidden)
    n_chunks = (hidden + chunk - 1) // chunk
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    g_tile = nl.ndarray((pmax, hidden), dtype=gamma.dtype, buffer=nl.sbuf)
    b_tile = nl.ndarray((pmax, hidden), dtype=beta.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_tile, src=gamma.reshape((1, hidden)).broadcast(0, pmax))
    nisa.dma_copy(dst=b_tile, src=beta.reshape((1, hidden)).broadcast(0, pmax))
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, rows - start)
        xt = nl.ndarray((pmax, hidden), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt[0:p], src=x[start:start + p, :])
        # six statistics per chunk (even/odd count, mean, var*count), then one aggregation
        stats = nl.ndarray((pmax, n_chunks, 6), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.affine_range(n_chunks):
            lo = c * chunk
            hi = min(hidden, lo + chunk)
            nisa.bn_stats(dst=stats[0:p, c, :], data=xt[0:p, lo:hi])
        mean_var = nl.ndarray((pmax, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.bn_aggr(dst=mean_var[0:p], data=stats[0:p])
        var_eps = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=var_eps[0:p], data=mean_var[0:p, 1:2], op0=nl.add,
                           operand0=eps)
        rstd = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=rstd[0:p], op=nl.rsqrt, data=var_eps[0:p])
        # (x - mean) * rstd, both per-row operands in one instruction
        norm = nl.ndarray((pmax, hidden), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=norm[0:p], data=xt[0:p], op0=nl.subtract,
                           operand0=mean_var[0:p, 0:1], op1=nl.multiply, operand1=rstd[0:p])
        nisa.tensor_tensor(dst=norm[0:p], data1=norm[0:p], data2=g_tile[0:p], op=nl.multiply)
        yt = nl.ndarray((pmax, hidden), dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=yt[0:p], data1=norm[0:p], data2=b_tile[0:p], op=nl.add)
        nisa.dma_copy(dst=out[start:start + p, :], src=yt[0:p])
    return out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """x [R, H] with a non-zero mean, gamma around 1 and beta around 0, as `dtype`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 2.0, shape).astype(np.float32).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32).astype(dtype)
    beta = rng.uniform(-0.5, 0.5, shape[-1]).astype(np.float32).astype(dtype)
    return x, gamma, beta


def reference(x, gamma, beta, eps=EPS):
    """(x - mean) / sqrt(var + eps) * gamma + beta in float64 (population variance)."""
    v = x.astype(np.float64)
    mean = v.mean(axis=-1, keepdims=True)
    var = v.var(axis=-1, keepdims=True)
    y = (v - mean) / np.sqrt(var + eps) * gamma.astype(np.float64) + beta.astype(np.float64)
    return y.astype(np.float32)
