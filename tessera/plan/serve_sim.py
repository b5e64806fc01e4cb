"""Discrete-event simulation of LLM serving on one or more replicas: `simulate`.

    >>> from tessera.plan.serve_sim import simulate
    >>> from tessera.plan.serve_load import random_load
    >>> r = simulate(cost, random_load(1000, 1024, 128, rate_per_s=4.0), SchedulerConfig())
    >>> r.metrics()["mean_ttft_ms"]

Events, in time order (ties: steps ending, then requests arriving, then steps starting, so
that a step starting at t sees everything that arrived or finished at t):
- a request arrives; when `max_concurrency` requests are in flight it waits on the client
  until one finishes [VBENCH]; when sent, the router hands it to the replica with the fewest
  unfinished requests (lowest index on ties);
- a replica's step ends: its tokens come out, finished requests leave (a closed-loop client
  sends its next request at once) and the replica schedules its next step;
- an idle replica that receives a request starts a step at once.

Each replica's steps run back to back while it has work (`serve_engine.Replica`). Step costs
come from the `StepCostModel`, memoised by the step's five numbers across replicas.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from tessera.plan.serve_engine import LiveRequest, Replica, StepLog
from tessera.plan.serve_metrics import ServeResult, ServeTimeline
from tessera.plan.serve_types import (
    SchedulerConfig,
    ServeCounters,
    ServeError,
    ServeLoad,
    StepCostModel,
)

_STEP_END, _ARRIVAL, _STEP_BEGIN = 0, 1, 2


def _check(cost: StepCostModel, load: ServeLoad, config: SchedulerConfig,
           replicas: int) -> None:
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise ServeError(f"--replicas: {replicas!r} is not a positive integer")
    bs, blocks = cost.block_size, cost.kv_blocks
    for name, v in (("block_size", bs), ("kv_blocks", blocks)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ServeError(f"the cost model's {name} {v!r} is not a positive integer")
    # vLLM refuses to start when one request of max_model_len does not fit in the cache
    if blocks * bs < config.max_model_len:
        raise ServeError(f"the KV cache holds {blocks} blocks x {bs} tokens = {blocks * bs} "
                         f"tokens, less than one request of --max-model-len "
                         f"{config.max_model_len}")
    for i, r in enumerate(load.requests):
        if r.input_tokens + r.output_tokens > config.max_model_len:
            raise ServeError(f"{load.name}: request {i} needs {r.input_tokens} prompt + "
                             f"{r.output_tokens} output tokens, more than --max-model-len "
                             f"{config.max_model_len}")


def simulate(cost: StepCostModel, load: ServeLoad, config: SchedulerConfig | None = None,
             replicas: int = 1) -> ServeResult:
    """Serve `load` on `replicas` copies of the model, each scheduled by `config`, and
    return every request's timing, the per-step timeline and counters."""
    config = config or SchedulerConfig()
    _check(cost, load, config, replicas)
    bs = cost.block_size
    reqs = [LiveRequest(i, spec, bs) for i, spec in enumerate(load.requests)]
    memo: dict[tuple[int, int, int, int, int], float] = {}
    log = StepLog()
    engines = [Replica(k, cost, config, memo, log) for k in range(replicas)]
    limit = load.max_concurrency if load.max_concurrency is not None else math.inf
    heap: list[tuple[float, int, int, int]] = []
    seq = 0  # tie-breaker: events of one time and kind in the order they were made
    in_flight = 0
    held: deque[LiveRequest] = deque()  # arrived, waiting on the client for a slot

    def send(r: LiveRequest, t: float) -> None:
        nonlocal in_flight, seq
        in_flight += 1
        r.send_s = t
        eng = engines[0] if replicas == 1 else min(engines, key=lambda e: e.unfinished)
        eng.enqueue(r)
        if not eng.busy:
            eng.busy = True
            seq += 1
            heapq.heappush(heap, (t, _STEP_BEGIN, seq, eng.index))

    heapq.heappush(heap, (reqs[0].arrival_s, _ARRIVAL, 0, 0))
    while heap:
        t, kind, _, x = heapq.heappop(heap)
        if kind == _STEP_END:
            eng = engines[x]
            for _r in eng.end_step(t):
                in_flight -= 1
                if held:
                    send(held.popleft(), t)
            seq += 1
            heapq.heappush(heap, (t, _STEP_BEGIN, seq, x))
        elif kind == _ARRIVAL:
            if x + 1 < len(reqs):  # arrivals are pushed one at a time: a small heap
                heapq.heappush(heap, (reqs[x + 1].arrival_s, _ARRIVAL, x + 1, x + 1))
            if in_flight < limit:
                send(reqs[x], t)
            else:
                held.append(reqs[x])
        else:
            eng = engines[x]
            dt = eng.begin_step(t)
            if dt is None:
                eng.busy = False
            else:
                seq += 1
                heapq.heappush(heap, (t + dt, _STEP_END, seq, x))
    return _result(cost, load, config, replicas, reqs, engines, log, len(memo))


def _result(cost: StepCostModel, load: ServeLoad, config: SchedulerConfig, replicas: int,
            reqs: list[LiveRequest], engines: list[Replica], log: StepLog,
            priced: int) -> ServeResult:
    stuck = [r.idx for r in reqs if r.finish_s < 0]
    if stuck:  # every path above finishes requests; this guards the simulator itself
        raise ServeError(f"{load.name}: {len(stuck)} requests never finished "
                         f"(first: request {stuck[0]})")
    counts = np.fromiter((len(r.times) for r in reqs), dtype=np.int64, count=len(reqs))
    offsets = np.zeros(len(reqs) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    steps = np.fromiter((t for r in reqs for t in r.times), dtype=np.int64,
                        count=int(offsets[-1]))
    tokens = np.array(log.end_s)[steps]
    kv_total = np.array([e.pool.total for e in engines], dtype=np.float64)
    replica_of_step = np.array(log.replica, dtype=np.int64)
    timeline = ServeTimeline(
        start_s=np.array(log.start_s), replica=replica_of_step,
        step_seqs=np.array(log.step_seqs, dtype=np.int64),
        running_seqs=np.array(log.running, dtype=np.int64),
        kv_used_frac=np.array(log.kv_used, dtype=np.float64) / kv_total[replica_of_step],
        queued=np.array(log.queued, dtype=np.int64))
    counters = ServeCounters(
        steps=sum(e.steps for e in engines),
        prefill_steps=sum(e.prefill_steps for e in engines),
        prompt_tokens_computed=sum(e.prompt_tokens for e in engines),
        prefix_hit_tokens=sum(e.hit_tokens for e in engines),
        preemptions=sum(e.preemptions for e in engines),
        priced_steps=priced,
        busy_s=tuple(e.busy_s for e in engines))
    return ServeResult(
        config=config, replicas=replicas, load_name=load.name,
        max_concurrency=load.max_concurrency, requests=load.requests,
        send_s=np.array([r.send_s for r in reqs]),
        first_token_s=tokens[offsets[:-1]],
        finish_s=np.array([r.finish_s for r in reqs]),
        replica=np.array([r.replica for r in reqs], dtype=np.int64),
        preemptions=np.array([r.preemptions for r in reqs], dtype=np.int64),
        token_s=tokens, token_offsets=offsets, timeline=timeline, counters=counters,
        cost=cost)
