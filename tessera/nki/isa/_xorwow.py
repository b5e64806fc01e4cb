"""The pseudo random number generators of the Vector and GpSimd engines (per core, per lane).

The NKI pages name the algorithm, XORWOW (nki.isa.rand2: "Uses XORWOW PRNG algorithm"), and
the state size: 6 uint32 words per compute lane on GpSimd, 24 on Vector (nki.isa.rand_get_state
/ rand_set_state). Tessera runs Marsaglia's XORWOW step exactly ("Xorshift RNGs", 2003):

    t = x ^ (x >> 2); x, y, z, w = y, z, w, v
    v = (v ^ (v << 4)) ^ (t ^ (t << 1)); d += 362437; out = d + v

What the pages do not say is Tessera's choice, so the values are NOT the hardware's:
- the order of the 6 words in a lane's state is (x, y, z, w, v, d);
- a Vector lane holds 4 such generators (24 words, generator-major); element j of a lane's
  output comes from generator j % 4, and every generator advances by ceil(N / 4) steps;
- a 32-bit seed (nisa.set_rng_seed, nl.random_seed) is spread over the lanes' words with the
  murmur3 finaliser of (seed, lane, word); before any seeding each core's engines start from
  such a spread of the core id, so a launch is reproducible run after run.

The state of every engine lives in the core's run context (`CoreContext.rng_states`): it
persists for the rest of the launch, as the page says it does for the rest of a NEFF.
"""

from __future__ import annotations

import numpy as np

from tessera.nki.runtime import CoreContext
from tessera.nki.stream import Engine

WORDS = 6  # x, y, z, w, v, d of one XORWOW generator
GENERATORS = {Engine.GPSIMD: 1, Engine.VECTOR: 4}  # per lane: 6 and 24 state words
WEYL = np.uint32(362437)
_STREAM_TAG = {Engine.VECTOR: 0x5EED0001, Engine.GPSIMD: 0x5EED0002}
_U32 = np.uint32


def state_words(engine: Engine) -> int:
    """uint32 words of one lane's state on `engine` (6 GpSimd, 24 Vector)."""
    return GENERATORS[engine] * WORDS


def _fmix32(h: np.ndarray) -> np.ndarray:
    """The murmur3 32-bit finaliser (uint32 arithmetic wraps)."""
    h = h ^ (h >> _U32(16))
    h = h * _U32(0x85EBCA6B)
    h = h ^ (h >> _U32(13))
    h = h * _U32(0xC2B2AE35)
    return h ^ (h >> _U32(16))


def spread_seed(seed: int, engine: Engine, lanes: int) -> np.ndarray:
    """[lanes, words] states derived from one 32-bit seed (distinct per lane and word)."""
    words = state_words(engine)
    base = _fmix32(np.array([(seed & 0xFFFFFFFF) ^ _STREAM_TAG[engine]], dtype=np.uint32))
    counter = np.arange(1, lanes * words + 1, dtype=np.uint32)
    state = _fmix32(base + counter * _U32(0x9E3779B9)).reshape(lanes * GENERATORS[engine],
                                                               WORDS)
    dead = ~state[:, :5].any(axis=1)  # an all-zero xorshift part would emit only d
    state[dead, 4] = 1
    return state.reshape(lanes, words)


def engine_state(ctx: CoreContext, engine: Engine) -> np.ndarray:
    """The [pmax, words] state of `engine` on this core (created on first use)."""
    state = ctx.rng_states.get(engine)
    if state is None:
        state = spread_seed(ctx.core_id, engine, ctx.run.limits.pmax)
        ctx.rng_states[engine] = state
    return state  # type: ignore[return-value]


def xorwow(state: np.ndarray, steps: int) -> np.ndarray:
    """Advance each [x, y, z, w, v, d] row of `state` (in place) `steps` times; returns the
    [rows, steps] outputs d + v."""
    x, y, z, w, v, d = (state[:, k].copy() for k in range(WORDS))
    out = np.empty((state.shape[0], steps), dtype=np.uint32)
    for k in range(steps):
        t = x ^ (x >> _U32(2))
        x, y, z, w = y, z, w, v
        v = (v ^ (v << _U32(4))) ^ (t ^ (t << _U32(1)))
        d = d + WEYL
        out[:, k] = d + v
    state[...] = np.stack((x, y, z, w, v, d), axis=1)
    return out


def draw_bits(ctx: CoreContext, engine: Engine, first_lane: int, lanes: int,
              n: int) -> np.ndarray:
    """[lanes, n] random uint32 words from lanes first_lane.. of `engine` (state advanced)."""
    gens = GENERATORS[engine]
    full = engine_state(ctx, engine)
    rows = full[first_lane:first_lane + lanes].reshape(lanes * gens, WORDS).copy()
    steps = -(-n // gens)
    out = xorwow(rows, steps).reshape(lanes, gens, steps)
    full[first_lane:first_lane + lanes] = rows.reshape(lanes, gens * WORDS)
    # element j of a lane comes from generator j % gens at step j // gens
    return out.transpose(0, 2, 1).reshape(lanes, steps * gens)[:, :n]


def uniform(bits: np.ndarray, mantissa: int = 24) -> np.ndarray:
    """float32 values in [0, 1): the top `mantissa` bits as a fraction, so every value is
    exactly representable in a float type with that many significant bits (never 1.0)."""
    top = (bits >> _U32(32 - mantissa)).astype(np.float64)
    return (top * 2.0 ** -mantissa).astype(np.float32)
