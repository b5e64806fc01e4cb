"""MXFP8 matmul with on-chip activation quantisation (Trainium3, NeuronCore-v4).

result[M, N] = x[M, K] @ w[K, N] in fp32. The activations come transposed, xT [K, M] (fp32
or bf16, K on partitions like lhsT in matmul_tutorial.py); the weights come quantised
offline to MXFP8 (float8_e4m3fn values, one 8-bit power-of-two scale per 32 values).

MX layout. One nc_matmul_mx contracts 512 values of K: 128 partitions x the 4 values of
each x4 container, value q of partition p being K index k0 + q*128 + p (the Trainium3
guide's interleave: four elements 128 apart packed side by side). A scale covers 8
partitions x one container. The weights arrive in that layout: `w_data` [K/4, N] uint32
(row kt*128 + p, bytes q = 0..3 low first: w[kt*512 + q*128 + p, n]) and `w_scale`
[K/32, N] uint8 (row kt*16 + g: partitions 8g..8g+7 of K tile kt), which the kernel
spreads over the SBUF quadrants as nc_matmul_mx reads them (4 rows at the top of each).

`mx_matmul` first quantises all activations: per 512-row K tile it loads xT as
[128, 4, M] (four 128-row slabs in one DMA), interleaves and casts it to bf16 in one
Scalar-engine tensor_copy (leaving the Vector engine to quantise) and quantises it with
quantize_mx. Then per 512-column N strip it loads the weights once and, for every M tile,
accumulates K/512 nc_matmul_mx into a [128, 512] fp32 PSUM tile and stores it.

`matmul_bf16` is the same loop nest in BF16 with the dequantised weights: each nc_matmul
contracts 128 values of K, so it issues 4x as many matmuls, each as long as one
nc_matmul_mx (the 4x MX throughput of NeuronCore-v4). On trn3 at the default shape
(M=512, K=1024, N=1024, bf16 activations) the Tensor engine is busy 3.4 us in mx_matmul
and 13.7 us in matmul_bf16.
"""

import ml_dtypes
import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

KERNELS = ("mx_matmul", "matmul_bf16")
CHIP = "trn3"  # nc_matmul_mx and quantize_mx are NeuronCore-v4 instructions
LANES = 4  # values per x4 container
K_TILE = 512  # K values per nc_matmul_mx: 128 partitions x 4
GROUP = 8  # partitions per scaling group
QUADRANT = 32
E_MAX = 8  # largest exponent of float8_e4m3fn


def _sizes(xT, n):
    K, M = xT.shape
    tile_m = nl.tile_size.gemm_stationary_fmax  # 128
    tile_n = nl.tile_size.gemm_moving_fmax  # 512
    assert K % K_TILE == 0 and M % tile_m == 0 and n % tile_n == 0, (
        f"K={K}, M={M}, N={n} must be multiples of {K_TILE}, {tile_m} and {tile_n}")
    return K, M, tile_m, tile_n


def _store(result, res_psum, row, col):
    """PSUM tile -> SBUF -> result[row:, col:]."""
    p, f = res_psum.shape
    res_sb = nl.ndarray((p, f), dtype=result.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res_sb, src=res_psum)
    nisa.dma_copy(dst=result[row:row + p, col:col + f], src=res_sb)


