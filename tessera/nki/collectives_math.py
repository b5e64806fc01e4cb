"""What each `nki.collectives` operation computes, on numpy arrays.

Each function takes the members' contributions in rank-list order (position 0 first) and
returns every member's result by position. Reductions run in float32 for float dtypes (the
engines' arithmetic) and in int64 for integer dtypes, then are cast to the destination
dtype once; members are combined in rank-list order. Semantics from the `nki.collectives`
pages (all_reduce, all_gather, reduce_scatter, all_to_all, all_to_all_v,
collective_permute, collective_permute_implicit(_reduce)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tessera.nki.dtypes import DType, cast
from tessera.nki.errors import KernelUsageError

_UFUNCS = {"add": np.add, "minimum": np.minimum, "maximum": np.maximum}


def widen(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Values in the type reductions run in: float32 for floats, int64 for integers."""
    return values.astype(np.int64 if dtype.is_int else np.float32)


def reduce_values(arrays: Sequence[np.ndarray], op: str, dtype: DType) -> np.ndarray:
    """`op` (add / minimum / maximum) over the members' arrays, cast to `dtype`."""
    ufunc = _UFUNCS[op]
    acc = widen(arrays[0], dtype)
    for a in arrays[1:]:
        acc = ufunc(acc, widen(a, dtype))
    return store(acc, dtype)


def store(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Values cast to `dtype`'s storage (integers wrap to the width, as bits do)."""
    if dtype.is_int:
        return values.astype(dtype.storage)
    return np.asarray(cast(values, dtype))


def all_reduce(parts: list[list[np.ndarray]], op: str, dtypes: list[DType]
               ) -> list[list[np.ndarray]]:
    """Every member gets the reduction of all members' tensors, tensor by tensor."""
    reduced = [reduce_values([p[i] for p in parts], op, dtypes[i]) for i in range(len(dtypes))]
    return [reduced for _ in parts]


def all_gather(parts: list[list[np.ndarray]], dim: int) -> list[list[np.ndarray]]:
    """Every member gets the members' tensors concatenated along `dim`, in rank-list
    order."""
    gathered = [np.concatenate([p[i] for p in parts], axis=dim) for i in range(len(parts[0]))]
    return [gathered for _ in parts]


def reduce_scatter(parts: list[list[np.ndarray]], op: str, dtypes: list[DType]
                   ) -> list[list[np.ndarray]]:
    """Member k gets chunk k (along dim 0) of the reduction of all members' tensors."""
    n = len(parts)
    reduced = [reduce_values([p[i] for p in parts], op, dtypes[i]) for i in range(len(dtypes))]
    return [[np.split(r, n, axis=0)[k] for r in reduced] for k in range(n)]


def all_to_all(parts: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Member k gets chunk k (along dim 0) of every member's tensor, concatenated in
    rank-list order."""
    n = len(parts)
    chunks = [[np.split(t, n, axis=0) for t in p] for p in parts]  # [member][tensor][chunk]
    return [[np.concatenate([chunks[j][i][k] for j in range(n)], axis=0)
             for i in range(len(parts[0]))] for k in range(n)]


def permute(parts: list[np.ndarray | None], sources: dict[int, int]) -> list[np.ndarray | None]:
    """Position t gets the contribution of position sources[t]; others get None."""
    return [parts[sources[t]] if t in sources else None for t in range(len(parts))]


def ring_shift(parts: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Member k gets its predecessor's (k - 1) tensors, channel by channel."""
    n = len(parts)
    return [parts[(k - 1) % n] for k in range(n)]


def all_to_all_v(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]],
                 ranks: Sequence[int]) -> list[tuple[list[tuple[int, np.ndarray]], np.ndarray]]:
    """Variable all-to-all on flat buffers.

    Each part is (src flat, send_counts, send_displs, recv_displs, dst elements): member i
    sends `src_i[send_displs_i[j] : + send_counts_i[j]]` to member j, which writes it at
    `recv_displs_j[i]`. Returns per member the (offset, chunk) writes and its received
    counts. A chunk outside its source or destination buffer is an error naming the ranks.
    """
    out = []
    for j, (_, _, _, recv_displs, dst_size) in enumerate(parts):
        writes = []
        counts = np.zeros(len(parts), dtype=np.int64)
        for i, (src, send_counts, send_displs, _, _) in enumerate(parts):
            count, start = int(send_counts[j]), int(send_displs[j])
            if start + count > src.size:
                raise KernelUsageError(
                    f"all_to_all_v: rank {ranks[i]} sends elements [{start}, {start + count}) "
                    f"to rank {ranks[j]}, outside its src of {src.size} elements")
            at = int(recv_displs[i])
            if at + count > dst_size:
                raise KernelUsageError(
                    f"all_to_all_v: rank {ranks[j]} receives {count} elements from rank "
                    f"{ranks[i]} at offset {at}, past the end of its dst of {dst_size} "
                    "elements")
            counts[i] = count
            if count:
                writes.append((at, src[start:start + count]))
        out.append((writes, counts))
    return out
