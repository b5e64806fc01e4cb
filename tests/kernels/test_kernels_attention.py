"""Flash attention and decode attention against a float64 numpy softmax-attention.

Tolerances (absolute and relative, outputs are O(1)): float32 1e-4 (fp32 matmuls, fp32
softmax), bfloat16 3e-2 (P and the output are rounded to bf16, ~2^-8 relative each).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tessera import nki, sim
from tessera.kernels import Op, get
from tessera.kernels.attention import flash_attention, reference_attention
from tessera.kernels.decode_attention import decode_attention, reference_decode
from tessera.nki import language as nl

TOL = {"float32": 1e-4, "bfloat16": 3e-2}
RNG = np.random.default_rng(7)


def _inputs(shapes: tuple[int, ...], dtype: object) -> tuple[np.ndarray, ...]:
    return tuple(RNG.standard_normal(s).astype(np.float32).astype(dtype) for s in shapes)


def _close(out: np.ndarray, ref: np.ndarray, dtype: object) -> None:
    tol = TOL[np.dtype(dtype).name]
    np.testing.assert_allclose(out.astype(np.float64), ref, atol=tol, rtol=tol)


@pytest.mark.parametrize(("heads", "kv_heads", "seq", "dim", "causal", "dtype"), [
    (1, 1, 1, 64, True, np.float32),
    (4, 2, 127, 64, True, np.float32),
    (4, 1, 129, 128, False, np.float32),
    (2, 2, 200, 128, True, np.float32),
    (4, 1, 127, 128, True, nl.bfloat16),
    (4, 2, 129, 64, False, nl.bfloat16),
    (2, 1, 200, 64, True, nl.bfloat16),
])
def test_flash_matches_reference(heads, kv_heads, seq, dim, causal, dtype) -> None:
    q, k, v = _inputs(((heads, seq, dim), (kv_heads, seq, dim), (kv_heads, seq, dim)), dtype)
    out = nki.simulate(flash_attention, chip="trn1")(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == q.dtype
    _close(out, reference_attention(q, k, v, causal=causal), dtype)


@pytest.mark.parametrize("causal", [False, True])
def test_flash_online_softmax_over_blocks_and_chunks(causal: bool) -> None:
    # 128-key blocks and 256-key chunks: the running max/sum rescale across blocks, the
    # ragged last block, tiles revisiting K/V chunks; a key spike makes a later block
    # raise the max (a wrong alpha would be visible)
    q, k, v = _inputs(((2, 300, 64), (1, 300, 64), (1, 300, 64)), np.float32)
    k[0, 250] = 4.0 * q[0, 280]
    out = nki.simulate(flash_attention, chip="trn2")(q, k, v, causal=causal, block_k=128,
                                                     kv_chunk=256, scale=0.3)
    _close(out, reference_attention(q, k, v, causal=causal, scale=0.3), np.float32)


def test_flash_cross_attention_and_engine_split() -> None:
    q, = _inputs(((2, 130, 64),), np.float32)
    k, v = _inputs(((2, 260, 64), (2, 260, 64)), np.float32)
    ref = reference_attention(q, k, v)
    for eighths in (0, 4, 8):  # who copies P^T out of PSUM must not change the result
        out = nki.simulate(flash_attention, chip="trn1")(q, k, v, block_k=256,
                                                         scalar_eighths=eighths)
        _close(out, ref, np.float32)


def test_flash_rejects_bad_shapes() -> None:
    q, k = _inputs(((3, 16, 64), (2, 16, 64)), np.float32)
    with pytest.raises(ValueError, match="must divide"):
        nki.simulate(flash_attention)(q, k, k)
    q, k = _inputs(((2, 16, 64), (2, 32, 64)), np.float32)
    with pytest.raises(ValueError, match="causal needs"):
        nki.simulate(flash_attention)(q, k, k, causal=True)


@pytest.mark.parametrize(("heads", "kv_heads", "tokens", "dim", "dtype"), [
    (4, 2, 1, 64, np.float32),
    (4, 1, 129, 128, np.float32),
    (2, 2, 300, 64, np.float32),
    (8, 2, 129, 64, nl.bfloat16),
    (4, 4, 300, 128, nl.bfloat16),
])
def test_decode_matches_reference(heads, kv_heads, tokens, dim, dtype) -> None:
    q, k, v = _inputs(((heads, dim), (kv_heads, tokens, dim), (kv_heads, tokens, dim)), dtype)
    out = nki.simulate(decode_attention, chip="trn2")(q, k, v)
    assert out.shape == q.shape and out.dtype == q.dtype
    _close(out, reference_decode(q, k, v), dtype)


def test_decode_chunks_and_length() -> None:
    # 128-token chunks merged online; only the first 290 of 300 cache entries attend
    q, k, v = _inputs(((4, 64), (2, 300, 64), (2, 300, 64)), np.float32)
    k[1, 200] = 5.0 * q[2]  # a late maximum
    k[0, 295] = 50.0 * q[0]  # beyond `length`: must be ignored
    out = nki.simulate(decode_attention, chip="trn1")(q, k, v, length=290, kv_chunk=128)
    _close(out, reference_decode(q, k, v, length=290), np.float32)


def test_registry_defs_round_trip() -> None:
    for op, shapes in ((Op.FLASH_ATTENTION, {"heads": 2, "kv_heads": 1, "seq": 129,
                                             "head_dim": 64}),
                       (Op.DECODE_ATTENTION, {"heads": 2, "kv_heads": 1, "tokens": 129,
                                              "head_dim": 64})):
        defn = get(op)
        assert set(defn.shape_keys) == set(shapes)
        inputs = defn.make_inputs(shapes, "bfloat16", RNG)
        out = nki.simulate(defn.kernel, chip="trn1")(*inputs, **defn.defaults)
        _close(out, defn.reference(*inputs), nl.bfloat16)
    flash = get(Op.FLASH_ATTENTION)
    shapes = {"heads": 8, "kv_heads": 2, "seq": 4096, "head_dim": 128}
    assert flash.flops(shapes) == 4 * 8 * 4096**2 * 128
    assert flash.flops({**shapes, "causal": 1}) == 2 * 8 * 4096**2 * 128
    assert flash.hbm_bytes(shapes, 2) == 2 * (2 * 8 + 2 * 2) * 4096 * 128
    decode = get(Op.DECODE_ATTENTION)
    dshapes = {"heads": 32, "kv_heads": 8, "tokens": 4096, "head_dim": 128}
    assert decode.hbm_bytes(dshapes, 2) == 2 * (2 * 8 * 4096 + 2 * 32) * 128


def _specs(*shapes: tuple[int, ...]) -> list[nki.TensorSpec]:
    return [nki.TensorSpec(s, nl.bfloat16) for s in shapes]


def test_flash_performance_guard() -> None:
    # seq 1024, D 128, bf16, GQA 8/2, symbolic trn1: ~34% of TensorE peak (trn1 is bound
    # by the shared Vector/Scalar PSUM port; seq 4096 reaches ~36% trn1, ~59% trn2)
    trace = nki.trace(flash_attention, symbolic=True, chip="trn1")(
        *_specs((8, 1024, 128), (2, 1024, 128), (2, 1024, 128)))
    profile = sim.schedule(trace)
    assert profile.flops == pytest.approx(4 * 8 * 1024**2 * 128)
    assert profile.flops_utilisation >= 0.3


def test_decode_performance_guard() -> None:
    # 32/8 heads over 4096 tokens: HBM-bound, most of the core's HBM share on trn2
    trace = nki.trace(decode_attention, symbolic=True, chip="trn2")(
        *_specs((32, 128), (8, 4096, 128), (8, 4096, 128)))
    profile = sim.schedule(trace)
    cache_bytes = 2 * 8 * 4096 * 128 * 2
    assert profile.hbm_read_bytes >= cache_bytes
    assert profile.hbm_utilisation >= 0.7
    assert math.isclose(profile.flops, 4 * 32 * 4096 * 128, rel_tol=0.05)
