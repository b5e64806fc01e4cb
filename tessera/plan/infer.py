"""Inference planning: TTFT, TPOT, throughput and $ per token of one deployment, and the
search over deployments: `tessera.plan.infer`.

    >>> from tessera import plan
    >>> r = plan.infer("llama3-70b", input_tokens=2048, output_tokens=2048, batch=4,
    ...                instance="trn1.32xlarge")
    >>> r.best.ttft_s, r.best.tpot_s, r.best.output_tokens_per_s

One batch of `batch` requests of `input_tokens` prompt tokens each, generating
`output_tokens` tokens, on one replica (`serving.ServingConfig`): the prompts are encoded
in steps padded to their bucket (vLLM packs prompts into chunks of at most
`max_num_batched_tokens` tokens; NxD Inference encodes each prompt in its context bucket),
then the batch decodes one token per step at the batch's bucket and the context's bucket
(`infer_step.py`). Prefix-cache hits skip the prompt tokens they cover. TTFT is the mean
over the batch's requests; TPOT the mean decode step. An instance runs `replicas` copies.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum

from tessera import cost
from tessera.cost.executor import BatchExecutor
from tessera.models.config import ModelConfig
from tessera.plan.devices import Device, DeviceKind, load_instance
from tessera.plan.errors import NoFeasibleConfigError, PlanError
from tessera.plan.infer_refine import refine as refine_rows
from tessera.plan.infer_step import InferCost, StepTime
from tessera.plan.kv import InferMemory, memory
from tessera.plan.layers import local_heads
from tessera.plan.pricing import Price, price_of
from tessera.plan.serving import ServingConfig, ServingStack, WeightDtype, default_stack
from tessera.plan.workload import resolve_model


class InferObjective(Enum):
    """What the inference ranking optimises."""

    LATENCY = "latency"  # TTFT + output tokens x TPOT
    THROUGHPUT = "throughput"  # output tokens/s per instance
    COST = "cost"  # $ per million output tokens


@dataclass(frozen=True)
class InferWorkload:
    """The requests: `batch` at a time, each `input_tokens` in and `output_tokens` out."""

    model: ModelConfig
    model_name: str
    input_tokens: int
    output_tokens: int
    batch: int = 1
    prefix_hit_rate: float = 0.0  # share of prompt tokens already in the prefix cache

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PlanError(f"--{name.replace('_tokens', '')}: {v!r} is not a positive "
                                "integer")
        if not 0 <= self.prefix_hit_rate < 1:
            raise PlanError(f"--prefix-hit-rate {self.prefix_hit_rate}: give 0 <= rate < 1")


@dataclass(frozen=True)
class InferEstimate:
    """One deployment evaluated."""

    serving: ServingConfig
    batch: int
    instances: int
    ttft_s: float
    tpot_s: float
    e2e_s: float  # the batch's prefill and decode, end to end
    output_tokens_per_s: float  # per instance: replicas x batch x output / e2e
    output_tokens_per_s_per_request: float  # 1 / TPOT
    prefill: StepTime  # one prompt's (first) prefill step
    decode: StepTime  # the mean decode step's terms at the final context
    prefill_padding: float  # share of prefill tokens computed as bucket padding
    decode_padding: float  # share of decode batch slots that are padding
    kv_padding: float  # share of the KV tokens read that hold no context
    memory: InferMemory
    usd_per_hour: float | None
    usd_per_million_output_tokens: float | None
    fidelity: cost.Fidelity = cost.Fidelity.ROOFLINE  # how the op times were priced

    @property
    def feasible(self) -> bool:
        """Whether it fits in memory."""
        return self.memory.fits

    def as_dict(self) -> dict[str, object]:
        """The `--json` object of this deployment."""
        s = self.serving
        return {
            "config": s.label(), "stack": s.stack.value, "tp": s.tp, "replicas": s.replicas,
            "lnc": s.lnc, "batch": self.batch, "instances": self.instances,
            "max_model_len": s.max_model_len, "block_size": s.block_size,
            "weight_dtype": s.weight_dtype.value, "kv_fp8": s.kv_fp8,
            "fidelity": self.fidelity.value,
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "output_tokens_per_s_per_request": self.output_tokens_per_s_per_request,
            "prefill_padding": self.prefill_padding, "decode_padding": self.decode_padding,
            "kv_padding": self.kv_padding,
            "memory_per_device_bytes": self.memory.total_bytes,
            "kv_per_seq_bytes": self.memory.kv_per_seq_bytes,
            "max_batch": self.memory.max_batch,
            "usd_per_hour": self.usd_per_hour,
            "usd_per_million_output_tokens": self.usd_per_million_output_tokens,
            "breakdown": {"prefill": self.prefill.as_dict(), "decode": self.decode.as_dict()},
        }


def _prefill_schedule(cost: InferCost, w: InferWorkload) -> tuple[float, float, StepTime]:
    """(mean TTFT, time until every prompt is encoded, the first step) and the padding."""
    s = cost.serving
    new = max(1, math.ceil(w.input_tokens * (1 - w.prefix_hit_rate)))
    cached = w.input_tokens - new
    if s.stack is ServingStack.NXDI:
        step = cost.prefill(new, cached)
        done = [step.total_s * (i + 1) for i in range(w.batch)]
        return sum(done) / len(done), done[-1], step
    budget = min(s.max_num_batched_tokens, s.prefill_ladder[-1])
    clock, first, done = 0.0, None, []
    for _ in range(w.batch):  # prompts packed into chunks of the token budget, in order
        left, context = new, cached
        while left:
            chunk = min(left, budget)
            step = cost.prefill(chunk, context)
            first = first or step
            clock += step.total_s
            left -= chunk
            context += chunk
        done.append(clock)
    return sum(done) / len(done), done[-1], first


def padding_shares(serving: ServingConfig, w: InferWorkload, new: int) -> tuple[float, ...]:
    """(prefill, decode batch, KV read) padding shares of one batch."""
    from tessera.plan.serving import bucket_of

    if not serving.static_shapes:
        db = bucket_of(w.batch, serving.seq_ladder, "--batch")
        return 0.0, 1 - w.batch / db, 0.0
    chunk = min(new, serving.max_num_batched_tokens) if serving.stack is ServingStack.VLLM \
        else new
    pb = bucket_of(chunk, serving.prefill_ladder, "--input")
    db = bucket_of(w.batch, serving.seq_ladder, "--batch")
    mid = w.input_tokens + w.output_tokens // 2
    cb = bucket_of(mid, serving.context_ladder, "context tokens")
    return 1 - chunk / pb, 1 - w.batch / db, 1 - mid / cb


def evaluate(w: InferWorkload, device: Device, serving: ServingConfig,
             instances: int = 1) -> InferEstimate:
    """TTFT, TPOT, throughput, memory and costs of one deployment."""
    local_heads(w.model, serving.tp)  # a PlanError when tp cannot split the heads
    if w.input_tokens + w.output_tokens > serving.max_model_len:
        raise PlanError(f"--input {w.input_tokens} + --output {w.output_tokens} exceeds "
                        f"--max-model-len {serving.max_model_len}")
    cost = InferCost(w.model, device, serving, instances)
    ttft, prefill_done, first = _prefill_schedule(cost, w)
    steps = [cost.decode(w.batch, w.input_tokens + t) for t in range(1, w.output_tokens)]
    decode_total = sum(st.total_s for st in steps)
    tpot = decode_total / max(1, len(steps)) if steps else 0.0
    last = steps[-1] if steps else cost.decode(w.batch, w.input_tokens + 1)
    e2e = prefill_done + decode_total
    per_instance = serving.replicas * w.batch * w.output_tokens / e2e / instances
    mem = memory(w.model, serving, w.batch, device.hbm_bytes)
    price = price_of(device.instance)
    per_hour = None if price.usd_per_hour is None else price.usd_per_hour * instances
    per_mtok = None if per_hour is None else per_hour / (per_instance * instances * 3600) * 1e6
    new = max(1, math.ceil(w.input_tokens * (1 - w.prefix_hit_rate)))
    pads = padding_shares(serving, w, new)
    return InferEstimate(serving, w.batch, instances, ttft, tpot, e2e, per_instance,
                         1 / tpot if tpot else 0.0, first, last, *pads, mem, per_hour,
                         per_mtok, device.fidelity)


@dataclass(frozen=True)
class InferPins:
    """Deployment options fixed by the user (None: searched or defaulted)."""

    stack: ServingStack | None = None
    tp: int | None = None
    replicas: int | None = None
    lnc: int | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    block_size: int = 32
    max_num_batched_tokens: int | None = None
    weight_dtype: WeightDtype = WeightDtype.BF16
    kv_fp8: bool = False
    sequence_parallel: bool = False
    context_buckets: bool = False
    on_device_sampling: bool = True


@dataclass(frozen=True)
class InferPlan:
    """Ranked deployments of one instance type."""

    workload: InferWorkload
    instance: str
    price: Price
    rows: tuple[InferEstimate, ...]
    evaluated: int
    rejected: tuple[str, ...]  # why the closest misses failed
    elapsed_s: float
    refined: int = 0  # top rows re-evaluated at SIMULATED fidelity

    @property
    def best(self) -> InferEstimate:
        """The top deployment."""
        return self.rows[0]


def _tps(device: Device, model: ModelConfig, pins: InferPins) -> list[int]:
    if pins.tp:
        return [pins.tp]
    per = device.per_instance
    out = []
    for tp in range(1, per + 1):
        if per % tp:
            continue
        try:
            local_heads(model, tp)
        except PlanError:
            continue
        out.append(tp)
    return out


def _rank(e: InferEstimate, obj: InferObjective, output_tokens: int) -> tuple[float, ...]:
    if obj is InferObjective.LATENCY:
        return (e.ttft_s + output_tokens * e.tpot_s,)
    if obj is InferObjective.THROUGHPUT:
        return (-e.output_tokens_per_s,)
    if e.usd_per_million_output_tokens is not None:
        return (e.usd_per_million_output_tokens,)
    return (-e.output_tokens_per_s,)


def infer(model, input_tokens: int, output_tokens: int, instance: str, *,  # noqa: ANN001
          batch: int | None = None, pins: InferPins = InferPins(),
          objective: InferObjective | str = InferObjective.LATENCY,
          ttft_slo_s: float | None = None, tpot_slo_s: float | None = None,
          prefix_hit_rate: float = 0.0, top: int = 10, instances: int = 1,
          fidelity: cost.Fidelity | str = cost.Fidelity.ROOFLINE, refine: int = 0,
          executor: BatchExecutor | None = None, progress=None) -> InferPlan:  # noqa: ANN001
    """Search deployments of `model` on `instance` (tp, replicas, LNC, batch when not
    given) and rank those that fit and meet the SLOs by `objective`.

    Op times are ROOFLINE (a lower bound, fast); `refine=K` re-evaluates the top K at
    SIMULATED fidelity (`infer_refine.py`) and `fidelity="simulated"` all of them, tuning
    the kernel shapes side by side on `executor` (`progress` is told each step)."""
    start = time.perf_counter()
    name, cfg = resolve_model(model)
    spec = load_instance(instance)
    obj = InferObjective(objective)
    stack = pins.stack or default_stack(spec)
    lncs = ([pins.lnc] if pins.lnc else list(getattr(spec.chip, "lnc_allowed", (1,))))
    batches = [batch] if batch else [1, 2, 4, 8, 16, 32, 64]
    rows: list[InferEstimate] = []
    misses: list[tuple[float, str]] = []
    evaluated = 0
    max_len = pins.max_model_len or _round_up(input_tokens + output_tokens, 128)
    for lnc in lncs:
        device = Device.create(spec, None if device_is_gpu(spec) else lnc)
        for tp in _tps(device, cfg, pins):
            replicas = pins.replicas or device.per_instance * instances // tp
            for b in batches:
                w = InferWorkload(cfg, name, input_tokens, output_tokens, b, prefix_hit_rate)
                serving = ServingConfig(
                    stack, tp, replicas, device.lnc, max_num_seqs=pins.max_num_seqs or b,
                    max_model_len=max_len, block_size=pins.block_size,
                    max_num_batched_tokens=pins.max_num_batched_tokens
                    or _default_batched_tokens(stack, device, max_len),
                    weight_dtype=pins.weight_dtype, kv_fp8=pins.kv_fp8,
                    sequence_parallel=pins.sequence_parallel,
                    on_device_sampling=pins.on_device_sampling,
                    context_buckets=pins.context_buckets,
                    static_shapes=device.kind is not DeviceKind.GPU,
                    async_scheduling=stack is ServingStack.VLLM)
                try:
                    e = evaluate(w, device, serving, instances)
                except PlanError as err:
                    misses.append((math.inf, f"{serving.label()} batch {b}: {err}"))
                    continue
                evaluated += 1
                if not e.feasible:
                    misses.append((e.memory.total_bytes - e.memory.capacity_bytes,
                                   f"{serving.label()} batch {b}: {e.memory.overflow()}"))
                    continue
                rows.append(e)
        if device_is_gpu(spec):
            break
    if not rows:
        misses.sort(key=lambda m: m[0])
        why = misses[0][1] if misses else "no tensor-parallel degree splits the heads"
        raise NoFeasibleConfigError(f"{name} does not fit on {spec.name}: closest {why}")

    def meets(e: InferEstimate) -> bool:
        return ((ttft_slo_s is None or e.ttft_s <= ttft_slo_s)
                and (tpot_slo_s is None or e.tpot_s <= tpot_slo_s))

    ok = sorted((e for e in rows if meets(e)), key=lambda e: _rank(e, obj, output_tokens))
    if cost.Fidelity(fidelity) is cost.Fidelity.SIMULATED:
        refine = len(ok)
    refined = 0
    if refine > 0 and ok and not device_is_gpu(spec):
        # ROOFLINE is a lower bound, so a deployment that misses an SLO there misses it too
        head = refine_rows(spec, ok[:refine], lambda e: InferWorkload(
            cfg, name, input_tokens, output_tokens, e.batch, prefix_hit_rate),
            evaluate, executor, progress)
        refined = len(head)
        kept = [e for e in head if meets(e)]
        rows = head  # what the SLO message below reports when none of them meets it
        ok = sorted(kept, key=lambda e: _rank(e, obj, output_tokens)) + ok[refine:]
    if not ok:
        best_ttft = min(e.ttft_s for e in rows)
        best_tpot = min(e.tpot_s for e in rows)
        raise PlanError(f"no deployment on {spec.name} meets the SLOs (--ttft-slo "
                        f"{ttft_slo_s}, --tpot-slo {tpot_slo_s}): the best reachable are "
                        f"TTFT {best_ttft * 1e3:.1f} ms and TPOT {best_tpot * 1e3:.2f} ms")
    misses.sort(key=lambda m: m[0])
    return InferPlan(InferWorkload(cfg, name, input_tokens, output_tokens,
                                   batch or ok[0].batch, prefix_hit_rate),
                     spec.name, price_of(spec), tuple(ok[:max(1, top)]), evaluated,
                     tuple(m[1] for m in misses[:3]), time.perf_counter() - start, refined)


def _default_batched_tokens(stack: ServingStack, device: Device, max_len: int) -> int:
    """vLLM Neuron keeps 2,048 with chunked prefill (on with prefix caching, the default);
    vLLM on GPUs 8,192 (its online-serving default); NxD Inference encodes whole prompts."""
    if stack is ServingStack.NXDI:
        return max_len
    return 8192 if device.kind is DeviceKind.GPU else min(2048, max_len)


def device_is_gpu(spec) -> bool:  # noqa: ANN001
    """Whether the instance holds GPUs."""
    return Device.create(spec).kind is DeviceKind.GPU


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m
