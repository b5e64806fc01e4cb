"""Write a chosen configuration as a TorchTitan-style job file (TOML).

    >>> from tessera.plan.emit import torchtitan_toml
    >>> text = torchtitan_toml(plan.best, plan.workload)

Sections and keys follow TorchTitan's job config (torchtitan/config/job_config.py):
[model], [training] (local and global batch, sequence length, mixed precision),
[parallelism] (data_parallel_replicate_degree, data_parallel_shard_degree,
fsdp_reshard_after_forward, tensor_parallel_degree, pipeline_parallel_degree,
pipeline_parallel_schedule, pipeline_parallel_microbatch_size, context_parallel_degree,
expert_parallel_degree) and [activation_checkpoint] (mode). What TorchTitan has no key
for (sequence parallelism as a switch, ZeRO-1, the logical-core size, the prediction) goes
in a [tessera] section that the parallel-execution layer reads and TorchTitan ignores.
"""

from __future__ import annotations

from pathlib import Path

from tessera.plan.errors import PlanError
from tessera.plan.search import PlanRow
from tessera.plan.space import DataParallel
from tessera.plan.workload import TrainWorkload

JOB_FILE = "job.toml"


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _section(name: str, items: dict[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in items.items())


def torchtitan_toml(row: PlanRow, w: TrainWorkload) -> str:
    """The job file text of one planned configuration."""
    c, e = row.config, row.estimate
    sharded = c.dp_mode in (DataParallel.FSDP, DataParallel.HSDP)
    parallelism = {
        "data_parallel_replicate_degree": c.dp_replicate if sharded else c.dp,
        "data_parallel_shard_degree": c.dp_shard if sharded else 1,
        "fsdp_reshard_after_forward": "default" if c.reshard_after_forward else "never",
        "tensor_parallel_degree": c.tp,
        "pipeline_parallel_degree": c.pp,
        "pipeline_parallel_schedule": c.schedule.torchtitan_name,
        "pipeline_parallel_microbatch_size": c.micro_batch,
        "context_parallel_degree": c.cp,
        "expert_parallel_degree": c.ep,
    }
    parts = [
        "# Written by `tessera plan train --emit`: the configuration ranked first.\n",
        _section("job", {"description": f"{w.model_name} on {e.instances} x {row.instance}"}),
        _section("model", {"name": w.model_name}),
        _section("training", {
            "local_batch_size": c.micro_batch * c.micro_batches(w.global_batch),
            "global_batch_size": w.global_batch, "seq_len": w.seq_len,
            "mixed_precision_param": "bfloat16", "mixed_precision_reduce": "float32"}),
        _section("parallelism", parallelism),
        _section("activation_checkpoint", {"mode": c.recompute.value}),
        _section("tessera", {
            "instance": row.instance, "instances": e.instances, "devices": e.devices,
            "data_parallel": c.dp_mode.value, "sequence_parallel": c.sequence_parallel,
            "virtual_stages": c.virtual_stages, "lnc": c.lnc, "dtype": w.dtype.value,
            "attention": w.attention.value, "predicted_step_time_s": e.step_time_s,
            "predicted_tokens_per_s": e.tokens_per_s, "predicted_mfu": e.mfu,
            "memory_per_device_bytes": e.memory.total_bytes}),
    ]
    return "\n".join(parts)


def write_job(row: PlanRow, w: TrainWorkload, directory: str | Path) -> Path:
    """Write `job.toml` into `directory` (created if needed); returns its path."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / JOB_FILE
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(torchtitan_toml(row, w))
        tmp.replace(path)
    except OSError as err:
        raise PlanError(f"--emit {directory}: cannot write the job file ({err.strerror})") \
            from None
    return path
