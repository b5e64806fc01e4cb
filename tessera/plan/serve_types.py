"""The vocabulary of the serving simulation (`serve_sim.simulate`): what one engine step runs
(`StepBatch`), what prices it (`StepCostModel`), the scheduler's options
(`SchedulerConfig`), the requests (`ServeRequest`, `ServeLoad`) and the service-level
objectives goodput is counted against (`ServeSlo`).

Sources, cited by tag in the modules of the simulation:
[NSCHED] AWS Neuron docs, vLLM Neuron "Scheduler Design"
    (vllm-neuron/docs/design/vllm/neuron-scheduler): holdback queue, admission control,
    prefill/decode separation, one prefill per step, KV-cache admission, no preemption.
[NPREFIX] AWS Neuron docs, vLLM Neuron "Prefill Processing" (design/vllm/prefix-caching):
    segmented (chunked) prefill and block-aligned prefix-cache hits.
[NFEAT] AWS Neuron docs, "How to use vLLM Neuron features" (guides/features-guide):
    prefill and decode never share a batch; prefix caching on by default.
[NBLOCK] AWS Neuron docs, vLLM Neuron "Padding and Batching with Block KV": blocks are
    allocated for real tokens only (padding is the cost model's business).
[V1SCHED] vLLM `vllm/v1/core/sched/scheduler.py`: running requests first under a token
    budget, then waiting ones; on a failed block allocation the last running request is
    preempted (recomputed later) and put at the front of the waiting queue.
[VBENCH] vLLM `vllm/benchmarks/serve.py` (`vllm bench serve`): metric names and
    definitions, arrival process (`--request-rate`, `--burstiness`), goodput.
[VDATA] vLLM `vllm/benchmarks/datasets/`: the random and ShareGPT datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from tessera.plan.errors import PlanError


class ServeError(PlanError):
    """A serving simulation cannot run as asked (bad option, request or trace)."""


class TraceError(ServeError):
    """A trace or dataset file has a bad row; the message names the file, line and field."""


class ImpossibleSloError(ServeError):
    """An SLO no request can meet, even alone on an idle replica."""


@dataclass(frozen=True)
class StepBatch:
    """What one engine step runs: chunks of prompts being prefilled and sequences decoding."""

    prefill_tokens: int  # new prompt tokens computed this step (sum over prefilling seqs)
    prefill_seqs: int  # sequences with a prefill chunk this step
    decode_seqs: int  # sequences generating one token this step
    max_context_tokens: int  # longest context (cached + new) among the step's sequences
    total_context_tokens: int  # sum of contexts of the decoding sequences (KV read per step)


@runtime_checkable
class StepCostModel(Protocol):
    """Prices one engine step; graphs, buckets and padding are the model's business."""

    def step_s(self, batch: StepBatch) -> float:
        """Seconds for one engine step."""
        ...

    @property
    def kv_blocks(self) -> int:
        """KV-cache blocks available per replica."""
        ...

    @property
    def block_size(self) -> int:
        """Tokens per KV block."""
        ...


class SchedulerKind(Enum):
    """Which scheduler runs each replica."""

    NEURON = "neuron"  # vLLM's scheduler as the Neuron plugin wraps it [NSCHED]
    VLLM = "vllm"  # upstream vLLM v1: mixed prefill+decode batches, preemption [V1SCHED]
    STATIC = "static"  # a batch runs to completion before the next is admitted


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ServeError(f"--{name.replace('_', '-')}: {value!r} is not a positive integer")


@dataclass(frozen=True)
class SchedulerConfig:
    """The engine options of `vllm serve` that shape scheduling (same names, same meaning)."""

    kind: SchedulerKind = SchedulerKind.NEURON
    max_num_seqs: int = 8  # requests running at once (decode batch limit)
    max_num_batched_tokens: int = 4096  # token budget of one step (prefill chunk size)
    max_model_len: int = 4096  # prompt + output tokens of one request, at most
    enable_prefix_caching: bool = True  # on by default upstream and on Neuron [NFEAT]
    enable_chunked_prefill: bool = True  # Neuron always segments long prompts [NFEAT]
    long_prefill_token_threshold: int = 0  # vLLM: cap on one request's chunk (0 = none)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, SchedulerKind):
            raise ServeError(f"scheduler kind {self.kind!r} is not one of "
                             f"{[k.value for k in SchedulerKind]}")
        for name in ("max_num_seqs", "max_num_batched_tokens", "max_model_len"):
            _positive_int(name, getattr(self, name))
        if self.long_prefill_token_threshold < 0:
            raise ServeError("--long-prefill-token-threshold: "
                             f"{self.long_prefill_token_threshold} is negative")
        # vLLM refuses both at start-up: every running request must be able to decode in one
        # step, and without chunking a whole prompt must fit in one step
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ServeError(f"--max-num-batched-tokens {self.max_num_batched_tokens} is "
                             f"smaller than --max-num-seqs {self.max_num_seqs}")
        if not self.enable_chunked_prefill and self.max_num_batched_tokens < self.max_model_len:
            raise ServeError(f"--max-num-batched-tokens {self.max_num_batched_tokens} is "
                             f"smaller than --max-model-len {self.max_model_len} and chunked "
                             "prefill is off: long prompts could never be scheduled")
        if self.kind is SchedulerKind.NEURON and not self.enable_chunked_prefill:
            raise ServeError("the Neuron scheduler always segments long prompts; "
                             "--no-enable-chunked-prefill applies to the vllm scheduler only")


