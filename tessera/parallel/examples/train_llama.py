"""Train the small reference Llama sharded over torchrun's ranks.

    torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --pp 2 --steps 3
    torchrun --nproc-per-node 4 -m tessera.parallel.examples.train_llama --tp 2 --fsdp 2
    torchrun --nproc-per-node 2 -m tessera.parallel.examples.train_llama --config job.toml

Prints `step N loss X` per step on rank 0. Every layout prints the losses one process does
(`python -m tessera.parallel.examples.train_llama`), up to fp32 rounding.
"""

from __future__ import annotations

import sys

from tessera.parallel.run import main

if __name__ == "__main__":
    sys.exit(main(prog="tessera.parallel.examples.train_llama"))
