"""nisa.rng / rand2 / rand_set_state / rand_get_state / set_rng_seed / dropout and nl.rand /
random_seed / dropout: the XORWOW step the rand2 page names (checked against a plain-Python
reference), determinism under a seed, state round trips, documented ranges and dtypes,
dropout's rate and kept values against numpy on the same draws, one error test per
documented constraint, and the cost rules. The values are not the hardware's (the pages do
not give the state layout or seeding), so nothing here compares with device output."""

from __future__ import annotations

import numpy as np
import pytest
from nki_harness import trace_tiles  # noqa: E402

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode

M32 = 0xFFFFFFFF
U32 = nl.uint32
F32 = nl.float32
X = np.random.default_rng(7).uniform(1.0, 2.0, (128, 512)).astype(np.float32)  # no zeros


# ---------------------------------------------------------------- references
def xorwow_ref(state: list[int], n: int) -> tuple[list[int], list[int]]:
    """Marsaglia's XORWOW on one [x, y, z, w, v, d] state: (n outputs, final state)."""
    x, y, z, w, v, d = state
    out = []
    for _ in range(n):
        t = x ^ (x >> 2)
        x, y, z, w = y, z, w, v
        v = (v ^ ((v << 4) & M32)) ^ (t ^ ((t << 1) & M32))
        d = (d + 362437) & M32
        out.append((d + v) & M32)
    return out, [x, y, z, w, v, d]


def uniform_ref(bits: np.ndarray) -> np.ndarray:
    """The [0, 1) fraction of the top 24 bits (what rand2 / dropout / nl.rand draw)."""
    return (bits.astype(np.uint32) >> 8).astype(np.float64) / 2.0 ** 24


