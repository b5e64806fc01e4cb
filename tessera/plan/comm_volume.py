"""What one rank communicates per training step, as the planner prices it.

    vol = step_volume(w, cfg, "trn1.32xlarge")
    vol.elements[("all_gather", "tp")]      # elements moved by TP all-gathers per step

The same collectives `step.py` times, counted in elements (an element is a bf16 activation
or weight, or an fp32 gradient in the planner's pricing; a real fp32 run moves the same
element counts at 4 bytes each), for the rank that holds the first pipeline stage (and
the last one when there is no pipeline). Per micro-batch and pass (forward, backward, and
the forward again under full recomputation): TP per block two all-reduces of the block's
activation, or under sequence parallelism two all-gathers and two reduce-scatters; the
embedding's vocabulary-parallel output reduced (all-reduce, or reduce-scatter under
sequence parallelism) in forward, the LM head's input gathered (sequence parallelism) in
forward and its gradient reduced in backward (with a loss-parallel cross-entropy, as
TorchTitan runs it, the logits are never gathered; the loss reduces three per-token values
over TP instead); under sequence parallelism each norm weight's partial-sum gradient is
all-reduced. FSDP per block an all-gather of its
weights in forward, again in backward when resharded, and a reduce-scatter of its
gradients; the root (embedding, norm, LM head) is gathered once, since FSDP2 never
reshards the root after forward. DDP one all-reduce of the gradients per step. Pipeline
one activation sent forward and one gradient sent back per micro-batch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from tessera.plan.block_time import block_time, ends_time
from tessera.plan.devices import Device, load_instance
from tessera.plan.layers import Shard
from tessera.plan.space import DataParallel, ParallelConfig, Recompute
from tessera.plan.step import Evaluator
from tessera.plan.workload import TrainWorkload


@dataclass(frozen=True)
class CommVolume:
    """Elements one rank moves per step, by (collective, parallel dimension)."""

    elements: dict[tuple[str, str], int]

    def total(self, dim: str) -> int:
        """Elements of every collective over one dimension (tp, dp_shard, dp, pp)."""
        return sum(v for (_, d), v in self.elements.items() if d == dim)


def step_volume(w: TrainWorkload, cfg: ParallelConfig, instance: str) -> CommVolume:
    """The planner's per-step collective volume of the first stage's rank under `cfg`."""
    spec = load_instance(instance)
    device = Device.create(spec, cfg.lnc if cfg.lnc else None)
    ev = Evaluator(w, device, max(1, math.ceil(cfg.world / device.per_instance)))
    model = w.model
    shard = Shard(cfg.micro_batch, w.seq_len, cfg.tp, cfg.sequence_parallel, cfg.cp,
                  cfg.ep, 2, w.attention, w.dropout)
    act = shard.tokens * model.hidden_size  # one block's activation, elements
    counts, first, last, _ = ev._owned_layers(cfg.pp, cfg.virtual_stages)[0]
    blocks = sum(counts.values())
    m = cfg.micro_batches(w.global_batch)
    passes = 3 if cfg.recompute is Recompute.FULL else 2
    out: dict[tuple[str, str], int] = defaultdict(int)
    if cfg.tp > 1:
        sp = cfg.sequence_parallel
        per_pass = {("all_gather", "tp"): 2 * act, ("reduce_scatter", "tp"): 2 * act} if sp \
            else {("all_reduce", "tp"): 2 * act}
        for key, n in per_pass.items():
            out[key] += m * passes * blocks * n
        reduce = ("reduce_scatter" if sp else "all_reduce", "tp")
        if first:
            out[reduce] += m * act  # the embedding's partial rows, forward
            if sp:
                out[("all_gather", "tp")] += m * act  # their gradient, backward
        if last:
            out[reduce] += m * act  # the LM head's input gradient, backward
            out[("all_reduce", "tp")] += m * 3 * shard.tokens  # loss parallel: max, sum, target
            if sp:
                out[("all_gather", "tp")] += m * act  # the LM head's input, forward
        if sp:
            # norm weights see sequence shards: each gradient is a partial sum, reduced once
            # per step (per micro-batch under FSDP, whose reduce-scatter needs it whole)
            norms = (2 * blocks + (1 if last else 0)) * model.hidden_size
            fsdp_on = cfg.dp_mode in (DataParallel.FSDP, DataParallel.HSDP) and cfg.dp_shard > 1
            out[("all_reduce", "tp")] += norms * (m if fsdp_on else 1)
    fsdp = cfg.dp_mode in (DataParallel.FSDP, DataParallel.HSDP) and cfg.dp_shard > 1
    params = {r: block_time(device, model, r, shard, w.dtype, w.trains_base,
                            w.lora).trainable_params for r in counts}
    block_params = sum(params[r] * n for r, n in counts.items())
    emb, head = ends_time(device, model, shard, w.dtype, w.trains_base)
    root_params = (emb.trainable_params if first else 0) + (
        head.trainable_params if last or cfg.pp == 1 else 0)
    if fsdp:
        gathers = 2 if cfg.reshard_after_forward else 1
        out[("all_gather", "dp_shard")] += m * (gathers * block_params + root_params)
        out[("reduce_scatter", "dp_shard")] += m * (block_params + root_params)
    elif cfg.dp > 1:
        out[("all_reduce", "dp")] += block_params + root_params
    if cfg.pp > 1:
        # the first rank's v chunks each send their activation on; all but the first also
        # send a gradient back
        rows = shard.tokens // (cfg.tp if cfg.sequence_parallel else 1)
        out[("send", "pp")] += (2 * cfg.virtual_stages - 1) * m * rows * model.hidden_size
    return CommVolume(dict(out))
