"""Indirect (runtime-offset) views for DMA gathers and scatters: `tensor.ap(...,
vector_offset=ids, scalar_offset=s, indirect_dim=d)`.

Offsets count positions along dimension `indirect_dim` of the view `ap` is called on, so
they move the access by multiples of that dimension's stride `S`:

- `scalar_offset` s (an int or a one-element integer tile read when the DMA runs) shifts the
  whole pattern: element (i0, i1, ...) is at `offset + s * S + sum(i_k * stride_k)`.
- `vector_offset` ids (an integer [P, 1] tile) places the rows of the first pattern
  dimension: row i0 starts at `offset + ids[i0] * S` (plus `s * S` when both are given), and
  the first pattern dimension's own stride is not used. The remaining pattern dimensions are
  ordinary strides.

A row is out of bounds when its position along `indirect_dim` leaves that dimension or one of
its elements leaves the tensor; `oob_mode.error` raises, `oob_mode.skip` leaves it untouched.
Only DMAs accept indirect HBM views (as on the hardware, where the descriptor generator
applies the offsets). On an SBUF/PSUM tensor, `ap(..., scalar_offset=s)` builds a
`tessera.nki.dynamic_views.DynamicTileView` instead (a runtime offset within each
partition, read by compute instructions). `tensor.vector_select(dim, ids)` is the same
gather written as a view: the selected rows first, then the view's other dimensions in
order. View methods that keep the row dimension first (slicing, permuting or reshaping the
rest) keep the indirection.
"""

from __future__ import annotations

import operator

import numpy as np

from tessera.nki.dtypes import cast
from tessera.nki.dynamic_views import DynamicTileView
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.stream import AccessPattern
from tessera.nki.tensor import NkiTensor


def _check_index(index: object, rows: int) -> None:
    if not isinstance(index, NkiTensor) or not index.dtype.is_int:
        raise KernelUsageError("vector_offset must be an integer NKI tile [P, 1]")
    if index.partitions != rows or index.free_size != 1:
        raise KernelUsageError(f"vector_offset {index.name}{list(index.shape)} must be "
                               f"[{rows}, 1]: one offset per row of the pattern")


def _check_scalar(scalar: object) -> None:
    if isinstance(scalar, NkiTensor):
        if not scalar.dtype.is_int or scalar.size != 1:
            raise KernelUsageError(f"scalar_offset {scalar.name}{list(scalar.shape)} must be "
                                   "a one-element integer tile")
        return
    if hasattr(scalar, "dma_offset"):  # a VirtualRegister (nisa.register_*), read at run time
        return
    try:
        operator.index(scalar)  # ints and numpy integers; a float offset is a bug
    except TypeError:
        raise KernelUsageError(f"scalar_offset must be an int or a one-element integer "
                               f"tile, got {scalar!r}") from None


