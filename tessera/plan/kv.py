"""Inference memory per device: weights, the block KV cache, and the largest batch.

KV cache per sequence and device: for every layer, keys and values of the tokens it keeps
(the whole `max_model_len`, or the window of a sliding-window layer), rounded up to whole
blocks of `block_size` tokens as the block allocator holds them [VLLMN], for the KV heads
the device holds (a share of them, or one replica when tp exceeds them); multi-head latent
attention caches one compressed latent and the rope key per token, replicated over tp.
Weights: the model's parameters over tp at the weight dtype's size. Workspace: the
largest prefill step's biggest activation (twice: input and output live together) and its
logits in fp32.

[VLLMN] AWS Neuron docs, "Block KV batching and padding" (vLLM Neuron).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.models.config import ModelConfig
from tessera.plan.infer_step import serving_constants
from tessera.plan.layers import local_heads
from tessera.plan.serving import ServingConfig, ServingStack


@dataclass(frozen=True)
class InferMemory:
    """Bytes per device of one replica's deployment."""

    weights_bytes: float
    kv_per_seq_bytes: float
    kv_bytes: float  # for the configured batch
    kv_budget_bytes: float  # what the stack lets the KV cache take
    workspace_bytes: float
    capacity_bytes: float
    batch: int

    @property
    def total_bytes(self) -> float:
        """Everything resident."""
        return self.weights_bytes + self.kv_bytes + self.workspace_bytes

    @property
    def fits(self) -> bool:
        """Whether it fits in the device's HBM and the KV cache in its budget."""
        return self.total_bytes <= self.capacity_bytes and self.kv_bytes <= self.kv_budget_bytes

    @property
    def max_batch(self) -> int:
        """The most sequences whose KV cache fits beside the weights and workspace."""
        free = min(self.capacity_bytes - self.weights_bytes - self.workspace_bytes,
                   self.kv_budget_bytes)
        return max(0, int(free // self.kv_per_seq_bytes)) if self.kv_per_seq_bytes else 0

    def overflow(self) -> str:
        """One line naming the largest term and by how much it overflows, or ""."""
        if self.fits:
            return ""
        if self.total_bytes <= self.capacity_bytes:
            gib = 2**30
            return (f"the KV cache needs {self.kv_bytes / gib:.1f} GiB per device but the "
                    f"serving stack budgets {self.kv_budget_bytes / gib:.1f} GiB for it "
                    f"({self.max_batch} sequences would fit)")
        terms = {"weights": self.weights_bytes, "KV cache": self.kv_bytes,
                 "workspace": self.workspace_bytes}
        big = max(terms, key=terms.__getitem__)
        gib = 2**30
        return (f"needs {self.total_bytes / gib:.1f} GiB of {self.capacity_bytes / gib:.1f} "
                f"GiB per device ({(self.total_bytes - self.capacity_bytes) / gib:.1f} GiB "
                f"over; largest term: {big} {terms[big] / gib:.1f} GiB; {self.max_batch} "
                "sequences would fit)")


def kv_bytes_per_seq(cfg: ModelConfig, serving: ServingConfig) -> float:
    """KV cache of one sequence of `max_model_len` tokens on one device (whole blocks)."""
    itemsize = 1 if serving.kv_fp8 else 2
    block = serving.block_size
    total = 0.0
    _, kv_local = local_heads(cfg, serving.tp)
    for layer in range(cfg.num_layers):
        tokens = min(serving.max_model_len, cfg.attention_span(layer, serving.max_model_len))
        tokens = math.ceil(tokens / block) * block
        if cfg.mla is not None:
            width = cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim
            total += tokens * width * itemsize
        else:
            total += 2 * tokens * kv_local * cfg.head_dim * itemsize
    return total


def memory(cfg: ModelConfig, serving: ServingConfig, batch: int,
           capacity_bytes: float) -> InferMemory:
    """Memory per device of `batch` sequences per replica."""
    weights = cfg.num_parameters() * serving.weight_dtype.itemsize / serving.tp
    per_seq = kv_bytes_per_seq(cfg, serving)
    top = serving.prefill_ladder[-1]
    widest = max(cfg.hidden_size, cfg.intermediate_size // serving.tp,
                 (cfg.moe.expert_intermediate_size // serving.tp) if cfg.moe else 0)
    logits = max(batch, 1) * math.ceil(cfg.vocab_size / serving.tp) * 4
    workspace = 2 * top * widest * 2 + logits
    budget = capacity_bytes
    if serving.stack is ServingStack.VLLM and serving.static_shapes:
        # vLLM Neuron sizes the KV cache into the compiled graph and caps it [VLLMN features]
        c = serving_constants()
        total = capacity_bytes * c["gpu_memory_utilization"]
        budget = min(total - weights - workspace, total * c["kv_budget_fraction"])
    return InferMemory(weights, per_seq, per_seq * batch, budget, workspace, capacity_bytes,
                       batch)
