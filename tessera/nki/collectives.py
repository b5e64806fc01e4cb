"""`nki.collectives`: collective communication inside a kernel, refused for now.

The NKI API reference documents these (all-reduce, all-gather, reduce-scatter, all-to-all,
ring permutes over a `ReplicaGroup`, the rank id). Running every rank of a replica group
in one process is not implemented yet, so each name is a `Refused` placeholder: kernels
that import `nki.collectives` load, and any use raises a `KernelUsageError` at the kernel's
line naming the API (docs/nki_coverage.md). Collectives between kernels are priced by
`tessera.net`.
"""

from __future__ import annotations

from tessera.nki.refusals import Refused as _Refused

_RANKS = "collectives inside a kernel (all ranks of a replica group in one process)"


def _cc(name: str) -> _Refused:
    return _Refused(f"nki.collectives.{name}", _RANKS)


ReplicaGroup = _cc("ReplicaGroup")
all_reduce = _cc("all_reduce")
all_gather = _cc("all_gather")
reduce_scatter = _cc("reduce_scatter")
all_to_all = _cc("all_to_all")
all_to_all_v = _cc("all_to_all_v")
collective_permute = _cc("collective_permute")
collective_permute_implicit = _cc("collective_permute_implicit")
collective_permute_implicit_reduce = _cc("collective_permute_implicit_reduce")
collective_permute_implicit_current_processing_rank_id = _cc(
    "collective_permute_implicit_current_processing_rank_id")
rank_id = _cc("rank_id")

__all__ = [
    "ReplicaGroup", "all_gather", "all_reduce", "all_to_all", "all_to_all_v",
    "collective_permute", "collective_permute_implicit",
    "collective_permute_implicit_current_processing_rank_id",
    "collective_permute_implicit_reduce", "rank_id", "reduce_scatter",
]