def seeds(rows: int, words: int, base: int = 0) -> np.ndarray:
    marsaglia = [123456789, 362436069, 521288629, 88675123, 5783321, 6615241]
    grid = np.tile(np.array(marsaglia * (words // 6), dtype=np.int64), (rows, 1))
    return ((grid + base + 1000 * np.arange(rows)[:, None]) & M32).astype(np.uint32)


def _seed_tile(value: int, dtype=nl.int32):
    return nl.full((1, 1), value, dtype=dtype, buffer=nl.sbuf)


# ---------------------------------------------------------------- the generator
def test_gpsimd_rng_is_xorwow_per_lane_and_state_reads_back_advanced():
    state = seeds(128, 6)

    def body(o, i):
        nisa.rand_set_state(i[0], engine=nisa.gpsimd_engine)
        nisa.rng(o[0], engine=nisa.engine.gpsimd)
        nisa.rand_get_state(o[1], engine=nisa.gpsimd_engine)

    res = trace_tiles(body, state, out=[((128, 20), U32), ((128, 6), U32)], chip="trn2")
    for lane in (0, 1, 77, 127):
        want, after = xorwow_ref(state[lane].tolist(), 20)
        assert res.outputs[0][lane].tolist() == want
        assert res.outputs[1][lane].tolist() == after


def test_vector_lanes_interleave_four_generators_and_truncate_to_low_bits():
    state = seeds(4, 24, base=5)

    def body(o, i):
        nisa.rand_set_state(i[0], engine=nisa.vector_engine)
        nisa.rng(o[0])  # Vector is the default engine
        nisa.rand_set_state(i[0], engine=nisa.vector_engine)
        nisa.rng(o[1])

    res = trace_tiles(body, state, out=[((4, 10), U32), ((4, 2, 5), nl.int8)], chip="trn3")
    for lane in range(4):
        streams = [xorwow_ref(state[lane, 6 * g:6 * g + 6].tolist(), 3)[0] for g in range(4)]
        want = [streams[j % 4][j // 4] for j in range(10)]
        assert res.outputs[0][lane].tolist() == want
        low = np.array(want, dtype=np.uint32).astype(np.int8)  # least significant 8 bits
        np.testing.assert_array_equal(res.outputs[1][lane].reshape(-1), low)


@pytest.mark.parametrize(("chip", "engine", "words", "buffer"),
                         [("trn2", nisa.gpsimd_engine, 6, nl.sbuf),
                          ("trn3", nisa.vector_engine, 24, nl.psum)])
def test_set_state_then_get_state_round_trips(chip, engine, words, buffer):
    state = seeds(32, words, base=99)

    def body(o, i):
        nisa.rand_set_state(i[0], engine=engine)
        got = nl.ndarray((32, words), U32, buffer=buffer)
        nisa.rand_get_state(got, engine=engine)
        nisa.tensor_copy(o[0], got)

    res = trace_tiles(body, state, out=[((32, words), U32)], chip=chip)
    np.testing.assert_array_equal(res.outputs[0], state)


@nki.jit
def _seeded_draws(x, seed_a: int, seed_b: int):
    out = nl.ndarray((3, 128, 64), nl.uint32, buffer=nl.shared_hbm)
    for k, seed in enumerate((seed_a, seed_a, seed_b)):
        nisa.set_rng_seed(_seed_tile(seed))
        t = nl.ndarray((128, 64), nl.uint32, buffer=nl.sbuf)
        nisa.rng(t)
        nisa.dma_copy(out[k], t)
    return out


def test_same_seed_same_values_across_calls_and_launches():
    first = nki.simulate(_seeded_draws)(X, 42, 43)
    again = nki.simulate(_seeded_draws)(X, 42, 43)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[1])
    assert np.mean(first[0] == first[2]) < 0.01  # another seed, another sequence
    assert len(np.unique(first[0])) > 0.99 * first[0].size  # lanes do not repeat each other


# ---------------------------------------------------------------- nl.rand / random_seed
@nki.jit
def _page_example(x):
    """The nl.random_seed page's example, plus bf16 and HBM variants."""
    seed = nl.full((1, 1), 42, dtype=nl.int32, buffer=nl.sbuf)
    nl.random_seed(seed)
    a = nl.rand((128, 512), dtype=nl.float32)
    nl.random_seed(seed)
    b = nl.rand((128, 512), dtype=nl.float32)
    c = nl.rand((128, 512), dtype=nl.bfloat16)
    h = nl.rand((128, 64), nl.float8_e4m3, buffer=nl.shared_hbm)
    outs = []
    for t in (a, b, c):
        o = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(o, t)
        outs.append(o)
    return (*outs, h)


def test_nl_rand_uniform_in_unit_interval_and_seeded():
    a, b, c, h = nki.simulate(_page_example)(X)
    np.testing.assert_array_equal(a, b)
    for values in (a, c.astype(np.float32), h.astype(np.float32)):
        assert values.min() >= 0.0 and values.max() < 1.0  # [0, 1), even in bf16 / fp8
    assert abs(a.mean() - 0.5) < 0.01 and abs(a.var() - 1 / 12) < 0.005
    assert c.dtype == nl.bfloat16.storage and len(np.unique(h)) > 8


# ---------------------------------------------------------------- rand2
def test_rand2_scalar_and_per_partition_ranges():
    lo = np.linspace(-4, 0, 128, dtype=np.float32).reshape(128, 1)
    hi = lo + np.float32(0.5)

    def body(o, i):
        nisa.rand2(o[0], -2.0, 3.0)
        nisa.rand2(o[1], i[0], i[1])
        nisa.rand2(o[2], 10.0, 20.0)

    res = trace_tiles(body, lo, hi, out=[((128, 256), F32), ((128, 64), nl.bfloat16),
                                         ((128, 64), nl.int16)], chip="trn3")
    a = res.outputs[0]
    assert a.min() >= -2.0 and a.max() <= 3.0 and abs(a.mean() - 0.5) < 0.05
    b = res.outputs[1].astype(np.float32)
    assert np.all(b >= lo.astype(nl.bfloat16.storage).astype(np.float32))
    assert np.all(b <= hi.astype(nl.bfloat16.storage).astype(np.float32))
    ints = res.outputs[2]
    assert ints.min() >= 10 and ints.max() <= 20 and len(np.unique(ints)) == 11


# ---------------------------------------------------------------- dropout
def test_dropout_rate_and_kept_values_match_numpy_on_the_same_draws():
    def body(o, i):
        nisa.set_rng_seed(_seed_tile(7))
        nisa.rng(o[0])  # the draws dropout will make, as raw words
        nisa.set_rng_seed(_seed_tile(7))
        nisa.dropout(o[1], i[0], 0.3)

    res = trace_tiles(body, X, out=[((128, 512), U32), ((128, 512), F32)], chip="trn2")
    dropped = uniform_ref(res.outputs[0]) < 0.3
    np.testing.assert_array_equal(res.outputs[1], np.where(dropped, 0.0, X))  # not rescaled
    assert abs(dropped.mean() - 0.3) < 0.02


def test_dropout_per_partition_probabilities_integer_data_and_nl_dropout():
    prob = np.repeat(np.array([0.0, 1.0, 0.5, 0.5], np.float32), 32).reshape(128, 1)
    ints = np.arange(1, 128 * 256 + 1, dtype=np.int32).reshape(128, 256)

    def body(o, i):
        nisa.dropout(o[0], i[0], i[1])
        out = nl.dropout(i[0], rate=i[1][:, 0], dtype=nl.float32)
        nisa.tensor_copy(o[1], out)
        nisa.dropout(o[2], i[0], 1.0)

    res = trace_tiles(body, ints, prob, out=[((128, 256), nl.int32), ((128, 256), F32),
                                             ((128, 256), nl.int32)])
    for out in (res.outputs[0], res.outputs[1]):
        kept = out != 0
        assert kept[:32].all() and not kept[32:64].any()
        assert 0.45 < kept[64:].mean() < 0.55
        np.testing.assert_array_equal(out[kept], ints[kept])
    assert not res.outputs[2].any()


# ---------------------------------------------------------------- errors
def _run(chip: str, body) -> None:
    def kernel(x):
        body()
        return x

    nki.simulate(kernel, chip=chip)(X[:4, :4])


def _t(shape, dtype=F32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _ones(shape, dtype):
    return nl.full(shape, 1, dtype=dtype, buffer=nl.sbuf)


ERRORS = {
    "rng float dst": ("trn2", lambda: nisa.rng(_t((8, 8))), DTypeError),
    "rng hbm dst": ("trn2", lambda: nisa.rng(_t((8, 8), U32, nl.hbm)), BufferKindError),
    "rng gpsimd on v2": ("trn1", lambda: nisa.rng(_t((8, 8), U32), nisa.gpsimd_engine),
                         KernelUsageError),
    "rng gpsimd psum": ("trn2", lambda: nisa.rng(_t((8, 8), U32, nl.psum),
                                                 nisa.gpsimd_engine), EngineAccessError),
    "rng scalar engine": ("trn2", lambda: nisa.rng(_t((8, 8), U32), nisa.scalar_engine),
                          EngineAccessError),
    "rand2 on v3": ("trn2", lambda: nisa.rand2(_t((8, 8)), 0.0, 1.0), KernelUsageError),
    "rand2 min >= max": ("trn3", lambda: nisa.rand2(_t((8, 8)), 1.0, 1.0), KernelUsageError),
    "rand2 bool dst": ("trn3", lambda: nisa.rand2(_t((8, 8), nl.bool_), 0.0, 1.0),
                       DTypeError),
    "rand2 bf16 bound": ("trn3", lambda: nisa.rand2(_t((8, 8)), _ones((8, 1), nl.bfloat16),
                                                     2.0), DTypeError),
    "rand2 bound shape": ("trn3", lambda: nisa.rand2(_t((8, 8)), _ones((8, 2), F32), 2.0),
                          ShapeMismatchError),
    "rand2 tile min >= max": ("trn3", lambda: nisa.rand2(_t((8, 8)), _ones((8, 1), F32),
                                                         1.0), KernelUsageError),
    "set_state on v2": ("trn1", lambda: nisa.rand_set_state(_ones((8, 6), U32)),
                        KernelUsageError),
    "set_state vector on v3": ("trn2", lambda: nisa.rand_set_state(
        _ones((8, 24), U32), engine=nisa.vector_engine), KernelUsageError),
    "set_state words": ("trn2", lambda: nisa.rand_set_state(_ones((8, 24), U32)),
                        ShapeMismatchError),
    "set_state int32": ("trn2", lambda: nisa.rand_set_state(_ones((8, 6), nl.int32)),
                        DTypeError),
    "set_state 3-D": ("trn2", lambda: nisa.rand_set_state(_t((8, 2, 3), U32)),
                      ShapeMismatchError),
    "set_state psum": ("trn3", lambda: nisa.rand_set_state(_t((8, 24), U32, nl.psum),
                                                          engine=nisa.vector_engine),
                       BufferKindError),
    "get_state psum on v3": ("trn2", lambda: nisa.rand_get_state(_t((8, 6), U32, nl.psum)),
                             BufferKindError),
    "get_state gpsimd psum": ("trn3", lambda: nisa.rand_get_state(_t((8, 6), U32, nl.psum)),
                              EngineAccessError),
    "seed shape": ("trn2", lambda: nisa.set_rng_seed(_ones((1, 2), nl.int32)),
                   ShapeMismatchError),
    "seed 16-bit": ("trn2", lambda: nisa.set_rng_seed(_ones((1, 1), nl.int16)), DTypeError),
    "seed hbm": ("trn2", lambda: nl.random_seed(_t((1, 1), nl.int32, nl.hbm)),
                 BufferKindError),
    "dropout dtype": ("trn2", lambda: nisa.dropout(_t((8, 8), nl.bfloat16), _ones((8, 8), F32),
                                                   0.5), DTypeError),
    "dropout layout": ("trn2", lambda: nisa.dropout(_t((8, 4)), _ones((8, 8), F32), 0.5),
                       ShapeMismatchError),
    "dropout prob range": ("trn2", lambda: nisa.dropout(_t((8, 8)), _ones((8, 8), F32), 1.5),
                           KernelUsageError),
    "dropout prob shape": ("trn2", lambda: nisa.dropout(_t((8, 8)), _ones((8, 8), F32),
                                                        _ones((4, 1), F32)),
                           ShapeMismatchError),
    "dropout int data bf16 prob": ("trn2", lambda: nisa.dropout(
        _t((8, 8), nl.int32), _ones((8, 8), nl.int32), _ones((8, 1), nl.bfloat16)),
        DTypeError),
    "dropout float data int prob": ("trn2", lambda: nisa.dropout(
        _t((8, 8)), _ones((8, 8), F32), _ones((8, 1), nl.int32)), DTypeError),
    "nl.rand int dtype": ("trn2", lambda: nl.rand((8, 8), nl.int32), DTypeError),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_documented_constraints_raise_one_line_errors(case):
    chip, body, error = ERRORS[case]
    with pytest.raises(error) as info:
        _run(chip, body)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- stream and timing
def test_engines_recorded_and_priced():
    def body(o, i):
        nisa.rng(o[0], engine=nisa.gpsimd_engine)
        nisa.rng(o[0])
        nisa.dropout(o[1], i[0], 0.1)
        nisa.dropout(o[2], i[0][:, 0:64], 0.1)

    res = trace_tiles(body, X, out=[((128, 512), U32), ((128, 512), F32), ((128, 64), F32)],
                      chip="trn2")
    ops = [(i.opcode, i.engine) for i in res.instructions
           if i.opcode in (Opcode.RNG, Opcode.DROPOUT)]
    assert ops == [(Opcode.RNG, Engine.GPSIMD), (Opcode.RNG, Engine.VECTOR),
                   (Opcode.DROPOUT, Engine.VECTOR), (Opcode.DROPOUT, Engine.VECTOR)]
    tl = sim.schedule(res, "trn2").timeline
    pos = [p for p, i in enumerate(res.instructions) if i.opcode is Opcode.DROPOUT]
    spans = [tl.end_s[p] - tl.start_s[p] for p in pos]
    assert spans[0] > spans[1] > 0  # one pass over N elements
