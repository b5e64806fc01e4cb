"""Step time of one training configuration, every term named.

    step = m x (forward + backward + recompute, with their TP/CP/EP collectives) on the
           slowest pipeline stage
         + pipeline bubble + pipeline sends
         + exposed data-parallel / FSDP communication
         + optimizer step

Collectives of tensor, context and expert parallelism sit on the critical path: Megatron-LM
(the GPU validation rows) does not overlap them, and on Neuron "TP collectives cannot
currently overlap their dependent matmul" [OVL]. Data-parallel and FSDP collectives overlap
compute as the framework achieves it (`Overlap`): PyTorch FSDP2 prefetches the next block's
all-gather during the current block and reduce-scatters during the previous block's
backward, and DDP all-reduces gradient buckets during backward [FSDP2, DDP] (LAYER, the
GPU default); the Neuron compiler's default places FSDP all-gathers together up front and
reduce-scatters at the end of backward [OVL] (NONE, the Neuron default; `--overlap layer`
models its token-threading option, one block of compute hiding each collective).

Pipeline bubbles (Narayanan et al. 2021; Qi et al. 2024, Zero Bubble Pipeline
Parallelism): GPipe and 1F1B (pp - 1) x (F + B); interleaved 1F1B (pp - 1) x (F + B) / v;
interleaved zero bubble (pp - 1) x (F + B - 2W) / v, W the weight-gradient part of B (the
ZB-H1 bubble, F + B_input - W); ZBV (pp - 1) x max(0, F + B - 3W) (ZB-V: zero when
F = B_input = W).

[OVL] AWS Neuron docs, "Compute-communication overlap" (neuron-runtime/explore/
compute-comm-overlap). [FSDP2] PyTorch docs, torch.distributed.fsdp.fully_shard (implicit
prefetching). [DDP] PyTorch docs, DistributedDataParallel (gradient bucketing, 25 MiB).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from enum import Enum

from tessera.plan.block_time import block_time, ends_time, representatives
from tessera.plan.comm import groups, network
from tessera.plan.devices import Device, DeviceKind
from tessera.plan.layers import Shard, local_heads
from tessera.plan.memory import MemoryBreakdown, in_flight, state_bytes
from tessera.plan.space import DataParallel, ParallelConfig, PipelineSchedule, Recompute
from tessera.plan.workload import TrainWorkload

DDP_BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb [DDP]


class Overlap(Enum):
    """How much data-parallel / FSDP communication hides behind compute."""

    NONE = "none"  # all exposed
    LAYER = "layer"  # each collective hides behind one block's compute


@dataclass(frozen=True)
class StepBreakdown:
    """Seconds per step on the slowest device, by term (they add up to the step)."""

    forward_s: float
    backward_s: float
    recompute_s: float
    tp_comm_s: float
    cp_comm_s: float
    ep_comm_s: float
    fsdp_comm_s: float  # exposed part of per-block all-gathers and reduce-scatters
    pp_bubble_s: float
    pp_p2p_s: float
    dp_comm_s: float  # exposed part of the gradient all-reduce / reduce-scatter
    optimizer_s: float

    @property
    def total_s(self) -> float:
        """The step time."""
        return sum(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, float]:
        """Term name -> seconds."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class StepEstimate:
    """One configuration evaluated: speed, utilisation, memory (see `feasible`)."""

    config: ParallelConfig
    instances: int
    devices: int
    step_time_s: float
    tokens_per_s: float
    seq_per_s: float
    mfu: float
    hfu: float
    memory: MemoryBreakdown
    breakdown: StepBreakdown
    micro_batches: int

    @property
    def feasible(self) -> bool:
        """Whether the configuration fits in memory."""
        return self.memory.fits


