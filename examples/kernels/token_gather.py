"""Token gather for MoE dispatch: copy the hidden states of the tokens routed to one expert
into a dense buffer, with a trip count known only at run time.

The router writes `ids` [capacity, 1] (the selected token rows, padded with -1) and
`count` [1, 1] (how many are valid) to HBM. The kernel reads the count into an engine
register (`nisa.register_load`) and runs a device loop over 128-token blocks
(`nl.dynamic_range(0, count, 128)`), so its program does not depend on how many tokens were
picked. Per block, the loop register is the block's first slot: it places the DMA that loads
the block's ids (`scalar_offset=`), an indirect DMA gathers the rows (`vector_offset=`, the
-1 padding skipped with `oob_mode.skip`), and a third DMA stores the block. Slots at or past
`count` end up zero. Capacity must be a multiple of 128.

Each iteration of a device loop ends with a barrier across the engines, so the three DMAs of
one block do not overlap the next block's: `tessera kernel profile` shows the serialized
blocks and the loop control steps (register_move on the Scalar engine).
"""

import numpy as np

# makes `import nki` resolve to tessera.nki when no real nki is installed
from tessera.nki.compat import install

install()
import nki  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402


@nki.jit
def token_gather(hidden, ids, count):
    """out [capacity, D]: out[s] = hidden[ids[s]] for s < count, else 0."""
    tokens, d = hidden.shape
    capacity = ids.shape[0]
    pmax = nl.tile_size.pmax
    assert capacity % pmax == 0, f"capacity must be a multiple of {pmax}, got {capacity}"
    out = nl.ndarray((capacity, d), dtype=hidden.dtype, buffer=nl.shared_hbm)

    zeros = nl.ndarray((pmax, d), dtype=hidden.dtype, buffer=nl.sbuf)
    nisa.memset(dst=zeros, value=0.0)
    for b in range(capacity // pmax):  # slots the device loop never reaches stay zero
        nisa.dma_copy(dst=out[b * pmax:(b + 1) * pmax, :], src=zeros)

    count_sb = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=count_sb, src=count)
    n_valid = nisa.register_alloc()
    nisa.register_load(n_valid, count_sb)

    for start in nl.dynamic_range(0, n_valid, pmax):  # start: a register, 0, 128, ...
        ids_sb = nl.ndarray((pmax, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=ids_sb, src=ids.ap([[1, pmax], [1, 1]], scalar_offset=start,
                                             indirect_dim=0))
        rows = nl.ndarray((pmax, d), dtype=hidden.dtype, buffer=nl.sbuf)
        nisa.memset(dst=rows, value=0.0)  # padded slots (-1) are skipped and stay zero
        nisa.dma_copy(dst=rows, src=hidden.ap([[d, pmax], [1, d]], vector_offset=ids_sb,
                                              indirect_dim=0),
                      oob_mode=nisa.oob_mode.skip)
        nisa.dma_copy(dst=out.ap([[d, pmax], [1, d]], scalar_offset=start, indirect_dim=0),
                      src=rows)
    return out


def example_inputs(tokens=512, hidden=256, capacity=256, count=150, seed=0):
    """(hidden [tokens, hidden] fp32, ids [capacity, 1] int32 padded with -1, count [1, 1])."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((tokens, hidden)).astype(np.float32)
    ids = np.full((capacity, 1), -1, dtype=np.int32)
    ids[:count, 0] = np.sort(rng.choice(tokens, size=count, replace=False))
    return states, ids, np.array([[count]], dtype=np.int32)


def reference(hidden, ids, count):
    """The gathered rows, zero past `count`."""
    n = int(np.asarray(count).reshape(-1)[0])
    out = np.zeros((ids.shape[0], hidden.shape[1]), dtype=hidden.dtype)
    out[:n] = hidden[ids[:n, 0]]
    return out
