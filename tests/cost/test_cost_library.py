"""The cost interface on every registered library kernel: ROOFLINE <= SIMULATED at several
shapes, both fidelities monotonic in size, and tuning never slower than the defaults.

Ops not registered yet are simply absent from `all_kernels()`. Shapes are built from the
kernel's `shape_keys`: size-like keys are scaled 1x, 2x, 4x and structural ones (head
dimension, head counts) stay defn, so every dimension grows or stays the same.
"""

from __future__ import annotations

import pytest

from tessera import cost
from tessera.cost import Fidelity
from tessera.kernels import KernelDef, all_kernels

# base value per shape key; the scaled ones grow with the case index
SCALED = {"rows": 128, "cols": 256, "tokens": 128, "vocab": 512, "dim": 128, "M": 128,
          "K": 128, "N": 128, "m": 128, "k": 128, "n": 128, "seq": 128, "seq_q": 128,
          "seq_kv": 128, "seq_len": 128, "kv_len": 128, "context": 128, "classes": 256,
          "hidden": 256, "d": 256}
FIXED = {"batch": 1, "b": 1, "B": 2, "head_dim": 64, "heads": 2, "q_heads": 2, "n_heads": 2,
         "kv_heads": 1, "n_kv_heads": 1, "groups": 1}
FACTORS = (1, 2, 4)
CHIPS = ("trn1", "trn2")


def _shape_cases(defn: KernelDef) -> list[dict[str, int]]:
    unknown = [k for k in defn.shape_keys if k not in SCALED and k not in FIXED]
    if unknown:
        pytest.skip(f"{defn.name}: no test size for shape keys {unknown}; add them to "
                    "SCALED/FIXED in tests/cost/test_cost_library.py")
    return [{k: SCALED[k] * f if k in SCALED else FIXED[k] for k in defn.shape_keys}
            for f in FACTORS]


def _kernels() -> list[KernelDef]:
    return list(all_kernels())


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))
    cost.clear_memory_cache()
    yield
    cost.clear_memory_cache()


def test_library_is_checked() -> None:
    if not _kernels():
        pytest.skip("no library kernels registered yet")
    assert all(d.shape_keys for d in _kernels())


@pytest.mark.parametrize("defn", _kernels(), ids=lambda d: d.name)
def test_roofline_below_simulated_and_monotonic(defn: KernelDef) -> None:
    dtype = "bfloat16" if "bfloat16" in defn.dtypes else defn.dtypes[0]
    for chip in CHIPS:
        previous = {Fidelity.ROOFLINE: 0.0, Fidelity.SIMULATED: 0.0}
        for shapes in _shape_cases(defn):
            roof = cost.estimate(defn, shapes, dtype, chip)
            simu = cost.estimate(defn, shapes, dtype, chip, Fidelity.SIMULATED)
            assert roof.time_s <= simu.time_s, (chip, shapes, roof, simu)
            for e in (roof, simu):
                assert e.time_s >= previous[e.fidelity], (chip, shapes, e)
                previous[e.fidelity] = e.time_s
            assert simu.hbm_bytes == roof.hbm_bytes > 0


@pytest.mark.parametrize("defn", _kernels(), ids=lambda d: d.name)
def test_tuned_estimate_never_slower_than_default(defn: KernelDef) -> None:
    shapes = _shape_cases(defn)[1]
    dtype = "bfloat16" if "bfloat16" in defn.dtypes else defn.dtypes[0]
    simu = cost.estimate(defn, shapes, dtype, "trn2", Fidelity.SIMULATED)
    assert simu.simulated is not None
    assert simu.simulated.default_time_s is None or simu.time_s <= simu.simulated.default_time_s
    assert cost.estimate(defn, shapes, dtype, "trn2").time_s <= simu.time_s
    assert set(simu.simulated.params) >= set(defn.tunables)
