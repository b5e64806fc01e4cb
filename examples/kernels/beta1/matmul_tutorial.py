"""Beta-1 twin of ../matmul_tutorial.py: the four versions of the matrix-multiplication
tutorial, result[M, N] = lhsT[K, M]^T @ rhs[K, N], written the way the Beta-1
(`neuronxcc.nki`) tutorial writes them.

Tiles are values: `nl.load` returns SBUF tiles, `psum += nl.matmul(lhsT_tile, rhs_tile,
transpose_x=True)` (versions 1-3) or `psum += nisa.nc_matmul(...)` (version 4) accumulates
into a PSUM tile made by `nl.zeros(..., buffer=nl.psum)`, `nl.copy` brings it back to SBUF
in the result dtype and `nl.store` writes it. Versions 2-4 keep several tiles live in
tensors with block dimensions (`nl.par_dim` marks the partition dimension; the dimensions
before it count tiles), as the tutorial does; version 4 accumulates its K blocks into an
SBUF block tensor with `+=`.

Spelling differences from the Beta-2 file (same arithmetic, same loads and stores): the
PSUM accumulator starts as `nl.zeros`, one memset per output tile that the Beta-2 kernel
(whose first matmul overwrites PSUM) does not issue; version 4's SBUF accumulator is one
block per 128-row tile, so it is zeroed by one memset per block instead of one in all.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402

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
    """PSUM tile -> SBUF in the result dtype -> result[row:, col:]."""
    p, f = res_psum.shape
    res_sb = nl.copy(res_psum, dtype=result.dtype)
    nl.store(result[row:row + p, col:col + f], value=res_sb)


@nki.jit
def matmul_tiled(lhsT, rhs):
    """Version 1: for each output tile, stream its K strips of lhsT and rhs from HBM."""
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // tile_m):
        for n in nl.affine_range(N // tile_n):
            res_psum = nl.zeros((tile_m, tile_n), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // tile_k):
                lhsT_tile = nl.load(lhsT[k * tile_k:(k + 1) * tile_k,
                                         m * tile_m:(m + 1) * tile_m])
                rhs_tile = nl.load(rhs[k * tile_k:(k + 1) * tile_k,
                                       n * tile_n:(n + 1) * tile_n])
                res_psum += nl.matmul(lhsT_tile, rhs_tile, transpose_x=True)
            _evacuate(result, res_psum, m * tile_m, n * tile_n)
    return result


@nki.jit
def matmul_hoist_loads(lhsT, rhs):
    """Version 2: load lhsT's whole K strip once per M tile and reuse it for every N tile."""
    K, M, N, tile_k, tile_m, tile_n = _tile_sizes(lhsT, rhs)
    k_tiles = K // tile_k
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // tile_m):
        # one block per K strip: lhsT_tiles[k] is the k-th 128 x 128 tile
        lhsT_tiles = nl.ndarray((k_tiles, nl.par_dim(tile_k), tile_m), dtype=lhsT.dtype,
                                buffer=nl.sbuf)
        for k in nl.affine_range(k_tiles):
            lhsT_tiles[k] = nl.load(lhsT[k * tile_k:(k + 1) * tile_k,
                                         m * tile_m:(m + 1) * tile_m])
        for n in nl.affine_range(N // tile_n):
            rhs_tiles = nl.ndarray((k_tiles, nl.par_dim(tile_k), tile_n), dtype=rhs.dtype,
                                   buffer=nl.sbuf)
            for k in nl.affine_range(k_tiles):
                rhs_tiles[k] = nl.load(rhs[k * tile_k:(k + 1) * tile_k,
                                           n * tile_n:(n + 1) * tile_n])
            res_psum = nl.zeros((tile_m, tile_n), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(k_tiles):
                res_psum += nl.matmul(lhsT_tiles[k], rhs_tiles[k], transpose_x=True)
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
    i_lhsT = nl.mgrid[0:tile_k, 0:tile_m]  # one stationary tile of a block
    i_rhs = nl.mgrid[0:tile_k, 0:tile_n]  # one moving tile of a block
    for m in nl.affine_range(M // block_m):
        lhsT_tiles = nl.ndarray((k_tiles, nl.par_dim(tile_k), block_m), dtype=lhsT.dtype,
                                buffer=nl.sbuf)
        for k in nl.affine_range(k_tiles):
            lhsT_tiles[k] = nl.load(lhsT[k * tile_k:(k + 1) * tile_k,
                                         m * block_m:(m + 1) * block_m])
        for n in nl.affine_range(N // block_n):
            rhs_tiles = nl.ndarray((k_tiles, nl.par_dim(tile_k), block_n), dtype=rhs.dtype,
                                   buffer=nl.sbuf)
            for k in nl.affine_range(k_tiles):
                rhs_tiles[k] = nl.load(rhs[k * tile_k:(k + 1) * tile_k,
                                           n * block_n:(n + 1) * block_n])
            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    res_psum = nl.zeros((tile_m, tile_n), nl.float32, buffer=nl.psum)
                    for k in nl.affine_range(k_tiles):
                        res_psum += nl.matmul(
                            lhsT_tiles[k, i_lhsT.p, bm * tile_m + i_lhsT.x],
                            rhs_tiles[k, i_rhs.p, bn * tile_n + i_rhs.x], transpose_x=True)
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
    i_lhsT = nl.mgrid[0:tile_k, 0:tile_m]
    i_rhs = nl.mgrid[0:tile_k, 0:tile_n]
    i_res = nl.mgrid[0:tile_m, 0:tile_n]
    for n in nl.affine_range(N // block_n):
        # all M x block_n results of this N block, one block per (m block, m tile)
        acc = nl.zeros((m_blocks, tiles_m, nl.par_dim(tile_m), block_n), dtype=lhsT.dtype,
                       buffer=nl.sbuf)
        for k in nl.sequential_range(K // block_k):
            rhs_tiles = nl.ndarray((tiles_k, nl.par_dim(tile_k), block_n), dtype=rhs.dtype,
                                   buffer=nl.sbuf)
            for bk in nl.affine_range(tiles_k):
                row = k * block_k + bk * tile_k
                rhs_tiles[bk] = nl.load(rhs[row:row + tile_k,
                                            n * block_n:(n + 1) * block_n])
            for m in nl.affine_range(m_blocks):
                lhsT_tiles = nl.ndarray((tiles_k, nl.par_dim(tile_k), block_m),
                                        dtype=lhsT.dtype, buffer=nl.sbuf)
                for bk in nl.affine_range(tiles_k):
                    row = k * block_k + bk * tile_k
                    lhsT_tiles[bk] = nl.load(lhsT[row:row + tile_k,
                                                  m * block_m:(m + 1) * block_m])
                for bn in nl.affine_range(tiles_n):
                    for bm in nl.affine_range(tiles_m):
                        res_psum = nl.zeros((tile_m, tile_n), nl.float32, buffer=nl.psum)
                        for bk in nl.affine_range(tiles_k):
                            res_psum += nisa.nc_matmul(
                                lhsT_tiles[bk, i_lhsT.p, bm * tile_m + i_lhsT.x],
                                rhs_tiles[bk, i_rhs.p, bn * tile_n + i_rhs.x])
                        acc[m, bm, i_res.p, bn * tile_n + i_res.x] += res_psum
        for m in nl.affine_range(m_blocks):
            for bm in nl.affine_range(tiles_m):
                row = m * block_m + bm * tile_m
                nl.store(result[row:row + tile_m, n * block_n:(n + 1) * block_n],
                         value=acc[m, bm])
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
