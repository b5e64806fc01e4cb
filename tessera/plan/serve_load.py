"""Synthetic loads for the serving simulation, the way `vllm bench serve` makes them.

Arrivals [VBENCH]: at `--request-rate` r with `--burstiness` b the gaps between requests
are drawn from a gamma distribution of shape b and scale 1 / (r b) (b = 1: a Poisson
process; b < 1 burstier, b > 1 more even), summed, then rescaled so the last request
arrives at exactly n / r (vLLM does this to steady throughput across seeds). An infinite
rate sends everything at 0; with `max_concurrency` N that is a closed loop of N clients.

Lengths: vLLM's random dataset [VDATA] draws each prompt length uniformly from the
integers [floor(L (1 - r)), ceil(L (1 + r))] and each output length likewise (at least
1), with `--random-range-ratio` r (0: fixed lengths), and puts a prefix of
`--random-prefix-len` tokens shared by every request in front of each prompt. No
tokenizer is involved, so no special tokens are subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tessera.plan.serve_types import ServeError, ServeLoad, ServeRequest


def arrival_times_s(n: int, rate_per_s: float = math.inf, burstiness: float = 1.0,
                    seed: int = 0) -> np.ndarray:
    """When each of `n` requests arrives (s from the start), as `vllm bench serve` spaces
    them."""
    if n < 1:
        raise ServeError(f"--num-prompts: {n} is not a positive integer")
    if not rate_per_s > 0:
        raise ServeError(f"--request-rate: {rate_per_s!r} is not a positive rate")
    if not burstiness > 0:
        raise ServeError(f"--burstiness: {burstiness!r} is not positive")
    if math.isinf(rate_per_s):
        return np.zeros(n)
    if math.isinf(burstiness):
        return np.arange(1, n + 1) / rate_per_s
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate_per_s * burstiness), size=n)
    times = np.cumsum(gaps)
    return times * (n / rate_per_s / times[-1])


def random_lengths(n: int, input_len: int = 1024, output_len: int = 128,
                   range_ratio: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output lengths of vLLM's random dataset (without its prefix)."""
    if not 0.0 <= range_ratio < 1.0:
        raise ServeError(f"--random-range-ratio: {range_ratio} is not within [0, 1)")
    for name, v in (("input_len", input_len), ("output_len", output_len)):
        if not isinstance(v, int) or v < 1:
            raise ServeError(f"--random-{name.replace('_', '-')}: {v!r} is not a positive "
                             "integer")
    lo_in = max(1, math.floor(input_len * (1 - range_ratio)))
    hi_in = math.ceil(input_len * (1 + range_ratio))
    lo_out = max(1, math.floor(output_len * (1 - range_ratio)))
    hi_out = max(1, math.ceil(output_len * (1 + range_ratio)))
    rng = np.random.default_rng(seed)
    ins = rng.integers(lo_in, hi_in + 1, size=n)
    outs = rng.integers(lo_out, hi_out + 1, size=n)
    return ins, outs


def random_load(num_prompts: int, input_len: int = 1024, output_len: int = 128, *,
                range_ratio: float = 0.0, prefix_len: int = 0,
                rate_per_s: float = math.inf, burstiness: float = 1.0,
                max_concurrency: int | None = None, seed: int = 0) -> ServeLoad:
    """`vllm bench serve --dataset-name random` with its length, prefix and arrival
    options. `input_len` is the drawn part; each prompt is `prefix_len` tokens longer."""
    if prefix_len < 0:
        raise ServeError(f"--random-prefix-len: {prefix_len} is negative")
    ins, outs = random_lengths(num_prompts, input_len, output_len, range_ratio, seed)
    times = arrival_times_s(num_prompts, rate_per_s, burstiness, seed)
    reqs = tuple(ServeRequest(float(t), int(i) + prefix_len, int(o),
                              prefix_id=0 if prefix_len else -1, prefix_tokens=prefix_len)
                 for t, i, o in zip(times, ins, outs, strict=True))
    return ServeLoad(reqs, max_concurrency, name=_name("random", rate_per_s, max_concurrency))


def closed_loop_load(num_prompts: int, concurrency: int, input_len: int = 1024,
                     output_len: int = 128, *, range_ratio: float = 0.0, prefix_len: int = 0,
                     seed: int = 0) -> ServeLoad:
    """`concurrency` clients, each sending its next request as soon as its last one
    finishes (`--request-rate inf --max-concurrency N`); 1 is a synchronous run."""
    return random_load(num_prompts, input_len, output_len, range_ratio=range_ratio,
                       prefix_len=prefix_len, max_concurrency=concurrency, seed=seed)


def with_arrivals(requests: Sequence[ServeRequest], rate_per_s: float = math.inf,
                  burstiness: float = 1.0, max_concurrency: int | None = None,
                  seed: int = 0, name: str = "load") -> ServeLoad:
    """The requests of a dataset (ShareGPT, say), re-timed by `vllm bench serve`'s arrival
    process."""
    times = arrival_times_s(len(requests), rate_per_s, burstiness, seed)
    reqs = tuple(replace(r, arrival_s=float(t)) for r, t in zip(requests, times, strict=True))
    return ServeLoad(reqs, max_concurrency, name=_name(name, rate_per_s, max_concurrency))


def _name(base: str, rate_per_s: float, concurrency: int | None) -> str:
    rate = "inf" if math.isinf(rate_per_s) else f"{rate_per_s:g}"
    return f"{base} rate={rate}" + (f" concurrency={concurrency}" if concurrency else "")
