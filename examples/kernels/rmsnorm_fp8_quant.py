"""RMSNorm then per-row FP8 quantisation: the normalised rows as float8_e4m3 plus, per row,
the float32 dequantisation scale (q * scale ~ RMSNorm(x)).

The math of the vendor library's RMSNorm-Quant kernel (its design page): per row,
y = x / sqrt(mean(x^2) + eps) * gamma, then absmax quantisation to the fp8 range:
D = max(max|y| / 240, MIN_DEQUANT_SCALE) (240 is float8_e4m3's largest value; the floor
keeps an all-zero row finite) and q = fp8(y * (1 / D)). The vendor kernel packs the four
bytes of D after each row; this one returns q [R, H] and D [R, 1] as two outputs.

Per 128-row tile, on the engines the vendor kernel uses: square with the row sum (Scalar),
(sum / H + eps) (Vector), rsqrt (Scalar), x * rstd * gamma (Vector); |y| with the row max
in one Vector instruction (tensor_scalar_reduce), max / 240 (Scalar), the floor (Vector),
its reciprocal (Vector) and y * (1 / D) written as fp8 (Vector). Rows need not be a
multiple of 128.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

EPS = 1e-6
FP8_MAX = 240.0  # largest finite float8_e4m3
MIN_DEQUANT_SCALE = 1e-10  # floor of D: 1 / D stays finite for a row of zeros


def _rms_normalize(xt, g_tile, p, hidden, eps):
    """y [pmax, H] float32 = x * rstd * gamma for the first p rows of the tile xt."""
    pmax = nl.tile_size.pmax
    sq = nl.ndarray((pmax, hidden), dtype=nl.float32, buffer=nl.sbuf)
    sum_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=sq[0:p], op=nl.square, data=xt[0:p], reduce_op=nl.add,
                    reduce_res=sum_sq[0:p], reduce_cmd=nisa.reduce_cmd.reset_reduce)
    mean_sq = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=mean_sq[0:p], data=sum_sq[0:p], op0=nl.multiply,
                       operand0=1.0 / hidden, op1=nl.add, operand1=eps)
    rstd = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=rstd[0:p], op=nl.rsqrt, data=mean_sq[0:p])
    y = nl.ndarray((pmax, hidden), dtype=nl.float32, buffer=nl.sbuf)
    nisa.scalar_tensor_tensor(dst=y[0:p], data=xt[0:p], op0=nl.multiply, operand0=rstd[0:p],
                              op1=nl.multiply, operand1=g_tile[0:p])
    return y


def _quantize_rows(y, p, hidden):
    """(q [pmax, H] float8_e4m3, D [pmax, 1] float32) of the first p rows of y."""
    pmax = nl.tile_size.pmax
    abs_y = nl.ndarray((pmax, hidden), dtype=nl.float32, buffer=nl.sbuf)
    dequant = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    # |y| = abs_max(y, 0), and the row max of it, in one Vector instruction
    nisa.tensor_scalar_reduce(dst=abs_y[0:p], data=y[0:p], op0=nl.abs_max, operand0=0.0,
                              reduce_op=nl.maximum, reduce_res=dequant[0:p])
    nisa.activation(dst=dequant[0:p], op=nl.copy, data=dequant[0:p], scale=1.0 / FP8_MAX)
    nisa.tensor_scalar(dst=dequant[0:p], data=dequant[0:p], op0=nl.maximum,
                       operand0=MIN_DEQUANT_SCALE)
    quant = nl.ndarray((pmax, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.reciprocal(dst=quant[0:p], data=dequant[0:p])
    q = nl.ndarray((pmax, hidden), dtype=nl.float8_e4m3, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=q[0:p], data=y[0:p], op0=nl.multiply, operand0=quant[0:p])
    return q, dequant


@nki.jit
def rmsnorm_fp8_quant(x, gamma, eps=EPS):
    """(fp8 rows [R, H] float8_e4m3, dequantisation scales [R, 1] float32) of RMSNorm(x)."""
    rows, hidden = x.shape
    pmax = nl.tile_size.pmax
    q_out = nl.ndarray((rows, hidden), dtype=nl.float8_e4m3, buffer=nl.shared_hbm)
    scale_out = nl.ndarray((rows, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    # gamma on every partition, from a stride-0 (broadcast) view of the [1, H] row
    g_tile = nl.ndarray((pmax, hidden), dtype=gamma.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_tile, src=gamma.reshape((1, hidden)).broadcast(0, pmax))
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, rows - start)
        xt = nl.ndarray((pmax, hidden), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt[0:p], src=x[start:start + p, :])
        y = _rms_normalize(xt, g_tile, p, hidden, eps)
        q, dequant = _quantize_rows(y, p, hidden)
        nisa.dma_copy(dst=q_out[start:start + p, :], src=q[0:p])
        nisa.dma_copy(dst=scale_out[start:start + p, :], src=dequant[0:p])
    return q_out, scale_out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """x [R, H] standard normal and gamma [H] around 1, as `dtype`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32).astype(dtype)
    return x, gamma


def reference(x, gamma, eps=EPS):
    """(q float8_e4m3 [R, H], D float32 [R, 1]) in float32, step by step as the kernel
    computes (the same operations in the same order, so the fp8 codes match bit for bit
    unless a row's sum of squares rounds differently)."""
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
