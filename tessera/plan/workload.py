"""What is trained: model, sequence, global batch, training mode and precision.

    >>> from tessera.plan.workload import TrainWorkload
    >>> w = TrainWorkload.create("llama3-8b", seq_len=8192, global_batch=256)
    >>> w.tokens_per_step
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tessera.models.config import PRESETS, ModelConfig, ModelFamily
from tessera.plan.errors import PlanError


class TrainingMode(Enum):
    """Which weights learn (and so carry gradients and optimizer state)."""

    PRETRAIN = "pretrain"
    FULL_FINETUNE = "full"  # every weight trains, as in pre-training
    LORA = "lora"  # frozen base weights; low-rank adapters train


class TrainDtype(Enum):
    """Training precision of the matmuls (bf16 mixed precision with fp32 master weights in
    every mode; fp8 and MX-fp8 change the matmul rate, as the vendor and NVIDIA recipes
    run them)."""

    BF16 = "bf16"
    FP8 = "fp8"
    MXFP8 = "mxfp8"


class AttentionImpl(Enum):
    """How attention runs. FLASH (tiled, scores never in HBM) is what today's stacks run;
    MATERIALIZED (scores, softmax and dropout in HBM: two batched matmuls around a softmax)
    is what Megatron-LM ran before fused attention (Korthikanti et al. 2022)."""

    FLASH = "flash"
    MATERIALIZED = "materialized"


# Hugging Face PEFT's usual LoRA targets: the attention and MLP projections
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters: rank r and the projections that carry one (names as in
    `LORA_TARGETS`; GPT-style models use q, k, v for the fused qkv projection)."""

    rank: int = 16
    targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise PlanError(f"--lora-rank: {self.rank!r} is not a positive integer")
        bad = [t for t in self.targets if t not in LORA_TARGETS]
        if bad or not self.targets:
            raise PlanError(f"--lora-targets: {bad or 'none'} not among {list(LORA_TARGETS)}")


@dataclass(frozen=True)
class TrainWorkload:
    """One training job: `global_batch` sequences of `seq_len` tokens per optimizer step."""

    model: ModelConfig
    model_name: str
    seq_len: int
    global_batch: int
    mode: TrainingMode = TrainingMode.PRETRAIN
    dtype: TrainDtype = TrainDtype.BF16
    lora: LoraConfig | None = None
    attention: AttentionImpl = AttentionImpl.FLASH
    dropout: bool = False  # dropout on attention probabilities and block outputs (GPT-3)

    def __post_init__(self) -> None:
        for name in ("seq_len", "global_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise PlanError(f"--{name.replace('_', '-')}: {v!r} is not a positive integer")
        if self.model.family is ModelFamily.BERT and self.mode is TrainingMode.LORA:
            raise PlanError("--mode lora: LoRA planning covers decoder models, not bert")
        if (self.mode is TrainingMode.LORA) != (self.lora is not None):
            object.__setattr__(self, "lora", LoraConfig() if self.mode is TrainingMode.LORA
                               else None)

    @classmethod
    def create(cls, model: str | ModelConfig, seq_len: int, global_batch: int,
               mode: TrainingMode | str = TrainingMode.PRETRAIN,
               dtype: TrainDtype | str = TrainDtype.BF16, lora: LoraConfig | None = None,
               attention: AttentionImpl | str = AttentionImpl.FLASH,
               dropout: bool = False, name: str | None = None) -> TrainWorkload:
        """A workload from a zoo name (`tessera.models.PRESETS`) or a `ModelConfig`
        (displayed as `name`, default "custom")."""
        name_, cfg = resolve_model(model)
        name = name or name_
        return cls(cfg, name, seq_len, global_batch, _enum(TrainingMode, mode, "--mode"),
                   _enum(TrainDtype, dtype, "--dtype"), lora,
                   _enum(AttentionImpl, attention, "--attention"), dropout)

    @property
    def tokens_per_step(self) -> int:
        """Tokens consumed per optimizer step."""
        return self.seq_len * self.global_batch

    @property
    def trains_base(self) -> bool:
        """Whether the base weights train (everything but LoRA)."""
        return self.mode is not TrainingMode.LORA


def resolve_model(model: str | ModelConfig) -> tuple[str, ModelConfig]:
    """(display name, config) of a zoo name or a config."""
    if isinstance(model, ModelConfig):
        return "custom", model
    if model not in PRESETS:
        known = ", ".join(n for n in PRESETS if not n.startswith("tiny-"))
        raise PlanError(f"--model: unknown model {model!r}; known: {known}")
    return model, PRESETS[model]


def _enum(kind: type[Enum], value: object, option: str):  # type: ignore[no-untyped-def]
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = "|".join(str(m.value) for m in kind)  # type: ignore[attr-defined]
        raise PlanError(f"{option}: {value!r} is not one of {choices}") from None