@dataclass(frozen=True)
class _Stage:
    """Per-micro-batch totals of the slowest pipeline device."""

    forward_s: float
    backward_s: float
    weight_grad_s: float
    core_s: float
    tp_fwd_s: float
    cp_fwd_s: float
    ep_fwd_s: float
    layers: int
    saved: tuple[float, float, float]
    trainable: float
    frozen: float
    block_params: float
    fsdp_fwd_s: float  # all-gathers of the device's blocks, one micro-batch
    fsdp_bwd_s: float  # reduce-scatters (and re-gathers) in backward
    fsdp_hidden_fwd_s: float  # compute that can hide them (one block each)
    fsdp_hidden_bwd_s: float
    flops: float
    core_flops: float
    workspace: float


def evaluate(w: TrainWorkload, device: Device, instances: int, cfg: ParallelConfig,
             overlap: Overlap | None = None) -> StepEstimate:
    """Step time, utilisation and memory of `cfg` (already checked with `space.check`)."""
    return Evaluator(w, device, instances, overlap)(cfg)


class Evaluator:
    """Evaluates configurations of one workload on `instances` instances of one device
    type, caching what configurations share (block times, stage sums, rank groups)."""

    def __init__(self, w: TrainWorkload, device: Device, instances: int,
                 overlap: Overlap | None = None) -> None:
        self.w = w
        self.device = device
        self.instances = instances
        self.overlap = overlap or (Overlap.LAYER if device.kind is DeviceKind.GPU
                                   else Overlap.NONE)
        self.net = network(device, instances)
        self.reps = representatives(w.model, w.seq_len)
        self.model_flops = model_flops_per_step(w)
        self._stages: dict[tuple[object, ...], _Stage] = {}
        self._groups: dict[tuple[int, ...], object] = {}
        self._owned: dict[tuple[int, int], list[tuple[dict[int, int], bool, bool, int]]] = {}

    def groups(self, cfg: ParallelConfig):  # noqa: ANN201
        """Rank groups of `cfg` (cached by degrees)."""
        key = (cfg.tp, cfg.cp, cfg.dp, cfg.dp_shard, cfg.pp, cfg.ep)
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = groups(cfg)
        return g

    def __call__(self, cfg: ParallelConfig) -> StepEstimate:
        w, device, ov, net = self.w, self.device, self.overlap, self.net
        st = self._stage(cfg)
        g = self.groups(cfg)
        m = cfg.micro_batches(w.global_batch)
        rc = cfg.recompute
        recompute = {Recompute.NONE: 0.0, Recompute.SELECTIVE: st.core_s,
                     Recompute.FULL: st.forward_s}[rc]
        passes = 3 if rc is Recompute.FULL else 2
        tp_per_mb = st.tp_fwd_s * passes
        cp_per_mb = st.cp_fwd_s * passes
        ep_per_mb = st.ep_fwd_s * passes
        fsdp_fwd = _exposed(st.fsdp_fwd_s, st.fsdp_hidden_fwd_s, ov)
        fsdp_bwd = _exposed(st.fsdp_bwd_s, st.fsdp_hidden_bwd_s, ov)
        f = st.forward_s + st.tp_fwd_s + st.cp_fwd_s + st.ep_fwd_s + fsdp_fwd
        b = (st.backward_s + recompute + (passes - 1) * (st.tp_fwd_s + st.cp_fwd_s
                                                         + st.ep_fwd_s) + fsdp_bwd)
        bubble = _bubble(cfg, f, b, st.weight_grad_s)
        p2p = 0.0
        if cfg.pp > 1:
            rows = cfg.micro_batch * w.seq_len // cfg.cp
            if cfg.sequence_parallel:
                rows //= cfg.tp
            t = net.time_s("send_recv", rows * w.model.hidden_size * 2, g.pp_pair)
            p2p = 2 * t * (m * cfg.virtual_stages + cfg.pp - 1)
        dp_s = _dp_exposed(cfg, net, g, st, b, ov)
        optimizer = device.stream_s(_optimizer_bytes(cfg, st.trainable))
        breakdown = StepBreakdown(
            forward_s=m * st.forward_s, backward_s=m * st.backward_s,
            recompute_s=m * recompute, tp_comm_s=m * tp_per_mb, cp_comm_s=m * cp_per_mb,
            ep_comm_s=m * ep_per_mb, fsdp_comm_s=m * (fsdp_fwd + fsdp_bwd),
            pp_bubble_s=bubble, pp_p2p_s=p2p, dp_comm_s=dp_s, optimizer_s=optimizer)
        step = breakdown.total_s
        peak = device.peak_flops(w.dtype) * cfg.world
        hw_flops = self.model_flops + _recompute_flops(cfg, st) * m * cfg.world / cfg.pp
        mem = _memory(cfg, device, st, m)
        return StepEstimate(cfg, self.instances, cfg.world, step, w.tokens_per_step / step,
                            w.global_batch / step, self.model_flops / step / peak,
                            hw_flops / step / peak, mem, breakdown, m)

    def _stage(self, cfg: ParallelConfig) -> _Stage:
        key = (cfg.tp, cfg.sequence_parallel, cfg.cp, cfg.ep, cfg.pp, cfg.virtual_stages,
               cfg.dp_mode, cfg.dp_shard, cfg.reshard_after_forward, cfg.dp, cfg.micro_batch)
        st = self._stages.get(key)
        if st is None:
            st = self._stages[key] = self._build_stage(cfg)
        return st

    def _owned_layers(self, pp: int, v: int) -> list[tuple[dict[int, int], bool, bool, int]]:
        """Per pipeline device: {representative layer: count}, first?, last?, MoE layers."""
        key = (pp, v)
        if key not in self._owned:
            model = self.w.model
            chunks = pp * v
            layers = model.num_layers
            sizes = [layers // chunks + (1 if c < layers % chunks else 0)
                     for c in range(chunks)]
            owned: list[list[int]] = [[] for _ in range(pp)]
            start = 0
            for c, n in enumerate(sizes):
                owned[c % pp] += range(start, start + n)
                start += n
            moe = getattr(model, "moe", None)
            out: dict[tuple[object, ...], tuple[dict[int, int], bool, bool, int]] = {}
            for d in range(pp):
                counts: dict[int, int] = {}
                for i in owned[d]:
                    counts[self.reps[i]] = counts.get(self.reps[i], 0) + 1
                n_moe = sum(1 for i in owned[d] if moe is not None and model.is_moe_layer(i))
                sig = (tuple(sorted(counts.items())), d == 0, d == pp - 1, n_moe)
                out.setdefault(sig, (counts, d == 0, d == pp - 1, n_moe))
            # devices holding the same blocks and ends cost the same: price each kind once
            self._owned[key] = list(out.values())
        return self._owned[key]

    def _build_stage(self, cfg: ParallelConfig) -> _Stage:
        w, device, net = self.w, self.device, self.net
        model = w.model
        shard = Shard(cfg.micro_batch, w.seq_len, cfg.tp, cfg.sequence_parallel, cfg.cp,
                      cfg.ep, 2, w.attention, w.dropout)
        times = {r: block_time(device, model, r, shard, w.dtype, w.trains_base, w.lora)
                 for r in set(self.reps)}
        emb, head = ends_time(device, model, shard, w.dtype, w.trains_base)
        g = self.groups(cfg)
        tp_layer, cp_layer, ep_moe = self._layer_comm(cfg, shard, g)
        fsdp = cfg.dp_mode in (DataParallel.FSDP, DataParallel.HSDP) and cfg.dp_shard > 1
        best: _Stage | None = None
        for counts, first, last, n_moe in self._owned_layers(cfg.pp, cfg.virtual_stages):
            parts = [(times[r], n) for r, n in counts.items()]
            if first:
                parts.append((emb, 1))
            if last:
                parts.append((head, 1))
            n_layers = sum(counts.values())
            fwd = sum(p.forward_s * n for p, n in parts)
            bwd = sum(p.backward_s * n for p, n in parts)
            fsdp_f = fsdp_b = 0.0
            if fsdp:
                # one all-gather per block each micro-batch (again in backward when
                # resharded after forward); gradients reduce-scattered per block. The ends
                # belong to the root, which FSDP2 never reshards after forward
                # (torch/distributed/fsdp/_fully_shard/_fsdp_state.py, lazy init)
                for k, (p, n) in enumerate(parts):
                    ag = net.time_s("all_gather", (p.trainable_params + p.frozen_params) * 2,
                                    g.dp_shard)
                    rs = net.time_s("reduce_scatter", p.trainable_params * 4, g.dp_shard)
                    regather = cfg.reshard_after_forward and k < len(counts)
                    fsdp_f += n * ag
                    fsdp_b += n * (rs + (ag if regather else 0.0))
            blocks = [times[r] for r in counts] or [emb]
            stage = _Stage(
                forward_s=fwd, backward_s=bwd,
                weight_grad_s=sum(p.weight_grad_s * n for p, n in parts),
                core_s=sum(p.core_forward_s * n for p, n in parts),
                tp_fwd_s=tp_layer * n_layers, cp_fwd_s=cp_layer * n_layers,
                ep_fwd_s=ep_moe * n_moe, layers=n_layers,
                saved=tuple(sum(p.saved_bytes[k] * n for p, n in parts) for k in range(3)),
                trainable=sum(p.trainable_params * n for p, n in parts),
                frozen=sum(p.frozen_params * n for p, n in parts),
                block_params=max(b.trainable_params + b.frozen_params for b in blocks),
                fsdp_fwd_s=fsdp_f, fsdp_bwd_s=fsdp_b, fsdp_hidden_fwd_s=fwd,
                fsdp_hidden_bwd_s=bwd, flops=sum(p.flops * n for p, n in parts),
                core_flops=sum(p.core_flops * n for p, n in parts),
                workspace=max(p.largest_output_bytes for p, _ in parts) * 2
                + (head.saved_bytes[0] if last else 0))
            if best is None or _stage_time(stage) > _stage_time(best):
                best = stage
        assert best is not None
        return best

    def _layer_comm(self, cfg: ParallelConfig, shard: Shard, g) -> tuple[float, float, float]:
        """Forward seconds per block of the TP, CP and (MoE blocks') EP collectives."""
        model, net = self.w.model, self.net
        h, isz = model.hidden_size, shard.itemsize
        act = shard.tokens * h * isz
        tp_layer = cp_layer = ep_moe = 0.0
        if cfg.tp > 1:
            per = (net.time_s("all_gather", act, g.tp) + net.time_s("reduce_scatter", act, g.tp)
                   if cfg.sequence_parallel else net.time_s("all_reduce", act, g.tp))
            tp_layer = 2 * per
        if cfg.cp > 1:
            _, hkv = local_heads(model, cfg.tp)
            kv = 2 * shard.tokens * hkv * model.head_dim * isz * cfg.cp
            cp_layer = net.time_s("all_gather", kv, g.cp)
        moe = getattr(model, "moe", None)
        if moe is not None and cfg.ep > 1:
            ep_moe = 2 * net.time_s("all_to_all",
                                    shard.tokens * moe.experts_per_token * h * isz, g.ep)
        return tp_layer, cp_layer, ep_moe


