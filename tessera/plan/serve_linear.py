"""A step cost linear in the step's work: for tests, benchmarks and back-of-envelope runs
of the serving simulation before a calibrated model is at hand.

    step_s = fixed_s + per_prefill_token_s * prefill_tokens + per_seq_s * decode_seqs
             + per_context_token_s * total_context_tokens

The defaults are Llama-3-8B-like magnitudes for one replica (a decode step of about 10 ms
plus 0.05 ms per sequence, a prefill of about 0.08 ms per token); they are not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.plan.serve_types import ServeError, StepBatch


@dataclass(frozen=True)
class LinearStepCost:
    """A `StepCostModel` whose step time is linear in the step's tokens, sequences and
    context."""

    fixed_s: float = 10e-3
    per_prefill_token_s: float = 0.08e-3
    per_seq_s: float = 0.05e-3
    per_context_token_s: float = 0.0
    kv_blocks: int = 4096
    block_size: int = 32

    def __post_init__(self) -> None:
        for name in ("fixed_s", "per_prefill_token_s", "per_seq_s", "per_context_token_s"):
            if getattr(self, name) < 0:
                raise ServeError(f"LinearStepCost.{name} is negative")
        if self.fixed_s + self.per_prefill_token_s + self.per_seq_s <= 0:
            raise ServeError("LinearStepCost prices every step at 0 s")

    def step_s(self, batch: StepBatch) -> float:
        """Seconds for the step."""
        return (self.fixed_s + self.per_prefill_token_s * batch.prefill_tokens
                + self.per_seq_s * batch.decode_seqs
                + self.per_context_token_s * batch.total_context_tokens)
