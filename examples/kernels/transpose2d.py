"""2-D transpose of an [R, C] tensor on the Tensor engine, 128 x 128 tiles through PSUM.

Each 128-row strip of x is loaded once; every 128-column piece of it is transposed by the
Tensor engine into PSUM (in the input dtype, so the transpose is bit-exact), copied back to
SBUF by the Vector engine and stored to its transposed place. Edges need not be full tiles.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402


@nki.jit
def transpose2d(x):
    """out[C, R] = x[R, C]^T."""
    rows, cols = x.shape
    tile = nl.tile_size.pmax  # the Tensor engine transposes up to 128 x 128
    out = nl.ndarray((cols, rows), dtype=x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range((rows + tile - 1) // tile):
        r0 = i * tile
        pr = min(tile, rows - r0)
        strip = nl.ndarray((tile, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=strip[0:pr], src=x[r0:r0 + pr, :])
        for j in nl.affine_range((cols + tile - 1) // tile):
            c0 = j * tile
            pc = min(tile, cols - c0)
            t_psum = nl.ndarray((tile, tile), dtype=x.dtype, buffer=nl.psum)
            nisa.nc_transpose(dst=t_psum[0:pc, 0:pr], data=strip[0:pr, c0:c0 + pc])
            t_sb = nl.ndarray((tile, tile), dtype=x.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=t_sb[0:pc, 0:pr], src=t_psum[0:pc, 0:pr])
            nisa.dma_copy(dst=out[c0:c0 + pc, r0:r0 + pr], src=t_sb[0:pc, 0:pr])
    return out


def example_inputs(shape=(256, 384), dtype=nl.float32, seed=0):
    """One random [R, C] array of `dtype`."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(np.float32).astype(dtype),)


def reference(x):
    """x^T in float32."""
    return np.ascontiguousarray(x.astype(np.float32).T)
