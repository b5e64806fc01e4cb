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
Beside it: `torchrun.sh` (the job on one instance) and `sbatch.sh` (N instances under
Slurm, one task per node, torchrun's c10d rendezvous on the first node from `SLURM_*`),
both running `python -m tessera.parallel.run --config job.toml`.
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


TORCHRUN_FILE, SBATCH_FILE = "torchrun.sh", "sbatch.sh"
# what every rank needs on these machines: one thread per process (more ran 10-80x slower)
_ENV = "export OMP_NUM_THREADS=1\n"


def torchrun_script(row: PlanRow) -> str:
    """The shell script that starts the job's ranks on one instance with torchrun (on each
    instance, with the first one's address in MASTER_ADDR, when the job spans several)."""
    per_node = row.estimate.devices // row.estimate.instances
    nodes = row.estimate.instances
    if nodes == 1:
        launch = f"torchrun --standalone --nproc-per-node {per_node}"
    else:
        launch = (f"torchrun --nnodes {nodes} --nproc-per-node {per_node} --rdzv-backend c10d "
                  '--rdzv-endpoint "${MASTER_ADDR:?set MASTER_ADDR to the first instance}:'
                  '${MASTER_PORT:-29500}" --rdzv-id "${JOB_ID:-tessera}"')
    return ("#!/bin/bash\n# Written by `tessera plan train --emit`: the job's ranks on this "
            f"instance ({nodes} instance{'s' if nodes > 1 else ''} in all).\n"
            "set -euo pipefail\ncd \"$(dirname \"$0\")\"\n" + _ENV
            + launch + ' -m tessera.parallel.run --config job.toml "$@"\n')


def sbatch_script(row: PlanRow, w: TrainWorkload) -> str:
    """A Slurm batch script for the job's instances: one task per node, each starting
    torchrun with a c10d rendezvous on the first node (hosts and job id from SLURM_*)."""
    per_node = row.estimate.devices // row.estimate.instances
    nodes = row.estimate.instances
    return (
        "#!/bin/bash\n# Written by `tessera plan train --emit`: submit with `sbatch sbatch.sh`.\n"
        f"#SBATCH --job-name=tessera-{w.model_name}\n#SBATCH --nodes={nodes}\n"
        "#SBATCH --ntasks-per-node=1\n#SBATCH --exclusive\n"
        "set -euo pipefail\n" + _ENV
        + 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        f'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node {per_node} '
        '--rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head_node:29500" '
        '-m tessera.parallel.run --config "$SLURM_SUBMIT_DIR/job.toml"\n')


def write_job(row: PlanRow, w: TrainWorkload, directory: str | Path) -> Path:
    """Write `job.toml`, `torchrun.sh` (one instance) and `sbatch.sh` (Slurm, all the
    instances) into `directory` (created if needed); returns the job file's path."""
    out = Path(directory)
    files = {JOB_FILE: torchtitan_toml(row, w), TORCHRUN_FILE: torchrun_script(row),
             SBATCH_FILE: sbatch_script(row, w)}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out / name
            tmp = path.with_name(name + ".tmp")
            tmp.write_text(text)
            if name.endswith(".sh"):
                tmp.chmod(0o755)
            tmp.replace(path)
    except OSError as err:
        raise PlanError(f"--emit {directory}: cannot write the job files ({err.strerror})") \
            from None
    return out / JOB_FILE
