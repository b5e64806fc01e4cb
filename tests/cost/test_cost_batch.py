"""`estimate_many` / `tune_missing`: the untuned shapes tuned in worker processes give the
estimates one-by-one calls give, and land in the shared cost cache."""

from __future__ import annotations

import pytest
import torch

from tessera import cost
from tessera.cost.batch import EstimateRequest, estimate_many, tune_missing

REQUESTS = [EstimateRequest("matmul", {"M": 256, "K": 384, "N": 640}, "bfloat16"),
            EstimateRequest("rmsnorm", {"rows": 384, "cols": 640}, "bfloat16"),
            EstimateRequest("swiglu", {"rows": 384, "cols": 640}, "float32"),
            EstimateRequest("matmul", {"M": 256, "K": 384, "N": 640}, "bfloat16")]  # again


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))
    cost.clear_memory_cache()
    yield
    cost.clear_memory_cache()


def test_a_pool_gives_the_one_by_one_estimates(tmp_path, monkeypatch) -> None:
    steps = []
    pooled = estimate_many(REQUESTS, "trn2", "simulated", workers=2, progress=steps.append)
    # three distinct shapes were missing; each finished once
    assert sorted(s.done for s in steps) == [1, 2, 3] and {s.total for s in steps} == {3}
    assert tune_missing(REQUESTS, "trn2", workers=2) == 0  # now all in the cache
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "other"))
    cost.clear_memory_cache()
    alone = [cost.estimate(r.op, r.shapes, r.dtype, "trn2", "simulated") for r in REQUESTS]
    assert [e.time_s for e in pooled] == [e.time_s for e in alone]
    assert [e.simulated.params for e in pooled] == [e.simulated.params for e in alone]
    assert pooled[0] == pooled[3]


def test_a_bad_request_is_a_cost_error_before_any_tuning() -> None:
    with pytest.raises(cost.CostError, match="unknown op 'nope'"):
        tune_missing([*REQUESTS, EstimateRequest("nope", {}, "bfloat16")], "trn2", workers=2)
    with pytest.raises(cost.CostError, match="chip 'trn9'"):
        estimate_many(REQUESTS, "trn9", "simulated", workers=2)


def test_one_worker_or_one_missing_shape_tunes_nothing_in_a_pool() -> None:
    assert tune_missing(REQUESTS, "trn2", workers=1) == 0
    assert tune_missing(REQUESTS[:1], "trn2", workers=4) == 0
    roofline = estimate_many(REQUESTS, "trn2", "roofline", workers=4)
    assert all(e.fidelity is cost.Fidelity.ROOFLINE for e in roofline)


def test_a_compile_tunes_its_new_shapes_in_parallel(tmp_path, monkeypatch) -> None:
    import tessera

    model = torch.nn.Sequential(torch.nn.Linear(96, 160), torch.nn.SiLU(),
                                torch.nn.Linear(160, 96))
    x = torch.randn(40, 96)
    steps = []
    pooled = tessera.compile(model, (x,), chip="trn1", cache=False, workers=2,
                             progress=steps.append)
    assert steps and all(hasattr(s, "total") for s in steps)
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "serial"))
    cost.clear_memory_cache()
    serial = tessera.compile(model, (x,), chip="trn1", cache=False, workers=1)
    assert pooled.profile.total_s == serial.profile.total_s
