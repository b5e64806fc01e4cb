"""How a model is served: the stack (vLLM with the Neuron plugin, or NxD Inference), its
static-shape buckets, and the options users set.

Both stacks compile one graph per static shape and pad each step up to it:
- vLLM Neuron [VLLMN]: prefill steps run the graph of the smallest
  `num_batched_tokens_buckets` entry holding the step's tokens (default: powers of two from
  128 to `max_num_batched_tokens`), decode steps the graph of the smallest
  `num_seqs_buckets` entry holding the batch; decode attention reads
  ceil(max_model_len / block_size) KV blocks per request unless decode context-length
  buckets are configured, when it reads the smallest bucket holding the context.
- NxD Inference [NXDI]: context-encoding buckets and token-generation buckets over the
  sequence length (powers of two from 128 up to `max_context_length` / `seq_len` by
  default); batch size fixed at compile time.

[VLLMN] AWS Neuron docs, "vLLM Neuron additional configuration" and "Decode Context-Length
Bucketing". [NXDI] AWS Neuron docs, "NxD Inference bucketing".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum

from tessera.hw import ChipSpec, InstanceSpec
from tessera.plan.errors import PlanError

MIN_BUCKET = 128


class ServingStack(Enum):
    """The serving software: vLLM with the Neuron plugin, or NxD Inference."""

    VLLM = "vllm"
    NXDI = "nxdi"


class WeightDtype(Enum):
    """Weights in HBM: bf16, or quantised weight-only (dequantised in the matmul)."""

    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"

    @property
    def itemsize(self) -> int:
        """Bytes per weight."""
        return 2 if self is WeightDtype.BF16 else 1


def default_stack(instance: InstanceSpec) -> ServingStack:
    """vLLM Neuron on trn2/trn3 (NxD Inference is end-of-support there since Neuron 2.34),
    NxD Inference on trn1/inf2 (maintenance), vLLM on GPUs."""
    chip = instance.chip
    if isinstance(chip, ChipSpec) and chip.name in ("trn1", "inf2"):
        return ServingStack.NXDI
    return ServingStack.VLLM


def powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    """lo, 2 lo, 4 lo, ... up to hi, and hi itself (the stacks' default bucket ladders)."""
    if hi < 1:
        raise PlanError(f"a bucket ladder needs a positive top, not {hi}")
    out = []
    b = min(lo, hi)
    while b < hi:
        out.append(b)
        b *= 2
    out.append(hi)
    return tuple(out)


def bucket_of(value: int, buckets: tuple[int, ...], what: str) -> int:
    """The smallest bucket holding `value` (a PlanError naming `what` when none does)."""
    i = bisect.bisect_left(buckets, value)
    if i == len(buckets):
        raise PlanError(f"{what} {value} exceeds the largest bucket {buckets[-1]}")
    return buckets[i]


@dataclass(frozen=True)
class ServingConfig:
    """One deployment on one instance: `replicas` copies of the model, each over `tp`
    devices, serving batches of up to `max_num_seqs` requests of up to `max_model_len`
    tokens."""

    stack: ServingStack
    tp: int
    replicas: int = 1  # data-parallel copies on the instance(s)
    lnc: int = 1
    max_num_seqs: int = 8
    max_model_len: int = 4096
    block_size: int = 32
    max_num_batched_tokens: int = 4096
    weight_dtype: WeightDtype = WeightDtype.BF16
    kv_fp8: bool = False
    sequence_parallel: bool = False
    on_device_sampling: bool = True
    context_buckets: bool = False  # vLLM: decode context-length buckets configured
    # False on GPUs: vLLM runs prefill at its exact shape and paged attention reads only the
    # context (CUDA graphs pad the decode batch only)
    static_shapes: bool = True
    # vLLM Neuron schedules the next step while the device runs this one (on by default,
    # needs on-device sampling); NxD Inference's async_mode is off by default
    async_scheduling: bool = True
    prefill_buckets: tuple[int, ...] = field(default=())  # () = the stack's default ladder
    decode_seq_buckets: tuple[int, ...] = field(default=())
    decode_context_buckets: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("tp", "replicas", "lnc", "max_num_seqs", "max_model_len", "block_size",
                     "max_num_batched_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PlanError(f"--{name.replace('_', '-')}: {v!r} is not a positive integer")

    @property
    def prefill_ladder(self) -> tuple[int, ...]:
        """Prefill / context-encoding buckets (tokens)."""
        if self.prefill_buckets:
            return tuple(sorted(self.prefill_buckets))
        top = (self.max_num_batched_tokens if self.stack is ServingStack.VLLM
               else self.max_model_len)
        return powers_of_two(MIN_BUCKET, top)

    @property
    def seq_ladder(self) -> tuple[int, ...]:
        """Decode batch buckets (sequences); NxD Inference compiles one batch size."""
        if self.decode_seq_buckets:
            return tuple(sorted(self.decode_seq_buckets))
        if self.stack is ServingStack.NXDI:
            return (self.max_num_seqs,)
        return powers_of_two(1, self.max_num_seqs)

    @property
    def context_ladder(self) -> tuple[int, ...]:
        """Decode context buckets (tokens of KV read per request per step)."""
        if self.decode_context_buckets:
            return tuple(sorted(self.decode_context_buckets))
        if self.stack is ServingStack.VLLM and not self.context_buckets:
            # every request reads all ceil(max_model_len / block_size) blocks [VLLMN]
            blocks = -(-self.max_model_len // self.block_size)
            return (blocks * self.block_size,)
        return powers_of_two(MIN_BUCKET, self.max_model_len)

    def label(self) -> str:
        """`vllm tp8 x2 seqs8 len4096 bs32 fp8-kv`."""
        parts = [self.stack.value, f"tp{self.tp}"]
        if self.replicas > 1:
            parts.append(f"x{self.replicas}")
        parts += [f"seqs{self.max_num_seqs}", f"len{self.max_model_len}"]
        if self.weight_dtype is not WeightDtype.BF16:
            parts.append(f"w-{self.weight_dtype.value}")
        if self.kv_fp8:
            parts.append("fp8-kv")
        if self.context_buckets:
            parts.append("ctx-buckets")
        if self.lnc > 1:
            parts.append(f"lnc{self.lnc}")
        return " ".join(parts)