@dataclass(frozen=True)
class ServeRequest:
    """One request: when it arrives, its prompt and output lengths, and the shared prefix
    (system prompt, few-shot examples) it starts with, if any.

    Requests with the same `prefix_id` share their first `prefix_tokens` tokens; prefix
    caching can reuse the KV of those tokens' full blocks."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix_id: int = -1  # -1: no shared prefix
    prefix_tokens: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.arrival_s) or self.arrival_s < 0:
            raise ServeError(f"request arrival {self.arrival_s!r} s is not a time >= 0")
        _positive_int("input_tokens", self.input_tokens)
        _positive_int("output_tokens", self.output_tokens)
        if not 0 <= self.prefix_tokens <= self.input_tokens:
            raise ServeError(f"request prefix of {self.prefix_tokens} tokens is not within its "
                             f"{self.input_tokens}-token prompt")
        if self.prefix_tokens and self.prefix_id < 0:
            raise ServeError("a request with prefix tokens needs a prefix id >= 0")


@dataclass(frozen=True)
class ServeLoad:
    """The requests of one run, in arrival order, and how many may be in flight at once.

    `max_concurrency` is `vllm bench serve --max-concurrency`: a request that arrives while
    that many are in flight waits on the client until one finishes, and its latencies count
    from when it is sent. All arriving at 0 with a limit N is a closed loop of N clients,
    each sending its next request when its last one finishes (N = 1 runs them one by one)."""

    requests: tuple[ServeRequest, ...]
    max_concurrency: int | None = None
    name: str = "load"

    def __post_init__(self) -> None:
        if not self.requests:
            raise ServeError(f"load {self.name!r} has no requests")
        if self.max_concurrency is not None:
            _positive_int("max_concurrency", self.max_concurrency)
        arrivals = [r.arrival_s for r in self.requests]
        if any(b < a for a, b in zip(arrivals, arrivals[1:], strict=False)):
            raise ServeError(f"load {self.name!r}: requests are not in arrival order")


_SLO_NAMES = ("ttft", "tpot", "e2el")


@dataclass(frozen=True)
class ServeSlo:
    """Service-level objectives in milliseconds (`vllm bench serve --goodput ttft:500 ...`):
    a request is good when it meets every one given."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def __post_init__(self) -> None:
        given = self.as_dict()
        if not given:
            raise ServeError("an SLO needs at least one of ttft, tpot, e2el")
        for name, v in given.items():
            if not math.isfinite(v) or v <= 0:
                raise ServeError(f"--goodput {name}:{v}: an SLO must be a positive number of ms")

    def as_dict(self) -> dict[str, float]:
        """The objectives given, by vLLM's names (ms)."""
        vals = {"ttft": self.ttft_ms, "tpot": self.tpot_ms, "e2el": self.e2el_ms}
        return {k: float(v) for k, v in vals.items() if v is not None}

    @classmethod
    def parse(cls, items: Sequence[str]) -> ServeSlo:
        """From `vllm bench serve --goodput` words: `["ttft:500", "tpot:50"]`."""
        vals: dict[str, float] = {}
        for item in items:
            name, sep, value = item.partition(":")
            if not sep or name not in _SLO_NAMES:
                raise ServeError(f"--goodput {item!r}: expected NAME:MS with NAME one of "
                                 f"{', '.join(_SLO_NAMES)}")
            try:
                vals[f"{name}_ms"] = float(value)
            except ValueError:
                raise ServeError(f"--goodput {item!r}: {value!r} is not a number") from None
        return cls(**vals)


@dataclass(frozen=True)
class ServeCounters:
    """What the engines did over a run, summed over replicas."""

    steps: int = 0
    prefill_steps: int = 0  # steps computing at least one prompt token
    prompt_tokens_computed: int = 0  # prompt (and recomputed) tokens the steps ran
    prefix_hit_tokens: int = 0  # prompt tokens whose KV came from the prefix cache
    preemptions: int = 0
    priced_steps: int = 0  # distinct steps the cost model was asked about (the rest memoised)
    busy_s: tuple[float, ...] = field(default=())  # per replica: time spent in steps
