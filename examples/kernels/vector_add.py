"""Element-wise addition of two [R, C] tensors, tiled over 128-row tiles.

Rows need not be a multiple of 128: the last tile uses only its first R % 128 partitions.
Napkin math: 3 x R x C x itemsize bytes of HBM traffic, one Vector-engine add per tile.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402


@nki.jit
def vector_add(a, b):
    """out = a + b for [R, C] tensors in HBM; one DMA-in per operand and tile, one add."""
    rows, cols = a.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        start = i * pmax
        p = min(pmax, rows - start)  # ragged last tile: only p partitions are live
        ta = nl.ndarray((pmax, cols), dtype=a.dtype, buffer=nl.sbuf)
        tb = nl.ndarray((pmax, cols), dtype=b.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=ta[0:p], src=a[start:start + p, :])
        nisa.dma_copy(dst=tb[0:p], src=b[start:start + p, :])
        tout = nl.ndarray((pmax, cols), dtype=a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=tout[0:p], data1=ta[0:p], data2=tb[0:p], op=nl.add)
        nisa.dma_copy(dst=out[start:start + p, :], src=tout[0:p])
    return out


def example_inputs(shape=(256, 512), dtype=nl.float32, seed=0):
    """Two random [R, C] arrays of `dtype`."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    b = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    return a, b


def reference(a, b):
    """a + b in float32."""
    return a.astype(np.float32) + b.astype(np.float32)
