"""Time of one inference engine step: a prefill chunk, or a decode step over a batch.

A step runs the graph of its bucket (`serving.py`), so its time is that of the padded
shapes: the block's library kernels (the training planner's op list, `layers.block_ops`,
forward only) on one device of the tensor-parallel group, times the layers, plus the TP
collectives of every block (2 all-reduces without sequence parallelism, an all-gather and
a reduce-scatter around each half with it), the embedding, the final norm and LM head, the
sampling, and one graph launch. Decode replaces flash attention by the library decode
attention over the bucket's KV tokens for each sequence; a prefill chunk after cached
tokens attends to them too.

    >>> cost = InferCost.create(workload_model, device, serving_config, instances=1)
    >>> cost.prefill_s(tokens=2048, context=0), cost.decode_s(seqs=8, context=4096)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from tessera.models.config import ModelConfig
from tessera.plan.comm import network
from tessera.plan.devices import Device
from tessera.plan.layers import BlockOp, Shard, block_ops, embedding_ops, head_ops
from tessera.plan.serving import ServingConfig, bucket_of
from tessera.plan.workload import TrainDtype

CALIBRATION_FILE = Path(__file__).with_name("calibration") / "serving.yaml"
DTYPE = "bfloat16"


@functools.cache
def serving_constants() -> dict[str, float]:
    """The fixed per-step costs of `calibration/serving.yaml` (each with its source)."""
    data = yaml.safe_load(CALIBRATION_FILE.read_text())
    return {k: float(v["value"]) for k, v in data["constants"].items()}


@dataclass(frozen=True)
class StepTime:
    """One step's time by term (seconds)."""

    compute_s: float  # every block's kernels
    tp_comm_s: float  # every block's collectives
    ends_s: float  # embedding, final norm, LM head
    sampling_s: float
    launch_s: float  # host time between steps the device waits for

    @property
    def total_s(self) -> float:
        """The step."""
        return self.compute_s + self.tp_comm_s + self.ends_s + self.sampling_s + self.launch_s

    def as_dict(self) -> dict[str, float]:
        """Term -> seconds."""
        return {"compute_s": self.compute_s, "tp_comm_s": self.tp_comm_s,
                "ends_s": self.ends_s, "sampling_s": self.sampling_s,
                "launch_s": self.launch_s}


def _forward_s(device: Device, ops: tuple[BlockOp, ...], weight_itemsize: int) -> float:
    """Forward seconds of `ops`; weight-only fp8/int8 weights stream at one byte each
    (activations stay bf16), which scales a weight matmul's memory term."""
    total = 0.0
    for op in ops:
        if op.fused:
            continue
        t = device.op(op.kernel, op.shapes, DTYPE, TrainDtype.BF16)
        if op.weight and op.kernel == "matmul" and weight_itemsize != 2:
            sh = dict(op.shapes)
            m, k, n = sh["M"], sh["K"], sh["N"]
            bf16 = 2 * (m * k + k * n + m * n)
            t = replace(t, memory_s=t.memory_s * (2 * (m * k + m * n) + k * n) / bf16)
        total += t.time_s * op.calls
    return total


