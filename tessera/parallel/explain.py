"""From a real run to a prediction: what one step of a layout communicates and costs.

    e = explain(ParallelismConfig(tp=2, dp_shard=2), TrainSettings(), "trn1.32xlarge")
    print(render(e))

The layout runs for real on local ranks (`launch.spawn`, gloo): its last step runs under
the collective recorder (`record.py`, PyTorch's comm-debug mode with each call's bytes and
group) and the compiler's eager profiling (`tessera.compiler.eager_profile`: each ATen op a
rank dispatches, on its own shards, priced on the instance's chip at ROOFLINE). Each
recorded collective is then priced by `tessera.net` on the instance topology as a
collective inside a compiled graph, for the same ranks. A rank's step is its compute plus
its collectives (no overlap: an upper bound where the compiler overlaps them); with a
pipeline the slowest rank's step grows by the schedule's bubble, (pp - 1) / (m v) of it for
m micro-batches and v stages per rank. The ops run in the dtype they run in here (fp32).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

from tessera import hw
from tessera.net import CollectiveModel, NetError
from tessera.parallel.config import MESH_DIMS, ParallelismConfig
from tessera.parallel.errors import ParallelError
from tessera.parallel.launch import spawn
from tessera.parallel.record import CollectiveCall, mesh_dim_of
from tessera.parallel.train import TrainSettings, train


@dataclass(frozen=True)
class CommLine:
    """The collectives of one kind over one mesh dimension on one rank, per step."""

    op: str
    dim: str
    group_size: int
    calls: int
    n_bytes: int
    predicted_s: float


@dataclass(frozen=True)
class RankStep:
    """One rank's recorded step and its prediction."""

    rank: int
    ops: int
    compute_s: float
    comm: tuple[CommLine, ...]

    @property
    def comm_s(self) -> float:
        """Its collectives' predicted time."""
        return sum(c.predicted_s for c in self.comm)

    @property
    def total_s(self) -> float:
        """Compute plus collectives (no overlap)."""
        return self.compute_s + self.comm_s


@dataclass(frozen=True)
class Explanation:
    """A layout's step on an instance: per rank, and the predicted step time."""

    config: ParallelismConfig
    settings: TrainSettings
    instance: str
    instances: int
    ranks: tuple[RankStep, ...]
    bubble_s: float

    @property
    def step_s(self) -> float:
        """The slowest rank's step plus the pipeline bubble."""
        return max(r.total_s for r in self.ranks) + self.bubble_s

    @property
    def tokens_per_s(self) -> float:
        """Training tokens per second at that step time."""
        return self.settings.batch * self.settings.seq_len / self.step_s


def _rank_main(rank: int, world: int, cfg: ParallelismConfig, settings: TrainSettings):  # noqa: ANN202
    r = train(cfg, settings)
    return r.collectives, r.compute_s or 0.0, r.ops


def explain(cfg: ParallelismConfig, settings: TrainSettings, instance: str, *,
            timeout_s: float = 300.0) -> Explanation:
    """Run `cfg` for real on local ranks, record its last step and price it on `instance`."""
    try:
        spec = hw.load_instance(instance)
    except hw.HwError as err:
        raise ParallelError(f"--instance {instance!r}: {err}") from None
    gpu = not isinstance(spec.chip, hw.ChipSpec)
    per_instance = spec.chip_count if gpu else spec.logical_cores(1)
    world = cfg.world_size
    instances = max(1, math.ceil(world / per_instance))
    chip = spec.chip.name
    recorded = spawn(_rank_main, world, timeout_s=timeout_s,
                     args=(cfg, _with(settings, chip)))
    try:
        net = CollectiveModel.for_instance(spec.name, ranks=world, instances=instances,
                                           lnc=None if gpu else 1)
    except NetError as err:
        raise ParallelError(f"{world} ranks on {instance}: {err}") from None
    ranks = tuple(RankStep(r, ops, compute, _priced(calls, cfg, net, gpu))
                  for r, (calls, compute, ops) in enumerate(recorded))
    bubble = 0.0
    if cfg.pp > 1:
        v = cfg.virtual_stages if cfg.schedule.multi_stage else 1
        bubble = (cfg.pp - 1) / (cfg.microbatches * v) * max(r.total_s for r in ranks)
    return Explanation(cfg, settings, spec.name, instances, ranks, bubble)


