"""Collective operations, algorithms, and the bandwidth conventions of nccom-test/nccl-tests.

`n_bytes` of a collective means (as nccom-test's size column [NCCOM]):

- ALL_REDUCE: the buffer each rank contributes (and receives).
- ALL_GATHER: the gathered output; each rank contributes n_bytes / n.
- REDUCE_SCATTER: each rank's input; each rank keeps n_bytes / n.
- ALL_TO_ALL: each rank's buffer; it sends n_bytes / n to every rank.
- BROADCAST: the buffer the root (first rank of the group) sends to all.
- SEND_RECV: the message from the group's first rank to its second.
- PERMUTE: the message each rank sends to the next rank of the group (a ring shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tessera.net.errors import UnknownCollectiveError


class CollectiveOp(StrEnum):
    """The collective operations tessera costs and runs."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    BROADCAST = "broadcast"
    SEND_RECV = "send_recv"
    PERMUTE = "permute"


class Algorithm(StrEnum):
    """Collective algorithms, and two ways of choosing one per size and group.

    AUTO picks the fastest applicable algorithm; RUNTIME picks the one the Neuron runtime's
    documented policy names (`policy`), the default on Neuron topologies.
    """

    AUTO = "auto"
    RUNTIME = "runtime"
    RING = "ring"  # unidirectional ring
    RING_BIDIR = "ring_bidir"  # two counter-rotating rings, half the data each
    DIRECT = "direct"  # every rank writes to every peer in one step (routed), one DMA queue
    MESH = "mesh"  # the runtime's mesh [CCI]: chip-aware, peers' DMAs issued in parallel
    RHD = "rhd"  # recursive halving-doubling (power-of-two groups)
    TORUS = "torus"  # bidirectional rings along each torus dimension in turn
    KANGARING = "kangaring"  # rings of one primary per rank pair of a chip [CCI]
    HIERARCHICAL = "hierarchical"  # intra-instance RS -> inter-instance AR -> intra AG


# The ways of choosing an algorithm rather than algorithms; `build` never sees them.
CHOOSERS = (Algorithm.AUTO, Algorithm.RUNTIME)


_OP_ALIASES = {
    "allreduce": CollectiveOp.ALL_REDUCE, "allr": CollectiveOp.ALL_REDUCE,
    "ar": CollectiveOp.ALL_REDUCE,
    "allgather": CollectiveOp.ALL_GATHER, "allg": CollectiveOp.ALL_GATHER,
    "ag": CollectiveOp.ALL_GATHER,
    "reducescatter": CollectiveOp.REDUCE_SCATTER, "redsct": CollectiveOp.REDUCE_SCATTER,
    "rs": CollectiveOp.REDUCE_SCATTER,
    "alltoall": CollectiveOp.ALL_TO_ALL, "a2a": CollectiveOp.ALL_TO_ALL,
    "bcast": CollectiveOp.BROADCAST,
    "sendrecv": CollectiveOp.SEND_RECV, "p2p": CollectiveOp.SEND_RECV,
    "collective_permute": CollectiveOp.PERMUTE,
}


def parse_op(name: str | CollectiveOp) -> CollectiveOp:
    """`CollectiveOp` from 'ALL_REDUCE', 'all-reduce', 'allr', ...; raises for unknown names."""
    if isinstance(name, CollectiveOp):
        return name
    text = str(name).strip().lower().replace("-", "_")
    try:
        return CollectiveOp(text)
    except ValueError:
        pass
    op = _OP_ALIASES.get(text.replace("_", ""))
    if op is None:
        known = ", ".join(o.name for o in CollectiveOp)
        raise UnknownCollectiveError(f"unknown collective {name!r}; known: {known}")
    return op


def parse_algorithm(name: str | Algorithm) -> Algorithm:
    """`Algorithm` from its name ('ring', 'RING_BIDIR', 'rdh' = rhd, 'kanga_ring', ...)."""
    if isinstance(name, Algorithm):
        return name
    text = str(name).strip().lower().replace("-", "_")
    text = {"bidir": "ring_bidir", "rdh": "rhd", "kanga_ring": "kangaring",
            "neuron": "runtime"}.get(text, text)
    try:
        return Algorithm(text)
    except ValueError:
        known = ", ".join(a.value for a in Algorithm)
        raise UnknownCollectiveError(f"unknown algorithm {name!r}; known: {known}") from None


def bus_factor(op: CollectiveOp, n_ranks: int) -> float:
    """busbw / algbw: 2(n-1)/n for all-reduce, (n-1)/n for AG/RS/A2A, 1 otherwise [NCCOM]."""
    if n_ranks < 1:
        raise ValueError("a collective needs at least one rank")
    if op is CollectiveOp.ALL_REDUCE:
        return 2 * (n_ranks - 1) / n_ranks
    if op in (CollectiveOp.ALL_GATHER, CollectiveOp.REDUCE_SCATTER, CollectiveOp.ALL_TO_ALL):
        return (n_ranks - 1) / n_ranks
    return 1.0


@dataclass(frozen=True)
class Collective:
    """One collective: operation, size in bytes (see module doc) and the ranks taking part."""

    op: CollectiveOp
    n_bytes: int
    group: tuple[int, ...]
