"""Parallel execution on PyTorch's own distributed stack.

Today this package holds the communicator that runs collectives for real over
torch.distributed (gloo on CPU, NCCL with CUDA) and prices each call with the network model
of `tessera.net`:

    >>> from tessera.parallel import Communicator
    >>> comm = Communicator(rank, world_size, "file:///tmp/rendezvous", timeout_s=10)
    >>> comm.all_reduce(torch.ones(4))

It may import `net`, `cost` and `compiler`, never `plan` (DESIGN.md).
"""

from tessera.parallel.comm import Backend, CommGroup, CommRecord, Communicator
from tessera.parallel.errors import CommError, ParallelError

__all__ = ["Backend", "CommError", "CommGroup", "CommRecord", "Communicator", "ParallelError"]