def _with(settings: TrainSettings, chip: str) -> TrainSettings:
    # two steps, the second recorded: a pipeline's first step also exchanges the stages'
    # shapes, which a steady step does not
    return replace(settings, steps=2, record=True, profile_chip=chip)


def _priced(calls: tuple[CollectiveCall, ...], cfg: ParallelismConfig,
            net: CollectiveModel, gpu: bool) -> tuple[CommLine, ...]:
    sums: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for c in calls:
        if len(c.group) < 2 or c.n_bytes == 0:
            continue
        op, group = ("send_recv", c.group[:2]) if c.op == "send" else (c.op, c.group)
        try:
            t = net.cost(op, c.n_bytes, group=group, in_graph=not gpu).time_s
        except NetError as err:
            raise ParallelError(f"{c.op} of {c.n_bytes} bytes over {group}: {err}") from None
        key = (c.op, mesh_dim_of(c.group, cfg.degrees, MESH_DIMS), len(c.group))
        entry = sums[key]
        entry[0] += 1
        entry[1] += c.n_bytes
        entry[2] += t
    return tuple(CommLine(op, dim, size, int(n), int(b), t)
                 for (op, dim, size), (n, b, t) in sorted(sums.items()))


def render(e: Explanation) -> str:
    """The explanation as the CLI prints it."""
    cfg = e.config
    lines = [f"{e.settings.model.num_layers}-layer {e.settings.model.family.value} "
             f"(hidden {e.settings.model.hidden_size}), batch {e.settings.batch} x "
             f"{e.settings.seq_len} tokens; layout "
             + " x ".join(f"{n} {d}" for n, d in zip(MESH_DIMS, cfg.degrees, strict=True)
                          if d > 1) + f" = {cfg.world_size} ranks on {e.instances} x "
             f"{e.instance}", "",
             f"{'ranks':>9} {'collective':15} {'over':9} {'group':>5} {'calls':>6} "
             f"{'bytes/step':>12} {'predicted':>11}"]
    alike = _alike(e.ranks)
    for names, r in alike:
        for c in r.comm:
            lines.append(f"{names:>9} {c.op:15} {c.dim:9} {c.group_size:>5} {c.calls:>6} "
                         f"{c.n_bytes:>12,} {c.predicted_s * 1e6:>9.1f}us")
    lines.append("")
    lines.append(f"{'ranks':>9} {'ATen ops':>9} {'compute':>11} {'collectives':>12} "
                 f"{'step':>11}")
    for names, r in alike:
        lines.append(f"{names:>9} {r.ops:>9} {r.compute_s * 1e6:>9.1f}us "
                     f"{r.comm_s * 1e6:>10.1f}us {r.total_s * 1e6:>9.1f}us")
    if e.bubble_s:
        lines.append(f"pipeline bubble {e.bubble_s * 1e6:.1f} us")
    lines.append(f"predicted step {e.step_s * 1e6:,.1f} us ({e.tokens_per_s:,.0f} tokens/s) "
                 "on the slowest rank, collectives not overlapped with compute")
    return "\n".join(lines)


def _alike(ranks: tuple[RankStep, ...]) -> list[tuple[str, RankStep]]:
    """Ranks with the same collectives and compute, shown once ("0-3", "0,2")."""
    groups: dict[tuple, list[RankStep]] = {}
    for r in ranks:
        groups.setdefault((r.comm, round(r.compute_s, 12), r.ops), []).append(r)
    out = []
    for members in groups.values():
        ids = [m.rank for m in members]
        contiguous = ids == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2
        out.append((f"{ids[0]}-{ids[-1]}" if contiguous else ",".join(map(str, ids)),
                    members[0]))
    return out


def as_json(e: Explanation) -> dict[str, object]:
    """The explanation as one JSON object."""
    return {"instance": e.instance, "instances": e.instances, "config": e.config.as_dict(),
            "step_s": e.step_s, "tokens_per_s": e.tokens_per_s, "bubble_s": e.bubble_s,
            "ranks": [{"rank": r.rank, "ops": r.ops, "compute_s": r.compute_s,
                       "comm_s": r.comm_s, "collectives": [
                           {"op": c.op, "over": c.dim, "group_size": c.group_size,
                            "calls": c.calls, "bytes": c.n_bytes,
                            "predicted_s": c.predicted_s} for c in r.comm]}
                      for r in e.ranks]}