def _exposed(comm_s: float, hidden_s: float, ov: Overlap) -> float:
    return comm_s if ov is Overlap.NONE else max(0.0, comm_s - hidden_s)


def _bubble(cfg: ParallelConfig, f: float, b: float, w: float) -> float:
    if cfg.pp == 1:
        return 0.0
    p, v = cfg.pp - 1, cfg.virtual_stages
    s = cfg.schedule
    if s in (PipelineSchedule.GPIPE, PipelineSchedule.ONE_F_ONE_B):
        return p * (f + b)
    if s is PipelineSchedule.INTERLEAVED_1F1B:
        return p * (f + b) / v
    if s is PipelineSchedule.INTERLEAVED_ZB:
        return p * max(0.0, f + b - 2 * w) / v
    return p * max(0.0, f + b - 3 * w)


def _optimizer_bytes(cfg: ParallelConfig, trainable: float) -> float:
    """AdamW with gradient clipping over the device's optimizer shard: fp32 master read and
    written (8), gradient read twice (norm, update: 8), two moments read and written (16),
    bf16 weight written (2)."""
    shard = cfg.dp if cfg.dp_mode is not DataParallel.REPLICATE else 1
    if cfg.dp_mode is DataParallel.HSDP:
        shard = cfg.dp_shard
    return trainable / shard * (8 + 8 + 16 + 2)


