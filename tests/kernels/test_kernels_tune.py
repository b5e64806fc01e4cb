"""`tessera.kernels.tune`: the search and skipped configurations (the disk cache around it is
`tessera.cost.tune`, tested in tests/cost)."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pytest

from tessera import nki, sim
from tessera.kernels import KernelDef, Op, tune
from tessera.nki import isa as nisa
from tessera.nki import language as nl
from tessera.nki.dtypes import to_dtype

tune_module = sys.modules["tessera.kernels.tune"]  # `tessera.kernels.tune` is the function


@nki.jit
def vadd(a, b, rows_per_tile: int = 32, cols_per_tile: int = 256):
    """out = a + b, in tiles of rows_per_tile x cols_per_tile (256 rows breaks pmax)."""
    rows, cols = a.shape
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    for r in range(0, rows, rows_per_tile):
        p = min(rows_per_tile, rows - r)
        for c in range(0, cols, cols_per_tile):
            f = min(cols_per_tile, cols - c)
            ta = nl.ndarray((p, f), a.dtype, buffer=nl.sbuf)
            tb = nl.ndarray((p, f), a.dtype, buffer=nl.sbuf)
            nisa.dma_copy(ta, a[r:r + p, c:c + f])
            nisa.dma_copy(tb, b[r:r + p, c:c + f])
            nisa.tensor_tensor(tb, ta, tb, op=nl.add)
            nisa.dma_copy(out[r:r + p, c:c + f], tb)
    return out


def _inputs(shapes, dtype, rng):
    shape = (shapes["rows"], shapes["cols"])
    storage = to_dtype(dtype).storage
    return tuple(rng.standard_normal(shape).astype(np.float32).astype(storage) for _ in range(2))


VADD = KernelDef(
    op=Op.RESIDUAL_ADD, name="test_vadd", kernel=vadd, shape_keys=("rows", "cols"),
    make_inputs=_inputs, reference=lambda a, b, **_: a.astype(np.float32) + b,
    flops=lambda s: s["rows"] * s["cols"],
    hbm_bytes=lambda s, itemsize: 3 * s["rows"] * s["cols"] * itemsize,
    tunables={"rows_per_tile": (32, 64, 128, 256), "cols_per_tile": (256, 1024)},
    defaults={"rows_per_tile": 32, "cols_per_tile": 256})
SHAPES = {"rows": 512, "cols": 1024}


def _time(params: dict, chip: str = "trn1", shapes=SHAPES) -> float:
    specs = [nki.TensorSpec((shapes["rows"], shapes["cols"]), nl.bfloat16)] * 2
    return sim.profile(functools.partial(vadd.fn, **params), *specs, chip=chip,
                       symbolic=True).total_s


def test_test_kernel_matches_numpy() -> None:
    a, b = _inputs({"rows": 130, "cols": 300}, nl.float32, np.random.default_rng(1))
    out = nki.simulate(vadd)(a, b, rows_per_tile=64, cols_per_tile=256)
    np.testing.assert_allclose(out, a + b, rtol=0, atol=0)


@pytest.mark.parametrize("chip", ["trn1", "trn2"])
def test_tune_beats_default_and_times_are_real(chip: str) -> None:
    result = tune(VADD, SHAPES, "bfloat16", chip)
    assert result.default_time_s == pytest.approx(_time(dict(VADD.defaults), chip))
    # 32-row tiles use a quarter of the DMA engines: the search must find wider tiles
    assert result.time_s < 0.8 * result.default_time_s
    assert result.params["rows_per_tile"] >= 64
    # the reported time is the profile of the reported parameters (kwargs reached the kernel)
    assert result.time_s == pytest.approx(_time(dict(result.params), chip))
    assert result.speedup == pytest.approx(result.default_time_s / result.time_s)
    # 4 x 2 configurations, the 256-row ones break the 128-partition limit
    assert result.evaluated == 8 and result.skipped == 2
    assert all("PartitionError" in r for r in result.skip_reasons)
    assert result.profile is not None and result.profile.total_s == result.time_s


def test_coordinate_descent_when_space_is_large(monkeypatch) -> None:
    monkeypatch.setattr(tune_module, "EXHAUSTIVE_LIMIT", 4)
    cols = (128, 256, 512, 1024)
    wide = dataclasses.replace(VADD, tunables={"rows_per_tile": (32, 64, 128),
                                               "cols_per_tile": cols})
    result = tune(wide, SHAPES, "bfloat16", "trn1")
    assert result.evaluated < 12  # fewer than the whole product
    best = min(_time({"rows_per_tile": r, "cols_per_tile": c})
               for r in (32, 64, 128) for c in cols)
    assert result.time_s <= result.default_time_s
    # the two block sizes act nearly independently here: descent finds the optimum
    assert result.time_s == pytest.approx(best)


def test_failing_default_and_no_runnable_configuration() -> None:
    wide = dataclasses.replace(VADD, name="test_vadd_wide",
                               defaults={"rows_per_tile": 256, "cols_per_tile": 256})
    result = tune(wide, SHAPES, "bfloat16", "trn1")
    assert result.default_time_s is None and result.speedup == 1.0
    assert result.params["rows_per_tile"] <= 128
    broken = dataclasses.replace(VADD, name="test_vadd_broken",
                                 tunables={"rows_per_tile": (256, 512)},
                                 defaults={"rows_per_tile": 256, "cols_per_tile": 256})
    with pytest.raises(tune_module.TuneError, match="none of 2 configurations ran"):
        tune(broken, SHAPES, "bfloat16", "trn1")


def test_no_tunables_and_shape_checks() -> None:
    fixed = dataclasses.replace(VADD, name="test_vadd_fixed", tunables={})
    result = tune(fixed, SHAPES, "float32", "trn1")
    assert result.evaluated == 1 and result.params == VADD.defaults
    assert result.time_s == result.default_time_s
    with pytest.raises(KeyError, match="missing: cols"):
        tune(VADD, {"rows": 128}, "bfloat16", "trn1")
    with pytest.raises(ValueError, match="positive integers"):
        tune(VADD, {"rows": 0, "cols": 8}, "bfloat16", "trn1")


@nki.jit
def vadd_auto(a, b, rows_per_tile=None):
    """vadd whose block size defaults to None: the kernel picks 128 rows itself."""
    return vadd.fn(a, b, rows_per_tile=rows_per_tile or 128, cols_per_tile=1024)


def test_none_default_means_kernel_choice() -> None:
    auto = dataclasses.replace(VADD, name="test_vadd_auto", kernel=vadd_auto,
                               tunables={"rows_per_tile": (32, 64)}, defaults={})
    first = tune(auto, SHAPES, "bfloat16", "trn1")
    # None (the kernel's own 128-row choice) is a candidate and wins over 32/64 rows
    assert first.evaluated == 3 and first.params == {"rows_per_tile": None}
    assert first.time_s == pytest.approx(_time({"rows_per_tile": 128, "cols_per_tile": 1024}))
    assert not first.from_cache