@nki.jit
def mx_matmul(xT, w_data, w_scale):
    """x @ w [M, N] fp32: xT quantised to MXFP8 on chip, w_data/w_scale pre-quantised."""
    N = w_data.shape[1]
    K, M, tile_m, tile_n = _sizes(xT, N)
    pmax = nl.tile_size.pmax
    k_tiles = K // K_TILE
    w_mx = w_data.view(nl.float8_e4m3fn_x4)  # host uint32 containers, bit for bit
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    # all activations, quantised once: K tile kt is x_q[:, kt, :] with scales x_s[:, kt, :]
    x_q = nl.ndarray((pmax, k_tiles, M), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
    x_s = nl.ndarray((pmax, k_tiles, M), dtype=nl.uint8, buffer=nl.sbuf)
    for kt in nl.affine_range(k_tiles):
        x_ld = nl.ndarray((pmax, LANES, M), dtype=xT.dtype, buffer=nl.sbuf)
        slabs = xT[kt * K_TILE:(kt + 1) * K_TILE, :].reshape_dim(0, (LANES, pmax))
        nisa.dma_copy(dst=x_ld, src=slabs.permute((1, 0, 2)))
        x_il = nl.ndarray((pmax, M, LANES), dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_copy(dst=x_il, src=x_ld.permute((0, 2, 1)), engine=nisa.engine.scalar)
        nisa.quantize_mx(dst=x_q[:, kt, :], src=x_il, dst_scale=x_s[:, kt, :])
    for n in nl.affine_range(N // tile_n):
        cols = slice(n * tile_n, (n + 1) * tile_n)
        # the weights' N strip, loaded once and used by every M tile
        w_q = nl.ndarray((pmax, k_tiles, tile_n), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
        w_s = nl.ndarray((pmax, k_tiles, tile_n), dtype=nl.uint8, buffer=nl.sbuf)
        for kt in nl.affine_range(k_tiles):
            nisa.dma_copy(dst=w_q[:, kt, :], src=w_mx[kt * pmax:(kt + 1) * pmax, cols])
            for q in nl.affine_range(pmax // QUADRANT):  # 4 scale rows atop each quadrant
                row = kt * (pmax // GROUP) + q * 4
                nisa.dma_copy(dst=w_s[q * QUADRANT:q * QUADRANT + 4, kt, :],
                              src=w_scale[row:row + 4, cols])
        for m in nl.affine_range(M // tile_m):
            rows = slice(m * tile_m, (m + 1) * tile_m)
            res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32, buffer=nl.psum)
            for kt in nl.affine_range(k_tiles):
                nisa.nc_matmul_mx(dst=res_psum, stationary=x_q[:, kt, rows],
                                  moving=w_q[:, kt, :], stationary_scale=x_s[:, kt, rows],
                                  moving_scale=w_s[:, kt, :])
            _store(result, res_psum, m * tile_m, n * tile_n)
    return result


@nki.jit
def matmul_bf16(xT, w):
    """x @ w [M, N] fp32 in BF16 (w [K, N] bf16), the same loop nest as mx_matmul."""
    N = w.shape[1]
    K, M, tile_m, tile_n = _sizes(xT, N)
    pmax = nl.tile_size.pmax
    k_tiles = K // pmax
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    x_bf = nl.ndarray((pmax, k_tiles, M), dtype=nl.bfloat16, buffer=nl.sbuf)
    for kt in nl.affine_range(K // K_TILE):
        x_ld = nl.ndarray((pmax, LANES, M), dtype=xT.dtype, buffer=nl.sbuf)
        slabs = xT[kt * K_TILE:(kt + 1) * K_TILE, :].reshape_dim(0, (LANES, pmax))
        nisa.dma_copy(dst=x_ld, src=slabs.permute((1, 0, 2)))
        nisa.tensor_copy(dst=x_bf[:, kt * LANES:(kt + 1) * LANES, :], src=x_ld)
    for n in nl.affine_range(N // tile_n):
        w_sb = nl.ndarray((pmax, k_tiles, tile_n), dtype=w.dtype, buffer=nl.sbuf)
        for kt in nl.affine_range(k_tiles):
            nisa.dma_copy(dst=w_sb[:, kt, :], src=w[kt * pmax:(kt + 1) * pmax,
                                                    n * tile_n:(n + 1) * tile_n])
        for m in nl.affine_range(M // tile_m):
            res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32, buffer=nl.psum)
            for kt in nl.affine_range(k_tiles):
                nisa.nc_matmul(dst=res_psum, stationary=x_bf[:, kt, m * tile_m:(m + 1) * tile_m],
                               moving=w_sb[:, kt, :])
            _store(result, res_psum, m * tile_m, n * tile_n)
    return result


# ---------------------------------------------------------------------- host side
def _interleave(a):
    """[K, C] -> [K/512 * 128, C, 4]: value q of row kt*128 + p is a[kt*512 + q*128 + p]."""
    k, c = a.shape
    return a.reshape(k // K_TILE, LANES, K_TILE // LANES, c).transpose(0, 2, 3, 1).reshape(
        k // LANES, c, LANES)


def mx_quantize(blocks):
    """(float8_e4m3fn values [P, C, 4], uint8 scales [P/8, C]) of float values [P, C, 4]:
    each 8-partition x 4-value group gets 2**(floor(log2(amax)) - 7) (quantize_mx's rule,
    twice the OCP sample scale; 2**-127 for zeros), values rounded to nearest even."""
    p, c, _ = blocks.shape
    groups = blocks.astype(np.float64).reshape(p // GROUP, GROUP, c, LANES)
    amax = np.abs(groups).max(axis=(1, 3))
    safe = np.where(amax > 0, amax, 1.0)
    exp = np.where(amax > 0, np.floor(np.log2(safe)) - (E_MAX - 1), -127).clip(-127, 127)
    values = groups / np.exp2(exp)[:, None, :, None]
    fp8 = values.astype(np.float32).astype(ml_dtypes.float8_e4m3fn)
    return fp8.reshape(p, c, LANES), (exp + 127).astype(np.uint8)


def mx_dequantize(fp8, scales):
    """[P, C, 4] float64 values of MXFP8 data times their group scales."""
    factor = np.repeat(np.exp2(scales.astype(np.float64) - 127), GROUP, axis=0)
    return fp8.astype(np.float64) * factor[:, :, None]


def _deinterleave(a):
    """Inverse of _interleave: [K/4, C, 4] -> [K, C]."""
    rows, c, _ = a.shape
    k = rows * LANES
    return a.reshape(k // K_TILE, K_TILE // LANES, c, LANES).transpose(0, 3, 1, 2).reshape(k, c)


def _weights(K, N, seed):
    rng = np.random.default_rng(seed + 1)
    w = rng.normal(0.0, 1.0, (K, N)) * np.exp2(rng.integers(-6, 2, (1, N)))
    return mx_quantize(_interleave(w))


def example_inputs(M=512, K=1024, N=1024, dtype=nl.bfloat16, seed=0):
    """(xT [K, M] `dtype`, w_data [K/4, N] uint32 MXFP8 containers, w_scale [K/32, N])."""
    rng = np.random.default_rng(seed)
    xT = rng.normal(0.0, 1.0, (K, M)).astype(np.float32).astype(dtype)
    fp8, scales = _weights(K, N, seed)
    return xT, np.ascontiguousarray(fp8).view(np.uint32).reshape(K // LANES, N), scales


def example_inputs_matmul_bf16(M=512, K=1024, N=1024, dtype=nl.bfloat16, seed=0):
    """(xT, w [K, N] bf16): the same matmul with the dequantised weights (exact in bf16)."""
    xT = example_inputs(M, K, N, dtype, seed)[0]
    fp8, scales = _weights(K, N, seed)
    return xT, _deinterleave(mx_dequantize(fp8, scales)).astype(ml_dtypes.bfloat16)


def reference(xT, w_data, w_scale):
    """x @ w with x quantised as quantize_mx does (from its bf16 rounding), in float64."""
    x_bf = np.asarray(xT).astype(np.float32).astype(ml_dtypes.bfloat16)
    x_deq = _deinterleave(mx_dequantize(*mx_quantize(_interleave(x_bf))))
    n = w_data.shape[1]
    fp8 = np.ascontiguousarray(w_data).view(ml_dtypes.float8_e4m3fn).reshape(-1, n, LANES)
    w_deq = _deinterleave(mx_dequantize(fp8, w_scale))
    return (x_deq.T @ w_deq).astype(np.float32)


def reference_matmul_bf16(xT, w):
    """x (rounded to bf16) @ w in float64."""
    x_bf = np.asarray(xT).astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    return (x_bf.T @ np.asarray(w).astype(np.float64)).astype(np.float32)
