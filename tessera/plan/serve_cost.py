"""The serving simulation's step costs from the inference model (`infer_step.InferCost`).

A step the scheduler forms (`serve_types.StepBatch`) runs the graph its shape falls in: a
prefill step the prefill bucket of its new tokens after the cached context, a decode step
the batch and context buckets of its sequences (vLLM Neuron never mixes the two [SCHED]).
Upstream vLLM's mixed steps (GPUs) run every row through the matmuls at once: priced as a
prefill of the prompt tokens plus one row per decoding sequence. KV blocks per replica:
the stack's KV budget per device over one block's bytes per device.

[SCHED] vLLM Neuron design docs, "Scheduler Design" (prefill/decode separation).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tessera.plan.infer_step import InferCost
from tessera.plan.kv import memory
from tessera.plan.serve_types import StepBatch


@dataclass(frozen=True, eq=False)
class InferStepCost:
    """`StepCostModel` of one replica: steps priced by `InferCost`, KV blocks from memory."""

    cost: InferCost

    @functools.cached_property
    def kv_blocks(self) -> int:
        """KV-cache blocks one replica holds (its devices hold a share of each block)."""
        s = self.cost.serving
        mem = memory(self.cost.model, s, 1, self.cost.device.hbm_bytes)
        blocks_per_seq = -(-s.max_model_len // s.block_size)
        per_block = mem.kv_per_seq_bytes / blocks_per_seq
        free = min(mem.capacity_bytes - mem.weights_bytes - mem.workspace_bytes,
                   mem.kv_budget_bytes)
        return max(0, int(free // per_block))

    @property
    def block_size(self) -> int:
        """Tokens per KV block."""
        return self.cost.serving.block_size

    def step_s(self, batch: StepBatch) -> float:
        """Seconds of one engine step."""
        key = (batch.prefill_tokens, batch.decode_seqs, batch.max_context_tokens)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._price(batch)
        return hit

    @functools.cached_property
    def _memo(self) -> dict[tuple[int, int, int], float]:
        return {}

    def _price(self, batch: StepBatch) -> float:
        c = self.cost
        if batch.prefill_tokens and batch.decode_seqs:
            rows = batch.prefill_tokens + batch.decode_seqs
            return c.prefill_s(min(rows, c.serving.prefill_ladder[-1]),
                               max(0, batch.max_context_tokens - batch.prefill_tokens))
        if batch.prefill_tokens:
            return c.prefill_s(batch.prefill_tokens,
                               max(0, batch.max_context_tokens - batch.prefill_tokens))
        return c.decode_s(max(1, batch.decode_seqs), max(1, batch.max_context_tokens))