def _decode_ops(cfg: ModelConfig, layer: int, shard: Shard, context: int,
                kv_itemsize: int) -> tuple[BlockOp, ...]:
    """A decode step's block: the prefill list at one token per sequence, with flash
    attention replaced by decode attention over `context` cached tokens (the window's span
    for sliding-window layers)."""
    out = []
    span = min(context, cfg.attention_span(layer, context))
    for op in block_ops(cfg, layer, shard):
        if op.kernel == "flash_attention":
            sh = dict(op.shapes)
            # an fp8 KV cache halves the bytes of the cached tokens the kernel streams
            tokens = span if kv_itemsize == 2 else -(-span // 2)
            out.append(BlockOp("attention", "decode_attention",
                               (("heads", sh["heads"]), ("kv_heads", sh["kv_heads"]),
                                ("tokens", tokens), ("head_dim", sh["head_dim"])),
                               shard.micro_batch))
        elif op.kernel in ("batched_matmul", "softmax") or op.name == "attn_dropout":
            continue
        else:
            out.append(op)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class InferCost:
    """Step times of one model replica (`cfg.tp` devices) under one serving config."""

    model: ModelConfig
    device: Device
    serving: ServingConfig
    instances: int = 1

    @property
    def launch_s(self) -> float:
        """Host time between two steps the device waits for: none when the next step is
        scheduled while this one runs (async scheduling with on-device sampling)."""
        s = self.serving
        if s.async_scheduling and s.on_device_sampling:
            return 0.0
        return serving_constants()["host_step_gap_s"]

    @property
    def kv_itemsize(self) -> int:
        """Bytes per cached key/value element."""
        return 1 if self.serving.kv_fp8 else 2

    def _collectives_s(self, rows: int) -> float:
        """The TP collectives of one block for `rows` tokens."""
        tp = self.serving.tp
        if tp == 1:
            return 0.0
        net = network(self.device, self.instances)
        group = tuple(range(tp))
        nbytes = rows * self.model.hidden_size * 2
        if self.serving.sequence_parallel:
            per = (net.time_s("all_gather", nbytes, group)
                   + net.time_s("reduce_scatter", nbytes, group))
        else:
            per = net.time_s("all_reduce", nbytes, group)
        return 2 * per

    def _ends(self, shard: Shard, rows: int) -> tuple[float, float]:
        """(embedding + final norm + LM head for `rows` output rows, sampling)."""
        emb = _forward_s(self.device, embedding_ops(self.model, shard), 2)
        head_shard = replace(shard, micro_batch=rows, seq_len=1)
        ops = tuple(op for op in head_ops(self.model, head_shard) if op.name != "loss")
        c = serving_constants()
        vocab = math.ceil(self.model.vocab_size / self.serving.tp)
        if self.serving.on_device_sampling:
            # a max/top-k pass over each row's logits on the device
            sample = self.device.op("softmax", (("rows", rows), ("cols", vocab)), DTYPE)
            sampling = sample.time_s + c["on_device_sampling_s"]
        else:
            logits = rows * self.model.vocab_size * 4
            sampling = logits / c["host_logits_bytes_per_s"] + c["host_sampling_s"]
        return emb + _forward_s(self.device, ops, 2), sampling

    def prefill(self, tokens: int, context: int = 0) -> StepTime:
        """A prefill (context-encoding) step of `tokens` new prompt tokens after `context`
        cached ones, padded to its bucket."""
        if not self.serving.static_shapes:
            # exact shapes: priced at the next whole tile of 128 rows (memoised per tile)
            bucket = -(-tokens // 128) * 128
        else:
            bucket = bucket_of(tokens, self.serving.prefill_ladder, "--input tokens per step")
        # the chunk's queries meet the cached keys block by block: whole blocks of its size
        return _prefill(self, bucket, -(-context // bucket) * bucket)

    def decode(self, seqs: int, context: int) -> StepTime:
        """A decode step of `seqs` sequences whose longest context is `context` tokens,
        padded to its batch and context buckets."""
        s = self.serving
        batch = bucket_of(seqs, s.seq_ladder, "--batch")
        if not s.static_shapes:
            # paged attention reads the blocks the context fills
            return _decode(self, batch, -(-context // s.block_size) * s.block_size)
        ctx = bucket_of(context, s.context_ladder, "context tokens")
        return _decode(self, batch, ctx)

    def prefill_s(self, tokens: int, context: int = 0) -> float:
        """Seconds of `prefill`."""
        return self.prefill(tokens, context).total_s

    def decode_s(self, seqs: int, context: int) -> float:
        """Seconds of `decode`."""
        return self.decode(seqs, context).total_s


@functools.lru_cache(maxsize=4096)
def _prefill(cost: InferCost, bucket: int, context: int) -> StepTime:
    m, s = cost.model, cost.serving
    shard = Shard(1, bucket, s.tp, s.sequence_parallel)
    wi = s.weight_dtype.itemsize
    compute = 0.0
    for i in range(m.num_layers):
        ops = block_ops(m, i, shard)
        if context:
            # each query block also meets the cached keys: (context + bucket) / bucket as many
            ops = tuple(replace(op, calls=op.calls * -(-(context + bucket) // bucket))
                        if op.kernel == "flash_attention" else op for op in ops)
        compute += _forward_s(cost.device, ops, wi)
    ends, sampling = cost._ends(shard, 1)
    return StepTime(compute, m.num_layers * cost._collectives_s(bucket), ends, sampling,
                    cost.launch_s)


@functools.lru_cache(maxsize=16384)
def _decode(cost: InferCost, batch: int, context: int) -> StepTime:
    m, s = cost.model, cost.serving
    shard = Shard(batch, 1, s.tp, False)
    wi = s.weight_dtype.itemsize
    reps: dict[tuple[object, ...], float] = {}
    compute = 0.0
    for i in range(m.num_layers):
        key = (i == 0, m.is_moe_layer(i), m.attention_span(i, context))
        if key not in reps:
            reps[key] = _forward_s(cost.device, _decode_ops(m, i, shard, context,
                                                            cost.kv_itemsize), wi)
        compute += reps[key]
    ends, sampling = cost._ends(shard, batch)
    return StepTime(compute, m.num_layers * cost._collectives_s(batch), ends, sampling,
                    cost.launch_s)
