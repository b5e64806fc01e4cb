"""Beta-1 twin of ../layernorm.py: LayerNorm over the last axis, y = (x - mean) /
sqrt(var + eps) * gamma + beta, written the way the Beta-1 (`neuronxcc.nki`) tutorials
write it.

Per 128-row tile, as the Beta-1 layernorm tutorial does: `nisa.bn_stats` over chunks of at
most nl.tile_size.bn_stats_fmax (512) elements, each assigned into its slot of `stats`,
one `nisa.bn_aggr` for (mean, var), `nisa.tensor_scalar` for var + eps, `nisa.activation`
for the rsqrt and one `nisa.tensor_scalar` with two per-row operands for (x - mean) * rstd;
gamma and beta, loaded once onto every partition (partition index `0 * i_p`: one stride-0
DMA each), are applied with `nisa.tensor_tensor`. The chunk loop is `nl.static_range`, so
each chunk's width is a Python int. Rows past R are masked off in every call.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

EPS = 1e-5


@nki.jit
def layernorm(x, gamma, beta, eps=EPS):
    """Normalise each row of x [R, H] to zero mean / unit variance, then scale and shift."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    chunk = min(nl.tile_size.bn_stats_fmax, hidden)
    n_chunks = (hidden + chunk - 1) // chunk
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_f = nl.arange(hidden)[None, :]
    i_stat = nl.arange(6)[None, :]  # bn_stats gives six values per chunk
    i_col = nl.arange(1)[None, :]  # one column of a [P, k] tile
    g_tile = nl.load(gamma.reshape((1, hidden))[0 * i_p, i_f])
    b_tile = nl.load(beta.reshape((1, hidden))[0 * i_p, i_f])
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        live = i * pmax + i_p < rows
        x_tile = nl.load(x[i * pmax + i_p, i_f], mask=live)
        # six statistics per chunk (even/odd count, mean, var*count), then one aggregation
        stats = nl.ndarray((pmax, n_chunks, 6), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.static_range(n_chunks):
            width = min(hidden, (c + 1) * chunk) - c * chunk
            i_c = nl.arange(width)[None, :]
            stats[i_p, c, i_stat] = nisa.bn_stats(x_tile[i_p, c * chunk + i_c], mask=live)
        mean_var = nisa.bn_aggr(stats, mask=live)
        mean = mean_var[i_p, i_col]
        var_eps = nisa.tensor_scalar(mean_var[i_p, 1 + i_col], nl.add, eps, mask=live)
        rstd = nisa.activation(op=nl.rsqrt, data=var_eps, mask=live)
        # (x - mean) * rstd, both per-row operands in one instruction
        norm = nisa.tensor_scalar(x_tile, nl.subtract, mean, op1=nl.multiply, operand1=rstd,
                                  dtype=nl.float32, mask=live)
        norm[...] = nisa.tensor_tensor(norm, g_tile, nl.multiply, mask=live)
        y = nisa.tensor_tensor(norm, b_tile, nl.add, dtype=x.dtype, mask=live)
        nl.store(out[i * pmax + i_p, i_f], value=y, mask=live)
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
