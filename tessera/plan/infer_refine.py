"""Re-evaluating inference deployments at SIMULATED fidelity.

ROOFLINE prices every op as max(compute, memory) plus one DMA's latency: a lower bound. A
decode step of a large model is many small ops whose fixed costs ROOFLINE leaves out, so
its TPOT is optimistic by up to 2x on Neuron. `refine` re-prices chosen deployments with
the library kernels tuned and profiled by `tessera.sim` (`tessera.cost`, SIMULATED): a dry
run at ROOFLINE collects every kernel shape the deployments ask for, those shapes are tuned
side by side (`tessera.cost.batch`), then each deployment is evaluated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tessera import cost
from tessera.cost.batch import BatchStep, EstimateRequest, tune_missing
from tessera.cost.executor import BatchExecutor
from tessera.hw import ChipSpec
from tessera.plan.devices import Device
from tessera.plan.errors import PlanError


def refine(spec, rows: Sequence, workload_of: Callable, evaluate: Callable,  # noqa: ANN001
           executor: BatchExecutor | None = None,
           progress: Callable[[BatchStep], None] | None = None) -> list:
    """`rows` (InferEstimates on instance `spec`) evaluated again at SIMULATED fidelity;
    GPU rows unchanged. `workload_of(row)` gives the row's workload and
    `evaluate(w, device, serving, instances)` prices it."""
    if not isinstance(spec.chip, ChipSpec):
        return list(rows)
    requests: set = set()
    for row in rows:
        dry = Device.create(spec, row.serving.lnc).recording()
        evaluate(workload_of(row), dry, row.serving, row.instances)
        requests |= dry.recorder or set()
    tune_recorded(spec.chip.name, requests, executor, progress)
    out = []
    for row in rows:
        device = Device.create(spec, row.serving.lnc, cost.Fidelity.SIMULATED)
        out.append(evaluate(workload_of(row), device, row.serving, row.instances))
    return out


def tune_recorded(chip: str, requests: set, executor: BatchExecutor | None = None,
                  progress: Callable[[BatchStep], None] | None = None) -> None:
    """Tune, side by side, the kernel shapes a dry run (`Device.recording`) collected."""
    reqs = [EstimateRequest(op, dict(shapes), dtype) for op, shapes, dtype in sorted(requests)]
    try:
        tune_missing(reqs, chip, executor=executor, progress=progress)
    except cost.CostError as err:
        raise PlanError(f"--fidelity simulated: {err}") from None
