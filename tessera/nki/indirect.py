"""Indirect (runtime-offset) views for DMA gathers and scatters: `tensor.ap(...,
vector_offset=ids, indirect_dim=0)`.

The view's first pattern dimension is not a fixed stride: row i of the view starts at
`offset + ids[i] * stride(indirect_dim)` (plus `scalar_offset * stride(indirect_dim)`),
where `ids` is a [P, 1] integer tile read when the DMA runs. The remaining pattern
dimensions are ordinary strides. Only DMAs accept indirect views (as on the hardware,
where the descriptor generator applies the offsets).
"""

from __future__ import annotations

import numpy as np

from tessera.nki.dtypes import cast
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.stream import AccessPattern
from tessera.nki.tensor import NkiTensor


class IndirectTensor(NkiTensor):
    """A view whose rows are placed by runtime offsets (see module docstring)."""

    __slots__ = ("index", "scalar", "row_stride", "rows")

    def __init__(self, base: NkiTensor, pattern: tuple[tuple[int, int], ...], offset: int,
                 index: NkiTensor | None, scalar: object, indirect_dim: int) -> None:
        storage = base.storage
        if not 0 <= indirect_dim < len(storage.shape):
            raise KernelUsageError(f"indirect_dim {indirect_dim} out of range for "
                                   f"{storage.name}{list(storage.shape)}")
        if storage.buffer.on_chip:
            raise KernelUsageError("indirect offsets apply to HBM tensors (DMA descriptors)")
        row_stride = 1
        for d in storage.shape[indirect_dim + 1:]:
            row_stride *= d
        rows = pattern[0][1]
        if index is not None:
            if not isinstance(index, NkiTensor) or not index.dtype.is_int:
                raise KernelUsageError("vector_offset must be an integer NKI tile [P, 1]")
            if index.partitions != rows or index.free_size != 1:
                raise KernelUsageError(f"vector_offset {index.name}{list(index.shape)} must be "
                                       f"[{rows}, 1]: one offset per row of the pattern")
        # the static part: row 0 at `offset`, rows themselves placed at run time (stride 0)
        super().__init__(storage, base.offset + offset,
                         tuple(c for _, c in pattern), (0,) + tuple(s for s, _ in pattern[1:]))
        self.index = index
        self.scalar = scalar
        self.row_stride = row_stride
        self.rows = storage.shape[indirect_dim]

    def access(self) -> AccessPattern:
        """Recorded as if offsets were 0..P-1 (the element count and row size are exact;
        the timing model treats indirect accesses as touching the whole tensor)."""
        ap = self._ap
        if ap is None:
            st = self.storage
            pattern = ((self.row_stride, self.shape[0]),) + tuple(
                zip(self.strides[1:], self.shape[1:], strict=True))
            ap = AccessPattern(st.name, st.buffer, st.dtype.name, st.dtype.itemsize,
                               self.offset, pattern, st.partition_elems)
            self._ap = ap
        return ap

    def numpy(self) -> np.ndarray:
        raise KernelUsageError("an indirect view has no fixed layout; only nisa.dma_copy "
                               "can read or write it")

    def row_offsets(self) -> np.ndarray:
        """Row indices along indirect_dim for each view row (functional mode)."""
        rows = np.zeros(self.shape[0], dtype=np.int64)
        if self.index is not None:
            rows += self.index.numpy().reshape(-1).astype(np.int64)
        if isinstance(self.scalar, NkiTensor):
            rows += int(self.scalar.numpy().reshape(-1)[0])
        elif self.scalar is not None:
            rows += int(self.scalar)  # type: ignore[call-overload]
        return rows

    def addresses(self, skip_out_of_bounds: bool) -> tuple[np.ndarray, np.ndarray]:
        """(flat element addresses [rows, free...], mask of rows in bounds)."""
        rows = self.row_offsets()
        inside = (rows >= 0) & (rows < self.rows)
        if not skip_out_of_bounds and not inside.all():
            bad = int(rows[~inside][0])
            raise OutOfBoundsError(f"indirect DMA offset {bad} outside dimension of size "
                                   f"{self.rows} of {self.name}{list(self.storage.shape)}")
        free = np.zeros(self.shape[1:], dtype=np.int64)
        for axis, (stride, count) in enumerate(zip(self.strides[1:], self.shape[1:],
                                                   strict=True)):
            shape = [1] * len(self.shape[1:])
            shape[axis] = count
            free = free + (np.arange(count, dtype=np.int64) * stride).reshape(shape)
        base = self.offset + rows * self.row_stride
        addr = base.reshape((-1,) + (1,) * free.ndim) + free[None, ...]
        if (addr[inside] >= self.storage.size).any():
            raise OutOfBoundsError(f"indirect view of {self.name} reaches past its end")
        return addr, inside


def gather(dst: NkiTensor, src: IndirectTensor, skip: bool) -> None:
    """dst <- rows of src at runtime offsets (rows out of bounds are skipped with skip)."""
    addr, inside = src.addresses(skip)
    flat = src.storage.array
    values = flat[addr[inside]]
    target = dst.numpy().reshape((src.shape[0],) + src.shape[1:])
    if src.dtype is dst.dtype or src.dtype == dst.dtype:
        target[inside] = values
    else:
        target[inside] = cast(values.astype(np.float32), dst.dtype)


def scatter(dst: IndirectTensor, src: NkiTensor, skip: bool) -> None:
    """Rows of dst at runtime offsets <- src."""
    addr, inside = dst.addresses(skip)
    values = src.numpy().reshape((dst.shape[0],) + dst.shape[1:])
    if src.dtype != dst.dtype:
        values = cast(values.astype(np.float32), dst.dtype)
    dst.storage.array[addr[inside]] = values[inside]
