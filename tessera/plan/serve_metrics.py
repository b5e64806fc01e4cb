"""The outcome of a serving simulation and its metrics under `vllm bench serve`'s names.

Definitions follow `vllm bench serve` [VBENCH], with each request's clock starting when it
is sent (after any wait for a `--max-concurrency` slot) and the run starting at 0:
- TTFT: send to first token. E2EL: send to last token.
- TPOT: (E2EL - TTFT) / (output tokens - 1), over requests with more than one token.
- ITL: every gap between consecutive tokens of a request (a stall behind another
  request's prefill shows up here, as it does when streaming from a server).
- throughputs divide by the duration, from 0 to the last token; goodput counts the
  requests meeting every SLO (TPOT taken as 0 for one-token requests, as vLLM does).
- `max_output_tokens_per_s` is the busiest whole second of output, and
  `max_concurrent_requests` the most requests in flight at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tessera.plan.serve_types import (
    ImpossibleSloError,
    SchedulerConfig,
    ServeCounters,
    ServeError,
    ServeRequest,
    ServeSlo,
    StepBatch,
    StepCostModel,
)

METRICS = ("ttft", "tpot", "itl", "e2el")


@dataclass(frozen=True, eq=False)
class ServeTimeline:
    """One sample per engine step (all replicas, in time order per replica)."""

    start_s: np.ndarray  # when the step began
    replica: np.ndarray
    step_seqs: np.ndarray  # sequences the step ran
    running_seqs: np.ndarray  # requests admitted (holding KV), incl. ones a prefill hides
    kv_used_frac: np.ndarray  # share of the replica's KV blocks in use
    queued: np.ndarray  # requests waiting on the replica (waiting + holdback queue)


@dataclass(frozen=True, eq=False)
class ServeResult:
    """Every request's times, the per-step timeline and the engines' counters."""

    config: SchedulerConfig
    replicas: int
    load_name: str
    max_concurrency: int | None
    requests: tuple[ServeRequest, ...]
    send_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    replica: np.ndarray
    preemptions: np.ndarray
    token_s: np.ndarray  # every token's time, request after request
    token_offsets: np.ndarray  # request i's tokens are token_s[offsets[i]:offsets[i + 1]]
    timeline: ServeTimeline
    counters: ServeCounters
    cost: StepCostModel = field(repr=False)

    @property
    def input_tokens(self) -> np.ndarray:
        """Prompt tokens of each request."""
        return np.array([r.input_tokens for r in self.requests], dtype=np.int64)

    @property
    def output_tokens(self) -> np.ndarray:
        """Output tokens of each request."""
        return np.diff(self.token_offsets)

    @property
    def duration_s(self) -> float:
        """From the start of the run (0) to the last token."""
        return float(self.finish_s.max())

    @property
    def ttft_s(self) -> np.ndarray:
        """Time to first token of each request."""
        return self.first_token_s - self.send_s

    @property
    def e2el_s(self) -> np.ndarray:
        """End-to-end latency of each request."""
        return self.finish_s - self.send_s

    @property
    def tpot_s(self) -> np.ndarray:
        """Time per output token after the first, of each request with more than one token
        (NaN for the others)."""
        out = self.output_tokens
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(out > 1, (self.e2el_s - self.ttft_s) / (out - 1), np.nan)

    @property
    def itl_s(self) -> np.ndarray:
        """Every inter-token gap of every request."""
        gaps = np.diff(self.token_s)
        inside = np.ones(len(gaps), dtype=bool)
        ends = self.token_offsets[1:-1] - 1  # a gap from one request's last token onwards
        inside[ends[(ends >= 0) & (ends < len(gaps))]] = False
        return gaps[inside]

    def metrics(self, percentiles: Sequence[float] = (99.0,),
                slo: ServeSlo | None = None) -> dict[str, float | int | None]:
        """`vllm bench serve --save-result` keys: duration, counts, throughputs, goodput
        (None without an SLO) and mean/median/std/pNN of TTFT, TPOT, ITL, E2EL in ms."""
        for p in percentiles:
            if not 0 <= p <= 100:
                raise ServeError(f"--metric-percentiles {p}: a percentile is within 0..100")
        dur = self.duration_s
        out = self.output_tokens
        total_in = int(self.input_tokens.sum())
        total_out = int(out.sum())
        n = len(self.requests)
        tpot = self.tpot_s
        series = {"ttft": self.ttft_s, "tpot": tpot[~np.isnan(tpot)], "itl": self.itl_s,
                  "e2el": self.e2el_s}
        goodput = None
        if slo is not None:
            goodput = self.good_requests(slo) / dur
        res: dict[str, float | int | None] = {
            "duration": dur,
            "completed": n,
            "failed": 0,
            "total_input_tokens": total_in,
            "total_output_tokens": total_out,
            "request_throughput": n / dur,
            "request_goodput": goodput,
            "output_throughput": total_out / dur,
            "total_token_throughput": (total_in + total_out) / dur,
            "max_output_tokens_per_s": self._peak_tokens_per_s(),
            "max_concurrent_requests": self._peak_concurrency(),
        }
        for name in METRICS:
            ms = series[name] * 1000.0
            vals = ms if len(ms) else np.zeros(1)  # vLLM reports 0 for an empty series
            res[f"mean_{name}_ms"] = float(np.mean(vals))
            res[f"median_{name}_ms"] = float(np.median(vals))
            res[f"std_{name}_ms"] = float(np.std(vals))
            for p in percentiles:
                word = str(int(p)) if int(p) == p else str(p)
                res[f"p{word}_{name}_ms"] = float(np.percentile(vals, p))
        return res

    def good_requests(self, slo: ServeSlo) -> int:
        """Requests meeting every objective of `slo`; an objective no request could meet
        even alone on an idle replica raises ImpossibleSloError instead of counting 0."""
        check_slo_possible(slo, self.requests, self.cost, self.config)
        ok = np.ones(len(self.requests), dtype=bool)
        limits = slo.as_dict()
        if "ttft" in limits:
            ok &= self.ttft_s * 1000.0 <= limits["ttft"]
        if "tpot" in limits:
            ok &= np.nan_to_num(self.tpot_s, nan=0.0) * 1000.0 <= limits["tpot"]
        if "e2el" in limits:
            ok &= self.e2el_s * 1000.0 <= limits["e2el"]
        return int(ok.sum())

    def _peak_tokens_per_s(self) -> float:
        start = float(self.send_s.min())
        secs = (self.token_s - start).astype(np.int64)
        return float(np.bincount(secs[secs >= 0]).max()) if len(secs) else 0.0

    def _peak_concurrency(self) -> int:
        # half-open [send, finish): a departure at t goes before an arrival at t
        times = np.concatenate([self.send_s, self.finish_s])
        delta = np.concatenate([np.ones(len(self.send_s)), -np.ones(len(self.finish_s))])
        order = np.lexsort((delta, times))
        return int(np.cumsum(delta[order]).max())


def _lone_floors(req: ServeRequest, cost: StepCostModel, cfg: SchedulerConfig,
                 memo: dict[tuple[int, ...], float]) -> tuple[float, float, float]:
    """The fastest TTFT, TPOT and E2EL `req` could have: alone on an idle replica, every
    block of its prefix already cached, each decode step at its shortest context (so a
    lower bound whenever a step costs no less with more tokens, sequences or context)."""

    def price(*key: int) -> float:
        if key not in memo:
            memo[key] = float(cost.step_s(StepBatch(*key)))
        return memo[key]

    bs = cost.block_size
    done = 0
    if cfg.enable_prefix_caching and req.prefix_tokens:
        done = min(req.prefix_tokens // bs, (req.input_tokens - 1) // bs) * bs
    ttft = 0.0
    chunk = cfg.max_num_batched_tokens
    if cfg.long_prefill_token_threshold:
        chunk = min(chunk, cfg.long_prefill_token_threshold)
    while done < req.input_tokens:
        n = min(chunk, req.input_tokens - done)
        done += n
        ttft += price(n, 1, 0, done, 0)
    ctx = req.input_tokens + 1
    tpot = price(0, 0, 1, ctx, ctx) if req.output_tokens > 1 else 0.0
    return ttft, tpot, ttft + (req.output_tokens - 1) * tpot


def check_slo_possible(slo: ServeSlo, requests: Sequence[ServeRequest], cost: StepCostModel,
                       config: SchedulerConfig) -> None:
    """Raise ImpossibleSloError naming the objective when no request of the load could
    meet it even alone on an idle replica."""
    memo: dict[tuple[int, ...], float] = {}
    seen: dict[tuple[int, int, int], tuple[float, float, float]] = {}
    best = [math.inf, math.inf, math.inf]
    who = [-1, -1, -1]
    for i, r in enumerate(requests):
        key = (r.input_tokens, r.output_tokens, r.prefix_tokens)
        if key not in seen:
            seen[key] = _lone_floors(r, cost, config, memo)
        for k, v in enumerate(seen[key]):
            if v < best[k] and not (k == 1 and r.output_tokens <= 1):
                best[k], who[k] = v, i
    for k, name in enumerate(("ttft", "tpot", "e2el")):
        limit = slo.as_dict().get(name)
        if limit is None or who[k] < 0 or limit >= best[k] * 1000.0:
            continue
        r = requests[who[k]]
        raise ImpossibleSloError(
            f"--goodput {name}:{limit:g}: no request can meet it; the fastest {name.upper()} "
            f"of any request is {best[k] * 1000.0:.3g} ms (request {who[k]}: "
            f"{r.input_tokens} prompt tokens, {r.output_tokens} output, alone on an idle "
            "replica)")