class IndirectTensor(NkiTensor):
    """A view placed by runtime offsets (see module docstring)."""

    __slots__ = ("index", "scalar", "indirect_dim", "dim_stride", "dim_size")

    def __new__(cls, base: NkiTensor, pattern: tuple[tuple[int, int], ...], offset: int,
                index: NkiTensor | None, scalar: object, indirect_dim: int) -> NkiTensor:
        # tensor.ap builds every runtime-offset view through this class; on-chip storage
        # gets the compute-engine view (a shift within each partition row), whose own
        # constructor runs instead of __init__ below (it is not an IndirectTensor)
        if base.storage.buffer.on_chip:
            return DynamicTileView.build(base, pattern, offset, index, scalar, indirect_dim)
        return super().__new__(cls)

    def __init__(self, base: NkiTensor, pattern: tuple[tuple[int, int], ...], offset: int,
                 index: NkiTensor | None, scalar: object, indirect_dim: int) -> None:
        storage = base.storage
        # the offsets index the view `ap` was called on (a reshape of the storage, say)
        if not 0 <= indirect_dim < base.ndim:
            raise KernelUsageError(f"indirect_dim {indirect_dim} out of range for the "
                                   f"{base.ndim}-D view {storage.name}{list(base.shape)}")
        if index is not None:
            _check_index(index, pattern[0][1])
        if scalar is not None:
            _check_scalar(scalar)
        # with a vector_offset the ids place the rows, so the first dimension has no static
        # stride (0); a scalar_offset alone shifts the whole pattern, strides and all
        first = 0 if index is not None else pattern[0][0]
        super().__init__(storage, base.offset + offset, tuple(c for _, c in pattern),
                         (first,) + tuple(s for s, _ in pattern[1:]))
        self.index = index
        self.scalar = scalar
        self.indirect_dim = indirect_dim
        self.dim_stride = base.strides[indirect_dim]
        self.dim_size = base.shape[indirect_dim]

    def _new(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NkiTensor:
        # a view of an indirect view stays indirect while the row dimension is untouched
        if not shape or shape[0] != self.shape[0] or strides[0] != self.strides[0]:
            raise KernelUsageError("a view of an indirect view must keep its first (runtime "
                                   "row) dimension; apply other view methods before "
                                   "vector_select / ap(vector_offset=)")
        other = object.__new__(IndirectTensor)
        NkiTensor.__init__(other, self.storage, offset, shape, strides)
        for slot in IndirectTensor.__slots__:
            setattr(other, slot, getattr(self, slot))
        return other

    def access(self) -> AccessPattern:
        """Recorded as if the offsets were 0 (row i of a vector_offset view at i along
        indirect_dim): the element count and row size are exact; the timing model treats
        indirect accesses as touching the whole tensor."""
        ap = self._ap
        if ap is None:
            st = self.storage
            first = self.dim_stride if self.index is not None else self.strides[0]
            pattern = ((first, self.shape[0]),) + tuple(
                zip(self.strides[1:], self.shape[1:], strict=True))
            ap = AccessPattern(st.name, st.buffer, st.dtype.name, st.dtype.itemsize,
                               self.offset, pattern, st.partition_elems)
            self._ap = ap
        return ap

    def numpy(self) -> np.ndarray:
        raise KernelUsageError("an indirect view has no fixed layout; only nisa.dma_copy "
                               "can read or write it")

    def row_offsets(self) -> np.ndarray:
        """Each view row's runtime position along indirect_dim (functional mode): its
        vector_offset entry plus the scalar_offset."""
        rows = np.zeros(self.shape[0], dtype=np.int64)
        if self.index is not None:
            rows += self.index.numpy().reshape(-1).astype(np.int64)
        if isinstance(self.scalar, NkiTensor):
            rows += int(self.scalar.numpy().reshape(-1)[0])
        elif hasattr(self.scalar, "dma_offset"):
            rows += self.scalar.dma_offset()
        elif self.scalar is not None:
            rows += operator.index(self.scalar)  # type: ignore[arg-type]
        return rows

    def addresses(self, skip_out_of_bounds: bool) -> tuple[np.ndarray, np.ndarray]:
        """(flat element addresses [rows, free...], mask of rows in bounds)."""
        dynamic = self.row_offsets()
        free = np.zeros(self.shape[1:], dtype=np.int64)
        for axis, (stride, count) in enumerate(zip(self.strides[1:], self.shape[1:],
                                                   strict=True)):
            shape = [1] * len(self.shape[1:])
            shape[axis] = count
            free = free + (np.arange(count, dtype=np.int64) * stride).reshape(shape)
        # strides[0] is the static row stride: 0 when a vector_offset places the rows
        static = np.arange(self.shape[0], dtype=np.int64) * self.strides[0]
        base = self.offset + static + dynamic * self.dim_stride
        addr = base.reshape((-1,) + (1,) * free.ndim) + free[None, ...]
        flat = addr.reshape(len(base), -1)
        in_dim = (dynamic >= 0) & (dynamic < self.dim_size)
        in_tensor = ((flat >= 0) & (flat < self.storage.size)).all(axis=1) if flat.size else \
            np.ones(len(base), dtype=np.bool_)
        inside = in_dim & in_tensor
        if not skip_out_of_bounds and not inside.all():
            bad = int(np.flatnonzero(~inside)[0])
            if not in_dim[bad]:
                raise OutOfBoundsError(
                    f"indirect DMA offset {int(dynamic[bad])} outside dimension "
                    f"{self.indirect_dim} of size {self.dim_size} of {self.name}"
                    f"{list(self.storage.shape)}")
            raise OutOfBoundsError(f"indirect view of {self.name} reaches past its end: row "
                                   f"{bad} at runtime offset {int(dynamic[bad])}")
        return addr, inside


def select_rows(view: NkiTensor, dim: int, index: NkiTensor) -> IndirectTensor:
    """`view.vector_select(dim, index)`: rows `index[p]` of dimension `dim`, then the other
    dimensions (an indirect view over HBM for DMAs)."""
    if isinstance(view, IndirectTensor):
        raise KernelUsageError("vector_select applies to a plain view, not to an indirect one")
    d = view._dim(dim)  # noqa: SLF001 - the view's own dimension check
    rows = index.partitions if isinstance(index, NkiTensor) else 0
    pattern = ((view.strides[d], rows),) + tuple(
        (s, n) for k, (s, n) in enumerate(zip(view.strides, view.shape, strict=True)) if k != d)
    return IndirectTensor(view, pattern, 0, index, None, d)


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
