"""All-gather across the two physical cores of an LNC=2 launch (`kernel[2]`, trn2/trn3).

Tensor-parallel style: core c owns rows [c * R/2, (c + 1) * R/2) of x [R, C], computes its
shard of exp(x) on the Scalar engine, and the two shards are then gathered so that each core
ends with the whole exp(x): out[c] is core c's gathered copy (out [2, R, C]). The cores share
HBM, so there are two ways to gather, one kernel each:

- `lnc2_all_gather`: each core stores its shard into a shared HBM staging tensor, the cores
  meet at `nisa.core_barrier` (which makes each core's writes visible to the other), and each
  then copies the whole staging tensor into its own out[c]. Without the barrier the second
  copy reads the other core's rows while they are being written: an LNC race error.
- `lnc2_all_gather_sendrecv`: the cores swap their SBUF shards tile by tile with
  `nisa.sendrecv` (each core's n-th sendrecv pairs with the other's n-th) and each stores both
  shards into its own out[c]; the cores never touch the same HBM bytes.

R must be even; each core's R/2 rows go 128 per tile.
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402

LNC = 2  # `tessera kernel run/profile` launch these kernels as kernel[2]


def _exp_tile(x, r0, p):
    """exp of rows r0..r0+p of x, as an SBUF tile [pmax, C] (rows 0..p valid)."""
    pmax = nl.tile_size.pmax
    cols = x.shape[1]
    tile = nl.ndarray((pmax, cols), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=tile[0:p], src=x[r0:r0 + p, :])
    y = nl.ndarray((pmax, cols), dtype=x.dtype, buffer=nl.sbuf)
    nisa.activation(dst=y[0:p], op=nl.exp, data=tile[0:p])
    return y


def _my_tiles(x):
    """(first row, rows) of each tile of this core's half of x."""
    core = nl.program_id(0)
    assert nl.num_programs() == 2, "launch with kernel[2] (LNC=2)"
    half = x.shape[0] // 2
    assert 2 * half == x.shape[0], f"x needs an even row count, got {x.shape[0]}"
    pmax = nl.tile_size.pmax
    return [(core * half + t, min(pmax, half - t)) for t in range(0, half, pmax)]


@nki.jit
def lnc2_all_gather(x):
    """out[c] = exp(x) on both cores c, gathered through shared HBM and a core_barrier."""
    rows, cols = x.shape
    core = nl.program_id(0)
    staging = nl.ndarray((rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
    out = nl.ndarray((2, rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
    for r0, p in _my_tiles(x):
        y = _exp_tile(x, r0, p)
        nisa.dma_copy(dst=staging[r0:r0 + p, :], src=y[0:p])
    # both shards are in staging once both cores pass this point
    nisa.core_barrier(staging, (0, 1))
    nisa.dma_copy(dst=out[core], src=staging)
    return out


@nki.jit
def lnc2_all_gather_sendrecv(x):
    """out[c] = exp(x) on both cores c, gathered by swapping SBUF tiles with sendrecv."""
    rows, cols = x.shape
    core = nl.program_id(0)
    peer = 1 - core
    half = rows // 2
    out = nl.ndarray((2, rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
    for r0, p in _my_tiles(x):
        y = _exp_tile(x, r0, p)
        theirs = nl.ndarray(y.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.sendrecv(src=y[0:p], dst=theirs[0:p], send_to_rank=peer, recv_from_rank=peer,
                      pipe_id=0)
        # the peer's tile holds the same rows of the other half
        peer_r0 = r0 + (half if core == 0 else -half)
        nisa.dma_copy(dst=out[core, r0:r0 + p, :], src=y[0:p])
        nisa.dma_copy(dst=out[core, peer_r0:peer_r0 + p, :], src=theirs[0:p])
    return out


def example_inputs(rows=256, cols=512, dtype=nl.float32, seed=0):
    """x [rows, cols] of `dtype` (normal, scale 1/2): 128 rows per core by default."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, 0.5, (rows, cols)).astype(np.float32).astype(dtype),)


def reference(x):
    """Both cores' gathered copies of exp(x), [2, rows, cols], in float32."""
    e = np.exp(np.asarray(x).astype(np.float64)).astype(np.float32)
    return np.stack([e, e])
