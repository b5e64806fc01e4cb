"""`tessera.cost.estimate` on two test kernels: roofline formulas from `tessera.hw`,
ROOFLINE <= SIMULATED, monotonic in size, the breakdown, caching and errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tessera import cost, hw, nki
from tessera.cost import CostError, Fidelity, Latency
from tessera.hw import Engine, MemoryKind
from tessera.kernels import KernelDef, Op
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype

simulated_module = sys.modules["tessera.cost.simulated"]


@nki.jit
def vadd(a, b, rows_per_tile: int = 64):
    """out = a + b over row tiles."""
    rows, cols = a.shape
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    for r in range(0, rows, rows_per_tile):
        p = min(rows_per_tile, rows - r)
        ta = nl.ndarray((p, cols), a.dtype, buffer=nl.sbuf)
        tb = nl.ndarray((p, cols), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(ta, a[r:r + p])
        nisa.dma_copy(tb, b[r:r + p])
        nisa.tensor_tensor(tb, ta, tb, op=nl.add)
        nisa.dma_copy(out[r:r + p], tb)
    return out


@nki.jit
def matmul(lhs_t, rhs, tile_n: int = 128):
    """out[M, N] = lhs_t[K, M]^T @ rhs[K, N]; K, M multiples of 128, N of tile_n."""
    k_dim, m_dim = lhs_t.shape
    n_dim = rhs.shape[1]
    out = nl.ndarray((m_dim, n_dim), lhs_t.dtype, buffer=nl.shared_hbm)
    for m in range(0, m_dim, 128):
        for n in range(0, n_dim, tile_n):
            acc = nl.ndarray((128, tile_n), nl.float32, buffer=nl.psum)
            for k in range(0, k_dim, 128):
                a = nl.ndarray((128, 128), lhs_t.dtype, buffer=nl.sbuf)
                b = nl.ndarray((128, tile_n), rhs.dtype, buffer=nl.sbuf)
                nisa.dma_copy(a, lhs_t[k:k + 128, m:m + 128])
                nisa.dma_copy(b, rhs[k:k + 128, n:n + tile_n])
                nisa.nc_matmul(acc, a, b)
            res = nl.ndarray((128, tile_n), lhs_t.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(res, acc)
            nisa.dma_copy(out[m:m + 128, n:n + tile_n], res)
    return out


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(np.float32).astype(to_dtype(dtype).storage)


VADD = KernelDef(
    op=Op.RESIDUAL_ADD, name="cost_test_vadd", kernel=vadd, shape_keys=("rows", "cols"),
    make_inputs=lambda s, d, rng: (_randn(rng, (s["rows"], s["cols"]), d),) * 2,
    reference=lambda a, b, **_: a.astype(np.float32) + b,
    flops=lambda s: s["rows"] * s["cols"],
    hbm_bytes=lambda s, itemsize: 3 * s["rows"] * s["cols"] * itemsize,
    tunables={"rows_per_tile": (32, 64, 128)}, defaults={"rows_per_tile": 64})
MATMUL = KernelDef(
    op=Op.MATMUL, name="cost_test_matmul", kernel=matmul, shape_keys=("M", "K", "N"),
    make_inputs=lambda s, d, rng: (_randn(rng, (s["K"], s["M"]), d),
                                   _randn(rng, (s["K"], s["N"]), d)),
    reference=lambda a, b, **_: a.astype(np.float64).T @ b,
    flops=lambda s: 2 * s["M"] * s["K"] * s["N"],
    hbm_bytes=lambda s, i: (s["M"] * s["K"] + s["K"] * s["N"] + s["M"] * s["N"]) * i,
    input_specs=lambda s, d: (nki.TensorSpec((s["K"], s["M"]), d),
                              nki.TensorSpec((s["K"], s["N"]), d)),
    tunables={"tile_n": (128, 256, 512)}, defaults={"tile_n": 128})

VADD_SHAPES = [{"rows": 128, "cols": 256}, {"rows": 256, "cols": 1024},
               {"rows": 1024, "cols": 2048}]
MATMUL_SHAPES = [{"M": 128, "K": 128, "N": 512}, {"M": 256, "K": 512, "N": 512},
                 {"M": 512, "K": 1024, "N": 1024}]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))
    cost.clear_memory_cache()
    yield
    cost.clear_memory_cache()


def test_test_kernels_match_numpy() -> None:
    rng = np.random.default_rng(3)
    a, b = MATMUL.make_inputs({"M": 256, "K": 256, "N": 256}, nl.float32, rng)
    out = nki.simulate(matmul)(a, b, tile_n=256)
    np.testing.assert_allclose(out, MATMUL.reference(a, b), rtol=1e-5, atol=1e-4)
    x = _randn(rng, (200, 64), nl.float32)
    np.testing.assert_array_equal(nki.simulate(vadd)(x, x), x + x)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_roofline_formulas_come_from_hw(chip: str) -> None:
    spec = hw.load_chip(chip)
    core = spec.core
    shapes = {"rows": 8192, "cols": 4096}
    e = cost.estimate(VADD, shapes, "bfloat16", chip)
    elements = 8192 * 4096
    assert e.memory_s == pytest.approx(3 * elements * 2 / spec.hbm_bytes_per_s_per_core)
    latency = core.dma.fixed_latency_s if core.version < 3 else core.dma.hw_dge_latency_s
    assert e.overhead_s == pytest.approx(latency)
    pool = sum(getattr(core, n).elements_per_cycle_for("bf16") * getattr(core, n).clock_hz
               for n in ("vector", "scalar", "gpsimd"))
    assert e.compute_s == pytest.approx(elements / (2 * pool))  # N/2 fastest rule
    assert e.bound is MemoryKind.HBM and e.fidelity is Fidelity.ROOFLINE
    assert e.time_s == pytest.approx(e.memory_s + e.overhead_s)
    assert e.hbm_utilisation == pytest.approx(e.memory_s / e.time_s)

    mm = {"M": 4096, "K": 4096, "N": 4096}
    bf16 = cost.estimate(MATMUL, mm, "bfloat16", chip)
    assert bf16.compute_s == pytest.approx(2 * 4096**3 / core.tensor.peak_flops("bf16"))
    assert bf16.bound is Engine.TENSOR
    fp32 = cost.estimate(MATMUL, mm, "float32", chip)
    assert fp32.compute_s == pytest.approx(4 * bf16.compute_s)  # TensorE fp32 is 4x slower
    tiny = cost.estimate(MATMUL, {"M": 1, "K": 1, "N": 1}, "bfloat16", chip)
    assert tiny.bound is Latency.FIXED


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
@pytest.mark.parametrize("defn,shape_list", [(VADD, VADD_SHAPES), (MATMUL, MATMUL_SHAPES)],
                         ids=["vadd", "matmul"])
def test_roofline_below_simulated_and_monotonic(chip, defn, shape_list) -> None:
    previous = {Fidelity.ROOFLINE: 0.0, Fidelity.SIMULATED: 0.0}
    for shapes in shape_list:
        roof = cost.estimate(defn, shapes, "bfloat16", chip)
        simu = cost.estimate(defn, shapes, "bfloat16", chip, Fidelity.SIMULATED)
        assert roof.time_s <= simu.time_s, (shapes, roof, simu)
        for e in (roof, simu):
            assert e.time_s > previous[e.fidelity], (shapes, e.fidelity)
            previous[e.fidelity] = e.time_s
            assert e.time_s == pytest.approx(max(e.compute_s, e.memory_s) + e.overhead_s)
            assert min(e.compute_s, e.memory_s, e.overhead_s) >= 0
        s = simu.simulated
        assert s is not None and s.hbm_read_bytes + s.hbm_write_bytes >= roof.hbm_bytes
        # the profile counts matmul FLOPs only (2KMN per nc_matmul)
        assert s.flops == pytest.approx(roof.flops if defn.op in cost.TENSOR_OPS else 0.0)
        assert simu.time_s <= s.default_time_s  # tuned, never slower than the defaults


def test_simulated_memo_and_disk_cache(tmp_path, monkeypatch) -> None:
    shapes = {"M": 256, "K": 256, "N": 1024}
    first = cost.estimate(MATMUL, shapes, "bfloat16", "trn2", "simulated")
    assert first.simulated.params["tile_n"] in (128, 256, 512)
    assert first.simulated.configurations == 3
    assert first.bound in (Engine.TENSOR, Engine.DMA, MemoryKind.HBM, Engine.VECTOR, Latency.FIXED)
    data = json.loads((tmp_path / "cache" / "cost.json").read_text())
    key = "cost_test_matmul|K=256,M=256,N=1024|bfloat16|trn2"
    assert data["entries"][key]["value"]["time_s"] == first.time_s

    def no_profiling(*args, **kwargs):
        raise AssertionError("profiled although cached")

    monkeypatch.setattr(simulated_module, "profile_config", no_profiling)
    monkeypatch.setattr(simulated_module, "tune", no_profiling)
    assert cost.estimate(MATMUL, shapes, "bfloat16", "trn2", "simulated") is first  # memo
    cost.clear_memory_cache()
    assert cost.estimate(MATMUL, shapes, "bfloat16", "trn2", "simulated") == first  # disk
    cost.clear_memory_cache()
    with pytest.raises(AssertionError, match="profiled although cached"):
        cost.estimate(MATMUL, shapes, "bfloat16", "trn2", "simulated", cache=False)
    data["entries"][key]["fingerprint"] = "stale"
    (tmp_path / "cache" / "cost.json").write_text(json.dumps(data))
    with pytest.raises(AssertionError, match="profiled although cached"):
        cost.estimate(MATMUL, shapes, "bfloat16", "trn2", "simulated")


def test_simulated_profiles_tuned_params_when_tuning_is_cached() -> None:
    shapes = {"rows": 512, "cols": 512}
    first = cost.estimate(VADD, shapes, "bfloat16", "trn1", "simulated")
    (cost_file,) = [p for p in simulated_module.JsonCache(cost.COST_FILE).path.parent.iterdir()
                    if p.name == cost.COST_FILE]
    cost_file.unlink()  # tune.json stays: the estimate re-profiles the cached choice
    cost.clear_memory_cache()
    again = cost.estimate(VADD, shapes, "bfloat16", "trn1", "simulated")
    assert again == first and again.simulated.params == first.simulated.params


def test_errors_name_what_is_wrong() -> None:
    with pytest.raises(CostError, match="unknown op 'convolution'"):
        cost.estimate("convolution", {}, "bfloat16", "trn1")
    with pytest.raises(CostError, match="missing: N"):
        cost.estimate(MATMUL, {"M": 128, "K": 128}, "bfloat16", "trn1")
    with pytest.raises(CostError, match="supports dtypes float32, bfloat16; got int8"):
        cost.estimate(MATMUL, {"M": 128, "K": 128, "N": 128}, "int8", "trn1")
    with pytest.raises(CostError, match="chip 'trn9'"):
        cost.estimate(MATMUL, {"M": 128, "K": 128, "N": 128}, "bfloat16", "trn9")
    with pytest.raises(ValueError):
        cost.estimate(MATMUL, {"M": 128, "K": 128, "N": 128}, "bfloat16", "trn1", "exact")
