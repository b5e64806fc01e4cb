"""Beta-1 twin of ../transpose2d.py: 2-D transpose of an [R, C] tensor on the Tensor engine,
128 x 128 tiles through PSUM, written the way the Beta-1 (`neuronxcc.nki`) tutorials
write it.

Each 128-row strip of x is one `nl.load` (rows past R masked off). Every 128-column piece
of the strip goes through `nisa.nc_transpose`, which returns a PSUM tile in the input dtype
(so the transpose is bit-exact); `nisa.tensor_copy` brings it back to SBUF and `nl.store`
writes it to its transposed place. Ragged edges are masks: on the load over the strip's
rows, on the transpose, copy and store over the transposed piece's index space (o_p: the
piece's columns, o_f: its rows). The instruction stream is the Beta-2 kernel's: per strip
one load, per piece one transpose, one copy, one store.
"""

import numpy as np

# makes `neuronxcc.nki` resolve to tessera.nki.beta1 when no real neuronx-cc is installed
from tessera.nki.compat import install

install()
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402
from neuronxcc import nki  # noqa: E402


@nki.jit
def transpose2d(x):
    """out[C, R] = x[R, C]^T."""
    rows, cols = x.shape
    tile = nl.tile_size.pmax  # the Tensor engine transposes up to 128 x 128
    out = nl.ndarray((cols, rows), dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(tile)[:, None]  # a strip's rows (partitions)
    i_x = nl.arange(cols)[None, :]  # a strip's columns
    i_f = nl.arange(tile)[None, :]  # one piece's columns
    o_p = nl.arange(tile)[:, None]  # a transposed piece's rows (the piece's columns)
    o_f = nl.arange(tile)[None, :]  # a transposed piece's columns (the piece's rows)
    for i in nl.affine_range((rows + tile - 1) // tile):
        row_live = i * tile + i_p < rows
        strip = nl.load(x[i * tile + i_p, i_x], mask=row_live)
        for j in nl.affine_range((cols + tile - 1) // tile):
            out_live = (j * tile + o_p < cols) & (i * tile + o_f < rows)
            t_psum = nisa.nc_transpose(strip[i_p, j * tile + i_f], mask=out_live)
            t_sb = nisa.tensor_copy(t_psum, mask=out_live)
            nl.store(out[j * tile + o_p, i * tile + o_f], value=t_sb, mask=out_live)
    return out


def example_inputs(shape=(256, 384), dtype=nl.float32, seed=0):
    """One random [R, C] array of `dtype`."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(np.float32).astype(dtype),)


def reference(x):
    """x^T in float32."""
    return np.ascontiguousarray(x.astype(np.float32).T)