def _dp_exposed(cfg: ParallelConfig, net, g, st: _Stage, b: float, ov: Overlap) -> float:
    """Gradient synchronisation after the last micro-batch (FSDP's per-block collectives
    are counted per micro-batch in `_stage`)."""
    grads = st.trainable * 4
    if cfg.dp == 1 or grads == 0:
        return 0.0
    mode = cfg.dp_mode
    if mode is DataParallel.REPLICATE:
        comm = net.time_s("all_reduce", grads, g.dp)
        tail = net.time_s("all_reduce", min(grads, DDP_BUCKET_BYTES), g.dp)
    elif mode is DataParallel.ZERO1:
        comm = net.time_s("reduce_scatter", grads, g.dp)
        tail = net.time_s("reduce_scatter", min(grads, DDP_BUCKET_BYTES), g.dp)
        tail += net.time_s("all_gather", st.trainable * 2, g.dp)  # updated weights
        comm += net.time_s("all_gather", st.trainable * 2, g.dp)
    elif mode is DataParallel.HSDP:
        return net.time_s("all_reduce", grads / cfg.dp_shard, g.dp_replicate)
    else:
        return 0.0
    if ov is Overlap.NONE:
        return comm
    return max(tail, comm - b)


def _recompute_flops(cfg: ParallelConfig, st: _Stage) -> float:
    if cfg.recompute is Recompute.FULL:
        return st.flops
    if cfg.recompute is Recompute.SELECTIVE:
        return st.core_flops
    return 0.0


