"""Run a training job on this process's rank, as launched by torchrun.

    torchrun --nproc-per-node 4 -m tessera.parallel.run --config job.toml
    torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --pp 2 --steps 3

The job file is TorchTitan's (`tessera plan train --emit DIR` writes one; see `config.py`);
flags override it. Rank 0 prints one line per step, `step N loss X`, the loss averaged over
the data-parallel ranks. Without torchrun's environment it runs as one process. A bad
configuration is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from tessera.models import PRESETS
from tessera.parallel.config import Checkpointing, ParallelismConfig, PpSchedule
from tessera.parallel.errors import ParallelError
from tessera.parallel.train import Optimizer, TrainSettings, train
from tessera.parallel.watchdog import guard_collectives


def parser(prog: str) -> argparse.ArgumentParser:
    """The flags of a run (each defaults to the job file's value, then the built-in one)."""
    ap = argparse.ArgumentParser(prog=prog, description="Train the reference Llama with "
                                 "tensor, pipeline and data parallelism on PyTorch.")
    ap.add_argument("--config", help="a TorchTitan-style job TOML")
    ap.add_argument("--tp", type=int, help="tensor-parallel degree")
    ap.add_argument("--pp", type=int, help="pipeline-parallel degree")
    ap.add_argument("--fsdp", type=int, help="FSDP2 (data-parallel shard) degree")
    ap.add_argument("--dp", type=int, help="data-parallel replicate degree")
    ap.add_argument("--schedule", choices=[s.value for s in PpSchedule])
    ap.add_argument("--microbatches", type=int)
    ap.add_argument("--ac", choices=[c.value for c in Checkpointing],
                    help="activation checkpointing")
    ap.add_argument("--sp", action="store_true", default=None, help="sequence parallel")
    ap.add_argument("--no-loss-parallel", dest="loss_parallel", action="store_false",
                    default=None, help="gather the logits over TP for the loss (default: a "
                    "loss-parallel cross-entropy on sharded logits, as TorchTitan)")
    ap.add_argument("--model", help="a Llama-family zoo name (default: the job's, else "
                    "tiny-llama)")
    ap.add_argument("--layers", type=int, help="layers of the model (default: its own)")
    ap.add_argument("--steps", type=int, help="training steps (default: the job's, else 5)")
    ap.add_argument("--batch", type=int, help="global batch in sequences (default: the "
                    "job's global_batch_size, else 8)")
    ap.add_argument("--seq-len", type=int, help="tokens per sequence (default: the job's, "
                    "else 32)")
    ap.add_argument("--optimizer", choices=[o.value for o in Optimizer], default="adamw")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--checkpoint-dir", type=Path, help="resume from its latest checkpoint "
                    "and save into it (torch.distributed.checkpoint, safetensors)")
    ap.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                    help="save every N steps and after the last (default: never)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a collective may wait for its peers")
    return ap


def configure(args: argparse.Namespace) -> tuple[ParallelismConfig, TrainSettings]:
    """The parallel config and training settings of parsed flags."""
    cfg, job = (ParallelismConfig.from_toml(args.config) if args.config
                else (ParallelismConfig(), {}))
    flags = {"tp": args.tp, "pp": args.pp, "dp_shard": args.fsdp, "dp_replicate": args.dp,
             "microbatches": args.microbatches, "sequence_parallel": args.sp,
             "loss_parallel": args.loss_parallel,
             "schedule": PpSchedule(args.schedule) if args.schedule else None,
             "checkpointing": Checkpointing(args.ac) if args.ac else None}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    training = job.get("training", {})
    name = args.model or job.get("model", {}).get("name", "tiny-llama")
    if name not in PRESETS:
        raise ParallelError(f"model {name!r}: not in the model zoo (tessera plan models)")
    model = PRESETS[name]
    if args.layers:
        model = dataclasses.replace(model, num_layers=args.layers)

    def pick(flag: int | None, key: str, default: int) -> int:
        return int(flag if flag is not None else training.get(key, default))

    settings = TrainSettings(model=model, steps=pick(args.steps, "steps", 5),
                             batch=pick(args.batch, "global_batch_size", 8),
                             seq_len=pick(args.seq_len, "seq_len", 32),
                             optimizer=Optimizer(args.optimizer), lr=args.lr,
                             checkpoint_dir=getattr(args, "checkpoint_dir", None),
                             checkpoint_every=getattr(args, "checkpoint_every", 0))
    return cfg, settings


def main(argv: list[str] | None = None, prog: str = "tessera.parallel.run") -> int:
    """Parse, join the process group (torchrun's, or a one-process one), train, print."""
    args = parser(prog).parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:
        cfg, settings = configure(args)
        with tempfile.TemporaryDirectory() as tmp:
            timeout = datetime.timedelta(seconds=args.timeout)
            if "RANK" in os.environ:
                dist.init_process_group("gloo", timeout=timeout)
            else:
                dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous",
                                        rank=0, world_size=1, timeout=timeout)
            rank = dist.get_rank()

            def log(step: int, loss: float) -> None:
                if rank == 0:
                    print(f"step {step} loss {loss:.6f}", flush=True)

            try:
                with guard_collectives(rank):  # a failed collective names itself and the rank
                    train(cfg, settings, log)
                    dist.barrier()  # FSDP runs aborted at exit without it
            finally:
                dist.destroy_process_group()
    except ParallelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
