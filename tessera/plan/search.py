"""Enumerate configurations, evaluate them, rank them: `tessera.plan.train`.

    >>> from tessera import plan
    >>> result = plan.train("llama3-8b", seq_len=8192, global_batch=256,
    ...                     instance="trn2.48xlarge", instances=[1, 2, 4])
    >>> result.best.estimate.tokens_per_s, result.best.config.label()

The space (`Pins` fixes any dimension): tp over the divisors of an instance's devices; pp
over the divisors of the layer count (equal stages), with 1F1B and, where the layers split
into 2 x pp chunks, interleaved 1F1B (the zero-bubble schedules too on GPUs; no Neuron
page documents them); cp 1, 2, 4 for sequences of 8K and more; ep over the divisors of the
experts for MoE models; replicate, ZeRO-1 and FSDP2 (with and without resharding after
forward; HSDP over several instances); micro-batch 1, 2, 4; sequence parallelism whenever
tp > 1; recomputation none / selective / full. More recomputation is never faster, so the
search stops at the first recompute mode that fits (the others are counted as pruned).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from tessera import cost
from tessera.cost.batch import BatchStep, EstimateRequest, tune_missing
from tessera.cost.executor import BatchExecutor
from tessera.hw import ChipSpec
from tessera.plan.devices import Device, DeviceKind, load_instance
from tessera.plan.errors import NoFeasibleConfigError, PlanError
from tessera.plan.pricing import Costs, Price, price_of
from tessera.plan.space import (
    DataParallel,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    check,
)
from tessera.plan.step import Evaluator, Overlap, StepEstimate
from tessera.plan.workload import TrainWorkload


class Objective(Enum):
    """What the ranking maximises."""

    THROUGHPUT = "throughput"  # tokens/s
    COST = "cost"  # fewest dollars per million tokens (tokens/s per device if no price)
    MFU = "mfu"


@dataclass(frozen=True)
class Pins:
    """Dimensions fixed by the user (None: searched)."""

    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    cp: int | None = None
    ep: int | None = None
    sequence_parallel: bool | None = None
    dp_mode: DataParallel | None = None
    fsdp_shard: int | None = None  # FSDP2 shard degree (< dp: hybrid sharding, HSDP)
    reshard_after_forward: bool | None = None
    micro_batch: int | None = None
    recompute: Recompute | None = None
    schedule: PipelineSchedule | None = None
    virtual_stages: int | None = None
    lnc: int | None = None


@dataclass(frozen=True)
class PlanRow:
    """One feasible configuration with what it costs."""

    estimate: StepEstimate
    costs: Costs
    instance: str
    fidelity: cost.Fidelity = cost.Fidelity.ROOFLINE  # of its Neuron op times

    @property
    def config(self) -> ParallelConfig:
        """The parallel configuration."""
        return self.estimate.config


@dataclass(frozen=True)
class TrainPlan:
    """The ranked result of a search on one instance type."""

    workload: TrainWorkload
    instance: str
    price: Price
    rows: tuple[PlanRow, ...]  # feasible, best first (the top ones)
    pareto: tuple[PlanRow, ...]  # no other is both faster and cheaper, fastest first
    feasible: int  # feasible configurations found
    evaluated: int
    pruned: int
    rejected: tuple[tuple[str, str], ...]  # (config label, why) of the closest misses
    elapsed_s: float
    refined: int = 0  # top rows re-evaluated at SIMULATED fidelity

    @property
    def best(self) -> PlanRow:
        """The top configuration."""
        return self.rows[0]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def configs(w: TrainWorkload, device: Device, instances: int,
            pins: Pins = Pins()) -> Iterator[ParallelConfig]:
    """Every configuration of the space for `instances` instances (before memory checks;
    recompute modes are left to `search`)."""
    per = device.per_instance
    world = per * instances
    moe = getattr(w.model, "moe", None)
    gpu = device.kind is DeviceKind.GPU
    tps = [pins.tp] if pins.tp else [d for d in _divisors(per)]
    cps = [pins.cp] if pins.cp else ([1, 2, 4] if w.seq_len >= 8192 else [1])
    for tp in tps:
        for cp in cps:
            if world % (tp * cp):
                continue
            rest = world // (tp * cp)
            # stages of equal depth, as Megatron-LM requires and TorchTitan's default split
            # makes: pp divides the layer count
            pps = [pins.pp] if pins.pp else [p for p in _divisors(rest)
                                             if w.model.num_layers % p == 0]
            for pp in pps:
                if rest % pp:
                    continue
                dp = rest // pp
                if pins.dp and pins.dp != dp:
                    continue
                yield from _inner(w, per, instances, tp, cp, pp, dp, moe, gpu, pins, device)


def _inner(w, per, instances, tp, cp, pp, dp, moe, gpu, pins, device):  # noqa: ANN001
    # sequence parallelism replaces each all-reduce by the all-gather and reduce-scatter it
    # is made of and divides norm work and activations by tp: searched on, pinnable off
    sps = [pins.sequence_parallel] if pins.sequence_parallel is not None else [tp > 1]
    eps = [pins.ep] if pins.ep else ([e for e in _divisors(moe.num_experts)
                                      if (dp * cp) % e == 0] if moe else [1])
    if pins.schedule:
        scheds = [(pins.schedule, pins.virtual_stages or
                   (2 if pins.schedule.multi_stage else 1))]
    elif pp == 1:
        scheds = [(PipelineSchedule.ONE_F_ONE_B, 1)]
    else:
        scheds = [(PipelineSchedule.ONE_F_ONE_B, 1)]
        if w.model.num_layers % (2 * pp) == 0:
            scheds.append((PipelineSchedule.INTERLEAVED_1F1B, 2))
            if gpu:
                scheds += [(PipelineSchedule.INTERLEAVED_ZB, 2), (PipelineSchedule.ZBV, 2)]
    modes = _dp_modes(dp, tp, cp, per, instances, pins)
    mbs = [pins.micro_batch] if pins.micro_batch else [1, 2, 4]
    for sp in sps:
        for ep in eps:
            for sched, v in scheds:
                for mode, shard, reshard in modes:
                    for mb in mbs:
                        yield ParallelConfig(
                            tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, sequence_parallel=sp,
                            dp_mode=mode, reshard_after_forward=reshard, dp_shard=shard,
                            micro_batch=mb, schedule=sched, virtual_stages=v,
                            lnc=device.lnc)


def _dp_modes(dp: int, tp: int, cp: int, per: int, instances: int,
              pins: Pins) -> list[tuple[DataParallel, int, bool]]:
    if dp == 1:
        out = [(DataParallel.REPLICATE, 1, True)]
    else:
        out = [(DataParallel.REPLICATE, 1, True), (DataParallel.ZERO1, 1, True),
               (DataParallel.FSDP, dp, True), (DataParallel.FSDP, dp, False)]
        inside = per // (tp * cp) if per % (tp * cp) == 0 else 0
        if instances > 1 and inside > 1 and dp % inside == 0 and dp > inside:
            out += [(DataParallel.HSDP, inside, True)]
    if pins.fsdp_shard is not None:
        shard = pins.fsdp_shard
        if shard < 1 or dp % shard:
            return []
        out = [(DataParallel.FSDP if shard == dp else DataParallel.HSDP, shard, True)]
    elif pins.dp_mode is not None:
        out = [o for o in out if o[0] is pins.dp_mode] or [
            (pins.dp_mode, dp if pins.dp_mode is DataParallel.FSDP else 1, True)]
    if pins.reshard_after_forward is not None:
        out = [(m, s, pins.reshard_after_forward) for m, s, _ in out]
    return list(dict.fromkeys(out))


def train(model, seq_len: int, global_batch: int, instance: str,  # noqa: ANN001
          instances: Iterable[int] = (1,), *, mode: str = "pretrain", dtype: str = "bf16",
          lora_rank: int | None = None, attention: str = "flash", pins: Pins = Pins(),
          objective: Objective | str = Objective.COST,
          fidelity: cost.Fidelity | str = cost.Fidelity.ROOFLINE,
          overlap: Overlap | str | None = None, top: int = 10, refine: int = 0,
          executor: BatchExecutor | None = None,
          progress: Callable[[int, int], None] | None = None,
          tune_progress: Callable[[BatchStep], None] | None = None) -> TrainPlan:
    """Search the configurations of training `model` on `instances` instances of
    `instance` and rank the feasible ones by `objective` (see the module docstring).

    `fidelity=SIMULATED` prices every Neuron op with the library kernel on the simulated
    core (new shapes are tuned first, side by side, by `executor`: local processes by
    default, `BatchExecutor.ray(address)` for a Ray cluster); `refine=K` keeps the fast
    ROOFLINE search and re-evaluates only its top K rows at SIMULATED fidelity. Raises
    `PlanError` for a bad option and `NoFeasibleConfigError` (naming the closest miss) when
    nothing fits."""
    from tessera.plan.workload import LoraConfig

    lora = LoraConfig(rank=lora_rank) if lora_rank else None
    w = TrainWorkload.create(model, seq_len, global_batch, mode, dtype, lora, attention)
    return search(w, instance, instances, pins=pins, objective=objective, fidelity=fidelity,
                  overlap=overlap, top=top, refine=refine, executor=executor,
                  progress=progress, tune_progress=tune_progress)


def search(w: TrainWorkload, instance: str, instances: Iterable[int], *,
           pins: Pins = Pins(), objective: Objective | str = Objective.COST,
           fidelity: cost.Fidelity | str = cost.Fidelity.ROOFLINE,
           overlap: Overlap | str | None = None, top: int = 10, refine: int = 0,
           executor: BatchExecutor | None = None,
           progress: Callable[[int, int], None] | None = None,
           tune_progress: Callable[[BatchStep], None] | None = None) -> TrainPlan:
    """`train` for a ready `TrainWorkload`."""
    start = time.perf_counter()
    fid = cost.Fidelity(fidelity)
    if fid is cost.Fidelity.SIMULATED:
        # tune every shape the space needs first (side by side), then search as usual
        pretune(w, instance, instances, pins, overlap, executor, tune_progress)
    spec = load_instance(instance)
    obj = Objective(objective)
    ov = None if overlap is None else Overlap(overlap)
    counts = sorted(set(instances))
    if not counts or counts[0] < 1:
        raise PlanError(f"--instances: {counts} must be positive counts")
    price = price_of(spec)
    devices = _devices(spec, pins.lnc, fidelity)
    rows: list[PlanRow] = []
    misses: list[tuple[float, ParallelConfig, str]] = []
    evaluated = pruned = 0
    total = len(counts) * len(devices)
    done = 0
    for device in devices:
        for n in counts:
            evaluate = Evaluator(w, device, n, ov)
            for cfg in configs(w, device, n, pins):
                if not _valid(w, device, cfg):
                    continue
                modes = [pins.recompute] if pins.recompute else list(Recompute)
                for i, rc in enumerate(modes):
                    c = replace(cfg, recompute=rc)
                    try:
                        est = evaluate(c)
                    except PlanError as err:
                        misses.append((float("inf"), c, str(err)))
                        break
                    evaluated += 1
                    if est.feasible:
                        rows.append(PlanRow(est, Costs.of(price, n, est.tokens_per_s),
                                            spec.name))
                        pruned += len(modes) - i - 1
                        break
                    misses.append((-est.memory.headroom_bytes, c, ""))
            done += 1
            if progress is not None:
                progress(done, total)
    misses.sort(key=lambda m: m[0])
    closest = tuple((c.label(), why or _overflow(w, c, spec, counts, ov, devices))
                    for _, c, why in misses[:3])
    if not rows:
        detail = "; ".join(f"{label}: {why}" for label, why in closest[:1]) or \
            "no configuration divides the model and batch (see --tp/--pp/--global-batch)"
        raise NoFeasibleConfigError(f"no configuration of {w.model_name} fits on "
                                    f"{spec.name} x {counts}: closest {detail}")
    front = pareto_front(rows)
    rows.sort(key=lambda r: _rank_key(r, obj))
    shown = rows[:max(top, 1)]
    refined = 0
    if refine > 0 and fid is cost.Fidelity.ROOFLINE and isinstance(spec.chip, ChipSpec):
        head = _refine(w, spec, price, shown[:refine], ov, executor, tune_progress)
        refined = len(head)
        shown = sorted(head, key=lambda r: _rank_key(r, obj)) + shown[refine:]
    elif fid is cost.Fidelity.SIMULATED:
        shown = [replace(r, fidelity=fid) for r in shown]
    return TrainPlan(w, spec.name, price, tuple(shown), front, len(rows),
                     evaluated, pruned, closest, time.perf_counter() - start, refined)


def _tune(requests: set, chip: str, executor: BatchExecutor | None,
          progress: Callable[[BatchStep], None] | None) -> None:
    reqs = [EstimateRequest(op, dict(shapes), dtype) for op, shapes, dtype in sorted(requests)]
    try:
        tune_missing(reqs, chip, executor=executor, progress=progress)
    except cost.CostError as err:
        raise PlanError(f"--fidelity simulated: {err}") from None


def pretune(w: TrainWorkload, instance: str, instances: Iterable[int], pins: Pins,
            overlap: Overlap | str | None, executor: BatchExecutor | None,
            progress: Callable[[BatchStep], None] | None) -> int:
    """Tune, side by side, every SIMULATED shape the space's configurations need; returns
    how many shapes were asked for (a dry run at ROOFLINE collects them)."""
    spec = load_instance(instance)
    if not isinstance(spec.chip, ChipSpec):
        return 0
    ov = None if overlap is None else Overlap(overlap)
    requests: set = set()
    for device in _devices(spec, pins.lnc, cost.Fidelity.ROOFLINE):
        rec = device.recording()
        for n in sorted(set(instances)):
            evaluate = Evaluator(w, rec, n, ov)
            for cfg in configs(w, rec, n, pins):
                if _valid(w, rec, cfg):
                    for rc in ([pins.recompute] if pins.recompute else list(Recompute)):
                        with contextlib.suppress(PlanError):
                            evaluate(replace(cfg, recompute=rc))
        requests |= rec.recorder or set()
    _tune(requests, spec.chip.name, executor, progress)
    return len(requests)


def _valid(w: TrainWorkload, device: Device, cfg: ParallelConfig) -> bool:
    return not check(cfg, world=cfg.world, per_instance=device.per_instance,
                     layers=w.model.num_layers, global_batch=w.global_batch, seq_len=w.seq_len,
                     experts=getattr(getattr(w.model, "moe", None), "num_experts", 0))


def _refine(w: TrainWorkload, spec, price: Price, rows: list[PlanRow], ov,  # noqa: ANN001
            executor: BatchExecutor | None,
            progress: Callable[[BatchStep], None] | None) -> list[PlanRow]:
    """`rows` re-evaluated at SIMULATED fidelity (their shapes tuned side by side first)."""
    requests: set = set()
    for row in rows:
        dev = Device.create(spec, row.config.lnc).recording()
        Evaluator(w, dev, row.estimate.instances, ov)(row.config)
        requests |= dev.recorder or set()
    _tune(requests, spec.chip.name, executor, progress)
    out = []
    for row in rows:
        dev = Device.create(spec, row.config.lnc, cost.Fidelity.SIMULATED)
        est = Evaluator(w, dev, row.estimate.instances, ov)(row.config)
        out.append(PlanRow(est, Costs.of(price, est.instances, est.tokens_per_s), spec.name,
                           cost.Fidelity.SIMULATED))
    return out


def _cost_of(row: PlanRow) -> float:
    """Dollars per million tokens, or device-seconds per token when the price is unknown."""
    if row.costs.usd_per_million_tokens is not None:
        return row.costs.usd_per_million_tokens
    return row.estimate.devices / row.estimate.tokens_per_s


def pareto_front(rows: list[PlanRow]) -> tuple[PlanRow, ...]:
    """The rows no other row beats on both throughput and cost, fastest first."""
    front: list[PlanRow] = []
    best_cost = float("inf")
    for row in sorted(rows, key=lambda r: (-r.estimate.tokens_per_s, _cost_of(r))):
        if _cost_of(row) < best_cost:
            front.append(row)
            best_cost = _cost_of(row)
    return tuple(front)


def _overflow(w: TrainWorkload, cfg: ParallelConfig, spec, counts, ov, devices) -> str:  # noqa: ANN001
    """Why `cfg` (a memory miss) does not fit, re-evaluated for its message."""
    device = next(d for d in devices if d.lnc == cfg.lnc)
    n = cfg.world // device.per_instance
    return Evaluator(w, device, n, ov)(cfg).memory.overflow()


def _devices(spec, lnc: int | None, fidelity) -> list[Device]:  # noqa: ANN001
    if lnc is not None or isinstance(spec.chip, type(None)):
        return [Device.create(spec, lnc, fidelity)]
    chip = spec.chip
    allowed = getattr(chip, "lnc_allowed", (1,))
    return [Device.create(spec, size, fidelity) for size in allowed] if \
        hasattr(chip, "lnc_allowed") else [Device.create(spec, None, fidelity)]


def _rank_key(row: PlanRow, obj: Objective) -> tuple[float, ...]:
    e = row.estimate
    if obj is Objective.THROUGHPUT:
        return (-e.tokens_per_s,)
    if obj is Objective.MFU:
        return (-e.mfu, -e.tokens_per_s)
    if row.costs.usd_per_million_tokens is not None:
        return (row.costs.usd_per_million_tokens, -e.tokens_per_s)
    return (-e.tokens_per_s / e.devices, -e.tokens_per_s)
