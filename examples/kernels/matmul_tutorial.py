"""The matrix-multiplication tutorial: four versions of result[M, N] = lhsT[K, M]^T @ rhs[K, N].

lhsT is given already transposed so that the contraction dimension K lies on partitions.
Tiles: stationary 128 (K) x 128 (M), moving 128 (K) x 512 (N), PSUM accumulator 128 x 512
fp32. Each version keeps the same arithmetic and changes only how often data moves:

1. `matmul_tiled`: every output tile reloads its K strip of both operands.
2. `matmul_hoist_loads`: lhsT's K strip is loaded once per M tile, rhs once per (M, N) tile.
3. `matmul_block_free_dims`: M and N blocked by 2 tiles, so each load serves 2 output tiles.
4. `matmul_block_all_dims`: K blocked too, with an SBUF accumulator per N block, so each rhs
   block is loaded once per N block and lhsT once per (N block, K block, M block).

Napkin math for M = 4096, K = 8192, N = 8192 bf16 (the vendor's benchmark shape): version 1
reads K*(128 + 512) elements per output tile, (M/128)*(N/512) tiles: 2.7e9 elements, 5.4 GB.
Version 4 reads rhs once (K*N) and lhsT once per N block (K*M*N/1024): 3.4e8 elements,
0.67 GB, i.e. 8x less traffic for the same 5.5e11 FLOPs.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

KERNELS = ("matmul_tiled", "matmul_hoist_loads", "matmul_block_free_dims",
           "matmul_block_all_dims")


def _tile_sizes(lhsT, rhs):
    """(TILE_K, TILE_M, TILE_N) and the problem dims, checking the shapes divide evenly."""
    K, M = lhsT.shape
    K_, N = rhs.shape
    assert K == K_, f"lhsT has K={K} rows but rhs has K={K_}"
    tile_k = nl.tile_size.pmax  # contraction runs over the 128 partitions
    tile_m = nl.tile_size.gemm_stationary_fmax  # 128
    tile_n = min(nl.tile_size.gemm_moving_fmax, N)  # 512, or all of a narrower N
    assert K % tile_k == 0 and M % tile_m == 0 and N % tile_n == 0, (
        f"shapes K={K}, M={M}, N={N} must be multiples of the tiles {tile_k}, {tile_m}, "
        f"{tile_n}")
    return K, M, N, tile_k, tile_m, tile_n


def _evacuate(result, res_psum, row, col):
    """Copy one PSUM tile to SBUF (casting to the result dtype) and store it to HBM."""
    p, f = res_psum.shape
    res_sb = nl.ndarray((p, f), dtype=result.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res_sb, src=res_psum)
    nisa.dma_copy(dst=result[row:row + p, col:col + f], src=res_sb)


@nki.jit
def matmul_tiled(lhsT, rhs):
    """Version 1: for each output tile, stream its K strips of lhsT and rhs from HBM."""
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // tile_m):
        for n in nl.affine_range(N // tile_n):
            res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // tile_k):
                lhsT_tile = nl.ndarray((tile_k, tile_m), dtype=lhsT.dtype, buffer=nl.sbuf)
                rhs_tile = nl.ndarray((tile_k, tile_n), dtype=rhs.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=lhsT_tile, src=lhsT[k * tile_k:(k + 1) * tile_k,
                                                      m * tile_m:(m + 1) * tile_m])
                nisa.dma_copy(dst=rhs_tile, src=rhs[k * tile_k:(k + 1) * tile_k,
                                                    n * tile_n:(n + 1) * tile_n])
                # the first matmul into res_psum overwrites it, the following ones add
                nisa.nc_matmul(dst=res_psum, stationary=lhsT_tile, moving=rhs_tile)
            _evacuate(result, res_psum, m * tile_m, n * tile_n)
    return result


@nki.jit
def matmul_hoist_loads(lhsT, rhs):
    """Version 2: load lhsT's whole K strip once per M tile and reuse it for every N tile."""
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    k_tiles = K // tile_k
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // tile_m):
        # K strips fold into a free dimension: lhsT_tiles[:, k, :] is the k-th 128x128 tile
        lhsT_tiles = nl.ndarray((tile_k, k_tiles, tile_m), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(k_tiles):
            nisa.dma_copy(dst=lhsT_tiles[:, k, :], src=lhsT[k * tile_k:(k + 1) * tile_k,
                                                            m * tile_m:(m + 1) * tile_m])
        for n in nl.affine_range(N // tile_n):
            rhs_tiles = nl.ndarray((tile_k, k_tiles, tile_n), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(k_tiles):
                nisa.dma_copy(dst=rhs_tiles[:, k, :], src=rhs[k * tile_k:(k + 1) * tile_k,
                                                              n * tile_n:(n + 1) * tile_n])
            res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32, buffer=nl.psum)
            for k in nl.affine_range(k_tiles):
                nisa.nc_matmul(dst=res_psum, stationary=lhsT_tiles[:, k, :],
                               moving=rhs_tiles[:, k, :])
            _evacuate(result, res_psum, m * tile_m, n * tile_n)
    return result


@nki.jit
def matmul_block_free_dims(lhsT, rhs, TILES_IN_BLOCK_M=2, TILES_IN_BLOCK_N=2):
    """Version 3: block M and N by 2 tiles each, so every load feeds 2 output tiles."""
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    block_m = tile_m * TILES_IN_BLOCK_M
    block_n = tile_n * TILES_IN_BLOCK_N
    assert M % block_m == 0 and N % block_n == 0, (
        f"M={M} and N={N} must be multiples of the blocks {block_m} and {block_n}")
    k_tiles = K // tile_k
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // block_m):
        lhsT_tiles = nl.ndarray((tile_k, k_tiles, block_m), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(k_tiles):
            nisa.dma_copy(dst=lhsT_tiles[:, k, :], src=lhsT[k * tile_k:(k + 1) * tile_k,
                                                            m * block_m:(m + 1) * block_m])
        for n in nl.affine_range(N // block_n):
            rhs_tiles = nl.ndarray((tile_k, k_tiles, block_n), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(k_tiles):
                nisa.dma_copy(dst=rhs_tiles[:, k, :], src=rhs[k * tile_k:(k + 1) * tile_k,
                                                              n * block_n:(n + 1) * block_n])
            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32, buffer=nl.psum)
                    for k in nl.affine_range(k_tiles):
                        nisa.nc_matmul(dst=res_psum,
                                       stationary=lhsT_tiles[:, k, bm * tile_m:(bm + 1) * tile_m],
                                       moving=rhs_tiles[:, k, bn * tile_n:(bn + 1) * tile_n])
                    _evacuate(result, res_psum, m * block_m + bm * tile_m,
                              n * block_n + bn * tile_n)
    return result


@nki.jit
def matmul_block_all_dims(lhsT, rhs, BLOCK_M=2048, BLOCK_N=1024, BLOCK_K=1024):
    """Version 4: block M, N and K; accumulate K blocks in SBUF; store once per N block.

    Block sizes are clamped to the problem (min(block, dim)) so small shapes work unchanged.
    """
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    block_m, block_n, block_k = min(BLOCK_M, M), min(BLOCK_N, N), min(BLOCK_K, K)
    assert block_m % tile_m == 0 and block_n % tile_n == 0 and block_k % tile_k == 0, (
        f"blocks {block_m}x{block_n}x{block_k} must be multiples of the tiles")
    assert M % block_m == 0 and N % block_n == 0 and K % block_k == 0, (
        f"M={M}, N={N}, K={K} must be multiples of the blocks {block_m}, {block_n}, {block_k}")
    tiles_m, tiles_n, tiles_k = block_m // tile_m, block_n // tile_n, block_k // tile_k
    m_blocks = M // block_m
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for n in nl.affine_range(N // block_n):
        # all M x block_n results of this N block, one 128-row tile per (m block, m tile)
        acc = nl.ndarray((tile_m, m_blocks, tiles_m, block_n), dtype=lhsT.dtype,
                         buffer=nl.sbuf)
        nisa.memset(dst=acc, value=0.0)
        for k in nl.sequential_range(K // block_k):
            # rhs block: tiles_k DMA transfers of 128 x block_n (long contiguous rows)
            rhs_tiles = nl.ndarray((tile_k, tiles_k, block_n), dtype=rhs.dtype, buffer=nl.sbuf)
            for bk in nl.affine_range(tiles_k):
                row = k * block_k + bk * tile_k
                nisa.dma_copy(dst=rhs_tiles[:, bk, :],
                              src=rhs[row:row + tile_k, n * block_n:(n + 1) * block_n])
            for m in nl.affine_range(m_blocks):
                lhsT_tiles = nl.ndarray((tile_k, tiles_k, block_m), dtype=lhsT.dtype,
                                        buffer=nl.sbuf)
                for bk in nl.affine_range(tiles_k):
                    row = k * block_k + bk * tile_k
                    nisa.dma_copy(dst=lhsT_tiles[:, bk, :],
                                  src=lhsT[row:row + tile_k, m * block_m:(m + 1) * block_m])
                for bn in nl.affine_range(tiles_n):
                    for bm in nl.affine_range(tiles_m):
                        res_psum = nl.ndarray((tile_m, tile_n), dtype=nl.float32,
                                              buffer=nl.psum)
                        for bk in nl.affine_range(tiles_k):
                            nisa.nc_matmul(
                                dst=res_psum,
                                stationary=lhsT_tiles[:, bk, bm * tile_m:(bm + 1) * tile_m],
                                moving=rhs_tiles[:, bk, bn * tile_n:(bn + 1) * tile_n])
                        part = acc[:, m, bm, bn * tile_n:(bn + 1) * tile_n]
                        nisa.tensor_tensor(dst=part, data1=part, data2=res_psum, op=nl.add)
        for m in nl.affine_range(m_blocks):
            for bm in nl.affine_range(tiles_m):
                row = m * block_m + bm * tile_m
                nisa.dma_copy(dst=result[row:row + tile_m, n * block_n:(n + 1) * block_n],
                              src=acc[:, m, bm, :])
    return result


def example_inputs(M=256, K=256, N=1024, dtype=nl.bfloat16, seed=0):
    """lhsT [K, M] and rhs [K, N] with values in [-1, 1), as `dtype` (bf16 by default)."""
    rng = np.random.default_rng(seed)
    lhsT = rng.uniform(-1.0, 1.0, (K, M)).astype(np.float32).astype(dtype)
    rhs = rng.uniform(-1.0, 1.0, (K, N)).astype(np.float32).astype(dtype)
    return lhsT, rhs


def reference(lhsT, rhs):
    """lhsT^T @ rhs in float64, returned as float32."""
    return (lhsT.astype(np.float64).T @ rhs.astype(np.float64)).astype(np.float32)
