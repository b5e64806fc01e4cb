"""Serving simulation, metrics: the keys `vllm bench serve --save-result` writes, their
definitions (TPOT from E2EL and TTFT, ITL gaps within requests), goodput under SLOs, an
impossible SLO said out loud, and the timeline PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tessera.plan.serve_linear import LinearStepCost
from tessera.plan.serve_load import random_load
from tessera.plan.serve_sim import simulate
from tessera.plan.serve_types import (
    ImpossibleSloError,
    SchedulerConfig,
    SchedulerKind,
    ServeError,
    ServeLoad,
    ServeRequest,
    ServeSlo,
)
from tessera.report.serve_png import serve_png

# the keys of `vllm bench serve`'s result (vllm/benchmarks/serve.py) for the default
# --metric-percentiles 99 and --percentile-metrics ttft,tpot,itl,e2el
VLLM_KEYS = {"duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
             "request_throughput", "request_goodput", "output_throughput",
             "total_token_throughput", "max_output_tokens_per_s", "max_concurrent_requests"} | {
    f"{stat}_{m}_ms" for stat in ("mean", "median", "std", "p99")
    for m in ("ttft", "tpot", "itl", "e2el")}


@pytest.fixture(scope="module")
def busy():
    load = random_load(300, 400, 60, range_ratio=0.5, rate_per_s=8.0, seed=4)
    return simulate(LinearStepCost(), load, SchedulerConfig(kind=SchedulerKind.VLLM,
                                                            max_num_seqs=16))


def test_serve_metric_names_match_vllm_bench_serve(busy) -> None:
    m = busy.metrics()
    assert set(m) == VLLM_KEYS
    assert m["request_goodput"] is None  # as vLLM: None without --goodput
    json.dumps(m)  # plain numbers, ready for --json
    extra = busy.metrics(percentiles=(50, 90, 99.9))
    assert {"p50_ttft_ms", "p90_itl_ms", "p99.9_e2el_ms"} <= set(extra)
    with pytest.raises(ServeError, match="--metric-percentiles 101"):
        busy.metrics(percentiles=(101,))


def test_serve_metrics_follow_their_definitions(busy) -> None:
    m = busy.metrics()
    out = busy.output_tokens
    assert m["total_output_tokens"] == out.sum() == sum(r.output_tokens
                                                        for r in busy.requests)
    assert m["request_throughput"] == pytest.approx(300 / busy.finish_s.max())
    tpot = (busy.e2el_s - busy.ttft_s) / (out - 1)
    assert m["mean_tpot_ms"] == pytest.approx(1e3 * tpot.mean())
    assert len(busy.itl_s) == (out - 1).sum()  # gaps inside requests only
    assert (busy.itl_s > 0).all()
    # the mean gap of a request is its TPOT: ITLs sum to E2EL - TTFT request by request
    assert busy.itl_s.sum() == pytest.approx((busy.e2el_s - busy.ttft_s).sum())
    assert m["p99_ttft_ms"] == pytest.approx(np.percentile(busy.ttft_s, 99) * 1e3)
    assert m["max_concurrent_requests"] <= 300


def test_serve_goodput_counts_requests_meeting_every_slo(busy) -> None:
    m = busy.metrics(slo=ServeSlo(ttft_ms=float(np.median(busy.ttft_s)) * 1e3))
    assert m["request_goodput"] == pytest.approx(
        (busy.ttft_s <= np.median(busy.ttft_s)).sum() / busy.duration_s)
    lax = busy.metrics(slo=ServeSlo(ttft_ms=1e9, tpot_ms=1e9, e2el_ms=1e9))
    assert lax["request_goodput"] == pytest.approx(lax["request_throughput"])
    both = ServeSlo.parse(["ttft:500", "tpot:30"])
    good = busy.good_requests(both)
    tpot_ms = (busy.e2el_s - busy.ttft_s) / (busy.output_tokens - 1) * 1e3
    assert good == int(((busy.ttft_s * 1e3 <= 500) & (tpot_ms <= 30)).sum())


def test_serve_impossible_slo_says_so(busy) -> None:
    # the fastest decode step is 10.05 ms: a 5 ms TPOT cannot be met by anyone
    with pytest.raises(ImpossibleSloError, match=r"--goodput tpot:5: no request can meet it; "
                                                 r"the fastest TPOT .* is 10\.1 ms"):
        busy.metrics(slo=ServeSlo(tpot_ms=5))
    with pytest.raises(ImpossibleSloError, match="--goodput ttft:1: no request"):
        busy.good_requests(ServeSlo(ttft_ms=1, tpot_ms=100))
    # a hard SLO that some request could meet alone is not impossible, just unmet
    assert busy.metrics(slo=ServeSlo(ttft_ms=10 + 0.08 * 200 + 1))["request_goodput"] >= 0


def test_serve_slo_parsing_rejects_bad_words() -> None:
    assert ServeSlo.parse(["e2el:900"]) == ServeSlo(e2el_ms=900)
    with pytest.raises(ServeError, match="--goodput 'latency:5': expected NAME:MS"):
        ServeSlo.parse(["latency:5"])
    with pytest.raises(ServeError, match="--goodput ttft:-3.0: an SLO must be a positive number"):
        ServeSlo.parse(["ttft:-3"])
    with pytest.raises(ServeError, match="needs at least one"):
        ServeSlo()


def test_serve_one_token_requests_have_no_tpot_or_itl() -> None:
    load = ServeLoad(tuple(ServeRequest(0.0, 50, 1) for _ in range(3)))
    m = simulate(LinearStepCost(), load).metrics(slo=ServeSlo(tpot_ms=1))
    assert m["mean_tpot_ms"] == 0 and m["mean_itl_ms"] == 0  # vLLM reports 0 when empty
    assert m["request_goodput"] == pytest.approx(m["request_throughput"])  # TPOT taken as 0


def test_serve_png_plots_the_timeline(busy, tmp_path: Path) -> None:
    out = serve_png(busy, tmp_path / "serve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    tl = busy.timeline
    assert len(tl.start_s) == busy.counters.steps
    assert (tl.running_seqs <= 16).all() and (tl.kv_used_frac <= 1).all()
    two = simulate(LinearStepCost(), random_load(40, 100, 10, rate_per_s=50.0),
                   SchedulerConfig(), replicas=2)
    assert serve_png(two, tmp_path / "two.png").stat().st_size > 10_000
