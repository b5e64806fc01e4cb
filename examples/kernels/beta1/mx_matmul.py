"""Beta-1 twin of ../mx_matmul.py, for its BF16 kernel `matmul_bf16` only: result[M, N] =
x[M, K] @ w[K, N] in fp32 from xT [K, M] and w [K, N] bf16, written the way the Beta-1
(`neuronxcc.nki`) tutorials write it. `mx_matmul` itself has no twin: quantize_mx,
nc_matmul_mx and the MX dtypes are Beta-2 (NeuronCore-v4) instructions.

The loop nest is the Beta-2 file's. Per 512-row K tile, one `nl.load` with a 3-D index
(`kt * 512 + i_q * 128 + i_p`, `i_m`) brings xT in as [128, 4, M] (four 128-row slabs side
by side) and one `nisa.tensor_copy` casts it to bf16 into its slot of `x_bf`. Per 512-column
N strip the weights are loaded once, one block per K tile (`nl.par_dim`), and every M tile
accumulates K / 128 `nisa.nc_matmul` into a PSUM tile made by `nl.zeros` (one memset per
output tile that the Beta-2 kernel does not issue), copied to SBUF and stored.
"""

import ml_dtypes
import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

KERNELS = ("matmul_bf16",)
CHIP = "trn3"  # as the Beta-2 file: timed on the NeuronCore-v4 Tensor engine
LANES = 4  # 128-row slabs per K tile
K_TILE = 512  # K values per K tile: 4 slabs of 128 partitions


@nki.jit
def matmul_bf16(xT, w):
    """x @ w [M, N] fp32 in BF16 (w [K, N] bf16), the loop nest of ../mx_matmul.py."""
    N = w.shape[1]
    K, M = xT.shape
    pmax = nl.tile_size.pmax
    tile_m = nl.tile_size.gemm_stationary_fmax  # 128
    tile_n = nl.tile_size.gemm_moving_fmax  # 512
    assert K % K_TILE == 0 and M % tile_m == 0 and N % tile_n == 0, (
        f"K={K}, M={M}, N={N} must be multiples of {K_TILE}, {tile_m} and {tile_n}")
    k_tiles = K // pmax
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    # K tiles fold into a free dimension: x_bf[:, kt, :] is the kt-th 128-row slab of xT
    x_bf = nl.ndarray((pmax, k_tiles, M), dtype=nl.bfloat16, buffer=nl.sbuf)
    i_p = nl.arange(pmax)[:, None, None]
    i_q = nl.arange(LANES)[None, :, None]
    i_x = nl.arange(M)[None, None, :]
    for kt in nl.affine_range(K // K_TILE):
        x_ld = nl.load(xT[kt * K_TILE + i_q * pmax + i_p, i_x])
        x_bf[i_p, kt * LANES + i_q, i_x] = nisa.tensor_copy(x_ld, dtype=nl.bfloat16)
    i_st = nl.mgrid[0:pmax, 0:tile_m]
    for n in nl.affine_range(N // tile_n):
        w_sb = nl.ndarray((k_tiles, nl.par_dim(pmax), tile_n), dtype=w.dtype, buffer=nl.sbuf)
        for kt in nl.affine_range(k_tiles):
            w_sb[kt] = nl.load(w[kt * pmax:(kt + 1) * pmax, n * tile_n:(n + 1) * tile_n])
        for m in nl.affine_range(M // tile_m):
            res_psum = nl.zeros((tile_m, tile_n), nl.float32, buffer=nl.psum)
            for kt in nl.affine_range(k_tiles):
                res_psum += nisa.nc_matmul(x_bf[i_st.p, kt, m * tile_m + i_st.x], w_sb[kt])
            res_sb = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * tile_m:(m + 1) * tile_m, n * tile_n:(n + 1) * tile_n],
                     value=res_sb)
    return result


def example_inputs_matmul_bf16(M=512, K=1024, N=1024, dtype=nl.bfloat16, seed=0):
    """(xT [K, M] `dtype`, w [K, N] bf16), normal values."""
    rng = np.random.default_rng(seed)
    xT = rng.normal(0.0, 1.0, (K, M)).astype(np.float32).astype(dtype)
    w = rng.normal(0.0, 1.0, (K, N)).astype(np.float32).astype(ml_dtypes.bfloat16)
    return xT, w


def reference_matmul_bf16(xT, w):
    """x (rounded to bf16) @ w in float64."""
    x_bf = np.asarray(xT).astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    return (x_bf.T @ np.asarray(w).astype(np.float64)).astype(np.float32)
