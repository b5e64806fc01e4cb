"""Beta-1 twin of ../rmsnorm_fp8_quant.py: RMSNorm then per-row FP8 quantisation, written
the way the Beta-1 (`neuronxcc.nki`) kernels write it. Returns q [R, H] float8_e4m3 and
the float32 dequantisation scale D [R, 1] per row (q * D ~ RMSNorm(x)).

The math is the Beta-2 file's: y = x / sqrt(mean(x^2) + eps) * gamma,
D = max(max|y| / 240, MIN_DEQUANT_SCALE), q = fp8(y * (1 / D)). Each nisa call returns
its tile; the row absmax is `nisa.tensor_scalar_reduce` with `op0=nl.abs` against 0.0
(the Beta-1 spelling of |y|, as the vendor's Beta-1 RMSNorm-Quant kernel writes it),
writing the row max in place into `dequant`; the later steps on `dequant` are assigned
back into it (`dequant[...] = ...`). Rows past R are masked off in every call.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

EPS = 1e-6
FP8_MAX = 240.0  # largest finite float8_e4m3
MIN_DEQUANT_SCALE = 1e-10  # floor of D: 1 / D stays finite for a row of zeros


def _rms_normalize(x_tile, g_tile, live, hidden, eps):
    """y [128, H] float32 = x * rstd * gamma (rows where `live` holds)."""
    pmax = nl.tile_size.pmax
    sum_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(op=nl.square, data=x_tile, reduce_op=nl.add, reduce_res=sum_sq,
                    reduce_cmd=nisa.reduce_cmd.reset_reduce, dtype=nl.float32, mask=live)
    mean_sq = nisa.tensor_scalar(sum_sq, nl.multiply, 1.0 / hidden, op1=nl.add,
                                 operand1=eps, mask=live)
    rstd = nisa.activation(op=nl.rsqrt, data=mean_sq, mask=live)
    return nisa.scalar_tensor_tensor(data=x_tile, op0=nl.multiply, operand0=rstd,
                                     op1=nl.multiply, operand1=g_tile, dtype=nl.float32,
                                     mask=live)


def _quantize_rows(y, live):
    """(q [128, H] float8_e4m3, D [128, 1] float32) of y's live rows."""
    pmax = nl.tile_size.pmax
    dequant = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    # |y| (abs against 0.0), and the row max of it, in one Vector instruction
    nisa.tensor_scalar_reduce(data=y, op0=nl.abs, operand0=0.0, reduce_op=nl.maximum,
                              reduce_res=dequant, dtype=nl.float32, mask=live)
    dequant[...] = nisa.activation(op=nl.copy, data=dequant, scale=1.0 / FP8_MAX, mask=live)
    dequant[...] = nisa.tensor_scalar(dequant, nl.maximum, MIN_DEQUANT_SCALE, mask=live)
    quant = nisa.reciprocal(dequant, mask=live)
    q = nisa.tensor_scalar(y, nl.multiply, quant, dtype=nl.float8_e4m3, mask=live)
    return q, dequant


@nki.jit
def rmsnorm_fp8_quant(x, gamma, eps=EPS):
    """(fp8 rows [R, H] float8_e4m3, dequantisation scales [R, 1] float32) of RMSNorm(x)."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    q_out = nl.ndarray((rows, hidden), dtype=nl.float8_e4m3, buffer=nl.shared_hbm)
    scale_out = nl.ndarray((rows, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_f = nl.arange(hidden)[None, :]
    i_col = nl.arange(1)[None, :]
    # gamma on every partition: every partition reads row 0 of the [1, H] view
    g_tile = nl.load(gamma.reshape((1, hidden))[0 * i_p, i_f])
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        live = i * pmax + i_p < rows
        x_tile = nl.load(x[i * pmax + i_p, i_f], mask=live)
        y = _rms_normalize(x_tile, g_tile, live, hidden, eps)
        q, dequant = _quantize_rows(y, live)
        nl.store(q_out[i * pmax + i_p, i_f], value=q, mask=live)
        nl.store(scale_out[i * pmax + i_p, i_col], value=dequant, mask=live)
    return q_out, scale_out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """x [R, H] standard normal and gamma [H] around 1, as `dtype`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32).astype(dtype)
    return x, gamma


def reference(x, gamma, eps=EPS):
    """(q float8_e4m3 [R, H], D float32 [R, 1]) in float32, step by step as the kernel
    computes (the same operations in the same order)."""
    v = np.asarray(x).astype(np.float32)
    g = np.asarray(gamma).astype(np.float32)
    sum_sq = np.sum(v * v, axis=-1, keepdims=True, dtype=np.float32)
    mean_sq = sum_sq * np.float32(1.0 / v.shape[-1]) + np.float32(eps)
    rstd = np.float32(1.0) / np.sqrt(mean_sq)
    y = v * rstd * g
    absmax = np.max(np.abs(y), axis=-1, keepdims=True)
    dequant = np.maximum(absmax * np.float32(1.0 / FP8_MAX), np.float32(MIN_DEQUANT_SCALE))
    quant = np.float32(1.0) / dequant
    q = (y * quant).astype(nl.float8_e4m3.storage)
    return q, dequant.astype(np.float32)
