"""Beta-1 twin of ../vector_add.py: element-wise addition of two [R, C] tensors, written
the way the Beta-1 (`neuronxcc.nki`) tutorials write it.

Tiles are values: `nl.load` returns an SBUF tile, `a_tile + b_tile` returns a new one and
`nl.store` writes it back. The 128-row tiles are addressed with `nl.arange` index vectors;
rows need not be a multiple of 128, because the last tile's loads, add and store carry a
mask `row < R` (the Beta-1 masking rule: masked-out rows are neither read nor written).
The instruction stream is the Beta-2 kernel's: two DMA loads, one Vector add, one store.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402


@nki.jit
def vector_add(a, b):
    """out = a + b for [R, C] tensors in HBM; one load per operand and tile, one add."""
    rows, cols = a.shape
    pmax = nl.tile_size.pmax
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(pmax)[:, None]
    i_f = nl.arange(cols)[None, :]
    for i in nl.affine_range((rows + pmax - 1) // pmax):
        row = i * pmax + i_p
        live = row < rows  # ragged last tile: only its first R % 128 rows exist
        a_tile = nl.load(a[row, i_f], mask=live)
        b_tile = nl.load(b[row, i_f], mask=live)
        out_tile = nl.add(a_tile, b_tile, mask=live)
        nl.store(out[row, i_f], value=out_tile, mask=live)
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
