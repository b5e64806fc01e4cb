"""The Ray executor of `estimate_many` / `tune_missing`: a private local Ray instance gives
the estimates of one-by-one calls and of the local pool, only the parent writes the cost
cache, and a bad address or a missing `ray` is one line, in seconds.

Ray 2.60 no longer has `local_mode`, so these run a real local instance (`local`, 2 CPUs:
about 4 s to start and stop); Tessera starts and stops it per batch, and the fixture below
fails a test that leaves one running.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from tessera import cost
from tessera.cost import cache as cost_cache
from tessera.cost import ray_tasks
from tessera.cost.batch import EstimateRequest, estimate_many, tune_missing
from tessera.cost.executor import (
    RAY_INSTALL_HINT,
    BatchExecutor,
    ExecutorKind,
    host_port,
    resolve_executor,
)

REQUESTS = [EstimateRequest("matmul", {"M": 256, "K": 384, "N": 640}, "bfloat16"),
            EstimateRequest("rmsnorm", {"rows": 384, "cols": 640}, "bfloat16"),
            EstimateRequest("swiglu", {"rows": 384, "cols": 640}, "float32"),
            EstimateRequest("matmul", {"M": 256, "K": 384, "N": 640}, "bfloat16")]  # again
LOCAL_RAY = BatchExecutor.ray("local", workers=2)


@pytest.fixture(autouse=True)
def _empty_cache_and_no_ray_left(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))
    cost.clear_memory_cache()
    yield
    cost.clear_memory_cache()
    ray = sys.modules.get("ray")  # None while a test hides it
    left = ray is not None and ray.is_initialized()
    if left:
        ray.shutdown()  # never into the next test, whatever happened in this one
    assert not left, "the batch left its Ray instance running"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_ray_gives_the_estimates_of_one_by_one_calls_and_of_the_pool(tmp_path, monkeypatch
                                                                      ) -> None:
    ray = pytest.importorskip("ray")
    writes = []
    put = cost_cache.JsonCache.put

    def spy(self, key, fingerprint, payload):  # noqa: ANN001, ANN202 - a JsonCache.put
        writes.append((self.path.name, os.getpid()))
        put(self, key, fingerprint, payload)

    monkeypatch.setattr(cost_cache.JsonCache, "put", spy)
    steps = []
    on_ray = estimate_many(REQUESTS, "trn2", "simulated", executor=LOCAL_RAY,
                           progress=steps.append)
    assert sorted(s.done for s in steps) == [1, 2, 3] and {s.total for s in steps} == {3}
    # one entry per distinct shape, each written once, by this process; the tasks wrote
    # nothing (no tune.json), and Ray is stopped again
    assert writes == [("cost.json", os.getpid())] * 3
    assert sorted(os.listdir(tmp_path / "cache")) == ["cost.json"]
    assert not ray.is_initialized()
    assert tune_missing(REQUESTS, "trn2", executor=LOCAL_RAY) == 0  # cached: no Ray start
    assert not ray.is_initialized()

    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "pool"))
    cost.clear_memory_cache()
    pooled = estimate_many(REQUESTS, "trn2", "simulated", workers=2)
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "alone"))
    cost.clear_memory_cache()
    alone = [cost.estimate(r.op, r.shapes, r.dtype, "trn2", "simulated") for r in REQUESTS]
    for batch in (on_ray, pooled):
        assert [e.time_s for e in batch] == [e.time_s for e in alone]
        assert [e.simulated.params for e in batch] == [e.simulated.params for e in alone]
    assert on_ray[0] == on_ray[3]


def test_a_bad_ray_address_is_one_line_before_any_tuning() -> None:
    for address in ("nowhere", "ray://head", "head:0", "http://head:80", "head:port"):
        with pytest.raises(cost.CostError, match="expected local, auto, ray://HOST:PORT"):
            BatchExecutor.ray(address)
    ray = pytest.importorskip("ray")
    port = _closed_port()
    start = time.perf_counter()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(cost.CostError, match="cannot connect") as err:
            tune_missing(REQUESTS, "trn2", executor=BatchExecutor.ray(address))
        assert "\n" not in str(err.value) and address in str(err.value)
    # Ray alone would wait 30 s (Ray Client) or minutes (GCS) and then exit the process
    assert time.perf_counter() - start < 5 and not ray.is_initialized()


def test_without_ray_installed_the_message_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    executor = BatchExecutor.ray("local")  # choosing Ray does not import it
    with pytest.raises(cost.CostError) as err:
        tune_missing(REQUESTS, "trn2", executor=executor)
    assert RAY_INSTALL_HINT in str(err.value) and "\n" not in str(err.value)
    assert "pip install 'tessera[ray]'" in str(err.value)
    with pytest.raises(cost.CostError, match="tessera\\[ray\\]"):
        executor.check()
    # the local pool, ROOFLINE and fully cached batches never need it
    assert estimate_many(REQUESTS, "trn2", "roofline", executor=executor)


def test_executor_choices() -> None:
    assert resolve_executor(None, None) == BatchExecutor.local()
    assert resolve_executor(None, 0) == BatchExecutor(ExecutorKind.LOCAL, 1)  # as before
    assert resolve_executor(LOCAL_RAY, None) is LOCAL_RAY
    assert host_port("ray://[::1]:10001") == ("::1", 10001)
    assert host_port("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert host_port("auto") is None and host_port("local") is None
    mistakes = {"workers=0": lambda: BatchExecutor.local(0),
                "needs an address": lambda: BatchExecutor(ExecutorKind.RAY),
                "not a LOCAL one": lambda: BatchExecutor(ExecutorKind.LOCAL, 2, "auto"),
                "not both": lambda: resolve_executor(LOCAL_RAY, 2)}
    for message, make in mistakes.items():
        with pytest.raises(cost.CostError, match=message):
            make()
    BatchExecutor.local().check()  # a local pool can always run


def test_a_compile_refuses_workers_and_an_executor_together() -> None:
    import torch

    import tessera

    with pytest.raises(cost.CostError, match="not both"):
        tessera.compile(torch.nn.Linear(8, 8), (torch.randn(2, 8),), workers=2,
                        executor=LOCAL_RAY)


def test_a_worker_with_another_model_is_refused(monkeypatch) -> None:
    # a cluster node with another Tessera returns entries under another fingerprint: they
    # must not land in this machine's cache as if they were its own
    def foreign(missing, chip, plan):  # noqa: ANN001, ANN202 - as batch._outcomes
        yield 0, ("0123456789abcdef", {"op": "matmul"})

    monkeypatch.setattr("tessera.cost.batch._outcomes", foreign)
    with pytest.raises(cost.CostError, match="install the same Tessera on every node"):
        tune_missing(REQUESTS, "trn2", workers=2)
    assert not (cost.cache_dir() / cost.COST_FILE).exists()


def test_ray_failures_are_one_line() -> None:
    assert ray_tasks._first_line(RuntimeError("lost node\n  traceback ...")) == "lost node"
    assert ray_tasks._first_line(TimeoutError()) == "TimeoutError"
