"""Every layout trains the small Llama like one process: the same losses and final weights.

Tolerances (fp32): losses within 1e-5 relative. Weights within 2e-5 after SGD; after AdamW
within 5e-4, because Adam divides each update by the root of the squared gradient's running
mean, so a near-zero gradient that differs only by the summation order of a sharded
reduction (1e-7) still moves its weight by up to lr per step.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tessera.models import PRESETS
from tessera.parallel.config import Checkpointing, ConfigError, ParallelismConfig, PpSchedule
from tessera.parallel.launch import spawn
from tessera.parallel.train import Optimizer, TrainSettings, train

MODEL = dataclasses.replace(PRESETS["tiny-llama"], num_layers=4)
LAYOUTS = {
    "tp2": ParallelismConfig(tp=2),
    "tp2-sp": ParallelismConfig(tp=2, sequence_parallel=True),
    "tp2-loss-parallel": ParallelismConfig(tp=2, loss_parallel=True),
    "fsdp2": ParallelismConfig(dp_shard=2),
    "ddp2": ParallelismConfig(dp_replicate=2),
    "fsdp2-full-ac": ParallelismConfig(dp_shard=2, checkpointing=Checkpointing.FULL),
    "tp2-selective-ac": ParallelismConfig(tp=2, checkpointing=Checkpointing.SELECTIVE),
    "pp2-gpipe": ParallelismConfig(pp=2, schedule=PpSchedule.GPIPE),
    "pp2-1f1b": ParallelismConfig(pp=2, schedule=PpSchedule.ONE_F_ONE_B),
    "pp2-interleaved": ParallelismConfig(pp=2, schedule=PpSchedule.INTERLEAVED_1F1B),
    "tp2-fsdp2": ParallelismConfig(tp=2, dp_shard=2),
    "tp2-pp2": ParallelismConfig(tp=2, pp=2),
    "tp2-pp2-sp-ac": ParallelismConfig(tp=2, pp=2, sequence_parallel=True,
                                    checkpointing=Checkpointing.FULL),
}


def _run(rank: int, world: int, cfg: ParallelismConfig, settings: TrainSettings):
    r = train(cfg, settings)
    return r.losses, r.params


def _merged(results: list) -> tuple[tuple[float, ...], dict[str, torch.Tensor]]:
    params: dict[str, torch.Tensor] = {}
    for _, p in results:
        params.update(p)
    assert all(r[0] == results[0][0] for r in results), "ranks logged different losses"
    return results[0][0], params


_REFERENCE: dict[Optimizer, tuple] = {}


def _reference(settings: TrainSettings) -> tuple:
    if settings.optimizer not in _REFERENCE:
        _REFERENCE[settings.optimizer] = _merged(
            spawn(_run, 1, args=(ParallelismConfig(), settings), timeout_s=60))
    return _REFERENCE[settings.optimizer]


@pytest.mark.parametrize("optimizer", [Optimizer.SGD, Optimizer.ADAMW], ids=lambda o: o.value)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_matches_one_process(name: str, optimizer: Optimizer) -> None:
    settings = TrainSettings(model=MODEL, steps=5, batch=4, seq_len=16, optimizer=optimizer,
                             lr=0.5 if optimizer is Optimizer.SGD else 1e-2)
    ref_losses, ref_params = _reference(settings)
    cfg = LAYOUTS[name]
    losses, params = _merged(spawn(_run, cfg.world_size, args=(cfg, settings), timeout_s=90))
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    assert ref_losses[-1] != ref_losses[0]  # it trained
    assert set(params) == set(ref_params)
    tol = 2e-5 if optimizer is Optimizer.SGD else 5e-4
    worst = max((params[k] - ref_params[k]).abs().max().item() for k in ref_params)
    assert worst <= tol, f"{name}: weights differ by {worst:.2e}"
    moved = max((ref_params[k] - _initial()[k]).abs().max().item() for k in ref_params)
    assert moved > 100 * tol  # the comparison is not trivially met by untrained weights


def _initial() -> dict[str, torch.Tensor]:
    from tessera.models.llama import LlamaModel

    m = LlamaModel(MODEL)
    m.init_weights(0)
    return {k: v.detach() for k, v in m.named_parameters()}


@pytest.mark.parametrize(("cfg", "world", "message"), [
    (ParallelismConfig(tp=3), 3, "tensor_parallel_degree 3 does not divide the model's 4"),
    (ParallelismConfig(tp=2), 4, "make 2 ranks, but the world size is 4"),
    (ParallelismConfig(pp=3), 3, "3 pipeline stages (pipeline_parallel_degree 3) do not divide"),
    (ParallelismConfig(cp=2), 2, "context_parallel_degree > 1"),
    (ParallelismConfig(dp_shard=-1, tp=3), 4, "world size 4 is not a multiple"),
])
def test_bad_degrees_name_the_numbers(cfg: ParallelismConfig, world: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.check(world, MODEL.num_heads, MODEL.num_kv_heads, MODEL.num_layers)


def test_job_toml_reads_torchtitan_names(tmp_path) -> None:
    job = tmp_path / "job.toml"
    job.write_text("[parallelism]\ndata_parallel_shard_degree = -1\n"
                   "tensor_parallel_degree = 2\npipeline_parallel_degree = 2\n"
                   "pipeline_parallel_schedule = \"Interleaved1F1B\"\n"
                   "[activation_checkpoint]\nmode = \"selective\"\n"
                   "[tessera]\nsequence_parallel = true\n")
    cfg, _ = ParallelismConfig.from_toml(job)
    assert (cfg.tp, cfg.pp, cfg.schedule, cfg.checkpointing, cfg.sequence_parallel) == (
        2, 2, PpSchedule.INTERLEAVED_1F1B, Checkpointing.SELECTIVE, True)
    assert cfg.resolved(8).dp_shard == 2
    job.write_text("[parallelism]\ntensor_parallel = 2\n")
    with pytest.raises(ConfigError, match=r"unknown \[parallelism\] keys \['tensor_parallel'\]"):
        ParallelismConfig.from_toml(job)


def _loss_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("step ")]


def test_torchrun_tp2_pp2_prints_the_one_process_losses(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    example = ["-m", "tessera.parallel.examples.train_llama", "--steps", "3"]
    one = subprocess.run([sys.executable, *example], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    four = subprocess.run([sys.executable, "-m", "torch.distributed.run",
                           "--nproc-per-node", "4", *example, "--tp", "2", "--pp", "2"],
                          capture_output=True, text=True, env=env, timeout=120,
                          start_new_session=True)
    assert four.returncode == 0, four.stderr[-2000:]
    a, b = _loss_lines(one.stdout), _loss_lines(four.stdout)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert float(x.split()[-1]) == pytest.approx(float(y.split()[-1]), rel=1e-5)


def test_a_bad_layout_is_one_line_and_exit_2(capsys) -> None:
    from tessera.parallel.run import main

    assert main(["--tp", "3", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tp 3 make 3 ranks, but the world size is 1" in err


def test_the_example_runs_in_one_process(capsys) -> None:
    from tessera.parallel.examples import train_llama

    assert train_llama.main(["--steps", "2", "--layers", "2"]) == 0
    lines = _loss_lines(capsys.readouterr().out)
    assert [line.split()[1] for line in lines] == ["0", "1"]
