"""Parallel execution on PyTorch's own distributed stack (docs/parallel.md).

    torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --pp 2

Modules: `config` (the degrees at the top, TorchTitan's names, the device mesh),
`parallelize` (DTensor tensor/sequence parallel plans, activation checkpointing, FSDP2),
`pipeline` (stages and `torch.distributed.pipelining` schedules), `train` (the shared
training loop), `run` (the torchrun entry point), `launch` (local ranks with a deadline),
`checkpoint`/`checkpoint_hf` (DCP in safetensors, atomic; Hugging Face export), `watchdog`
(failed collectives name the rank), `record`/`explain` (a real step's collectives and ops,
priced on an instance), `nxd` (NxD's layer names over DTensor), `comm` (a communicator that
runs and prices single collectives). It may import `net`, `cost`, `models` and `compiler`,
never `plan` (DESIGN.md).
"""

from tessera.parallel.comm import Backend, CommGroup, CommRecord, Communicator
from tessera.parallel.config import ParallelismConfig
from tessera.parallel.errors import CommError, ParallelError

__all__ = ["Backend", "CommError", "CommGroup", "CommRecord", "Communicator",
           "ParallelError", "ParallelismConfig"]
