"""The planner: which instances, which parallelism, how fast and what it costs.

    >>> from tessera import plan
    >>> result = plan.train("llama3-8b", seq_len=8192, global_batch=256,
    ...                     instance="trn1.32xlarge", instances=[1, 2, 4])
    >>> best = result.best
    >>> best.config.label(), best.estimate.tokens_per_s, best.costs.usd_per_million_tokens

Reads `tessera.cost` (per-op times), `tessera.net` (collectives on the instance topology)
and `tessera.models` (the one `ModelConfig` type the compiler reads too); never imports
`compiler` or `parallel`. Modules: `workload` (what is trained), `space` (parallel
configurations), `layers` (a block's kernels on one device), `backward`, `block_time`,
`devices` (Neuron cores through `cost`, GPUs through `gpu`), `comm` (rank groups, `net`),
`memory`, `step` (the step time, every term named), `search` (enumerate, rank, Pareto),
`pricing`, `emit` (TorchTitan job TOML). Inference: `serving` (stacks and buckets),
`infer_step` (a prefill or decode step), `kv` (memory), `infer` (evaluate and search),
`emit_serving` (vLLM / NxD Inference config); the serving simulation `serve_*`. See
docs/plan.md and docs/infer.md.
"""

from tessera.plan.devices import Device, DeviceKind, OpTime
from tessera.plan.emit import torchtitan_toml, write_job
from tessera.plan.errors import NoFeasibleConfigError, PlanError
from tessera.plan.infer import InferEstimate, InferObjective, InferPins, InferPlan
from tessera.plan.memory import MemoryBreakdown
from tessera.plan.pricing import Costs, Price, price_of
from tessera.plan.search import Objective, Pins, PlanRow, TrainPlan, configs, train
from tessera.plan.serving import ServingConfig, ServingStack, WeightDtype
from tessera.plan.space import (
    DataParallel,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    check,
)
from tessera.plan.step import Evaluator, Overlap, StepBreakdown, StepEstimate, evaluate
from tessera.plan.workload import (
    AttentionImpl,
    LoraConfig,
    TrainDtype,
    TrainingMode,
    TrainWorkload,
)

__all__ = [
    "AttentionImpl",
    "Costs",
    "DataParallel",
    "Device",
    "DeviceKind",
    "Evaluator",
    "InferEstimate",
    "InferObjective",
    "InferPins",
    "InferPlan",
    "LoraConfig",
    "MemoryBreakdown",
    "NoFeasibleConfigError",
    "Objective",
    "OpTime",
    "Overlap",
    "ParallelConfig",
    "Pins",
    "PipelineSchedule",
    "PlanError",
    "PlanRow",
    "Price",
    "Recompute",
    "ServingConfig",
    "ServingStack",
    "StepBreakdown",
    "StepEstimate",
    "TrainDtype",
    "TrainPlan",
    "TrainWorkload",
    "TrainingMode",
    "WeightDtype",
    "check",
    "configs",
    "evaluate",
    "price_of",
    "torchtitan_toml",
    "train",
    "write_job",
]