def _memory(cfg: ParallelConfig, device: Device, st: _Stage, m: int) -> MemoryBreakdown:
    weights, grads, opt = state_bytes(cfg, st.trainable, st.frozen, st.block_params)
    idx = list(Recompute).index(cfg.recompute)
    acts = st.saved[idx] * in_flight(cfg, m)
    return MemoryBreakdown(weights, grads, opt, acts, st.workspace, device.hbm_bytes)


def model_flops_per_step(w: TrainWorkload) -> float:
    """Model FLOPs of one step: forward x 3 (forward, input and weight gradients; x 2 when
    only LoRA adapters train), recomputation not counted."""
    return _model_flops(w.model, w.seq_len, w.attention, w.trains_base, w.dropout) \
        * w.global_batch


@functools.lru_cache(maxsize=256)
def _model_flops(cfg, seq_len: int, attention, trains_base: bool, dropout: bool) -> float:
    from tessera.plan.layers import block_ops, head_ops

    shard = Shard(1, seq_len, attention=attention, dropout=dropout)
    total = 0.0
    for i in range(cfg.num_layers):
        total += sum(_flops(op) for op in block_ops(cfg, i, shard) if not op.fused)
    total += sum(_flops(op) for op in head_ops(cfg, shard))
    return total * (3 if trains_base else 2)


def _flops(op) -> float:
    from tessera.kernels import registry

    if op.kernel == "copy":
        return 0.0
    return float(registry.get(op.kernel).flops(dict(op.shapes))) * op.calls


def _stage_time(s: _Stage) -> float:
    return s.forward_s + s.backward_s + s.tp_fwd_s * 2 + s.cp_fwd_s * 2 + s.ep_fwd_s * 2
