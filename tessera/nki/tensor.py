"""Tensors and strided views (`nki.tensor` / `nl.NkiTensor`).

A `Storage` is one allocation (named, in one buffer, with a dtype and a shape); an
`NkiTensor` is a strided view of a storage: `(offset, shape, strides)` in elements, like a
numpy view but with NKI's rules: on-chip tensors keep dimension 0 as the partition
dimension and every other dimension must stay inside a partition row; every view is bounds
checked when it is made, so an out-of-range index fails at the line that wrote it.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki import runtime as _runtime
from tessera.nki.beta1.index import IndexExpr, Mask, MgridResult
from tessera.nki.beta1.subscripts import affine_view
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.indexing import (
    DynSlice,
    contiguous_strides,
    normalise_key,
    reshape_strides,
    resolve_shape,
)
from tessera.nki.refusals import raise_refusal
from tessera.nki.runtime import kernel_api
from tessera.nki.stream import AccessPattern
from tessera.nki.tensor_api import TensorApi


class Storage:
    """One allocation. `array` is the flat numpy storage, or None in symbolic mode."""

    __slots__ = ("name", "buffer", "shape", "dtype", "array", "partition_elems", "acc", "size",
                 "pending")

    def __init__(self, name: str, buffer: Buffer, shape: tuple[int, ...], dtype: dt.DType,
                 array: np.ndarray | None) -> None:
        self.name = name
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype
        self.array = array
        self.size = math.prod(shape) if shape else 1
        self.partition_elems = self.size // shape[0] if buffer.on_chip and shape[0] else 0
        # PSUM accumulation-group state per element: True once a matmul wrote it and no
        # other instruction has written it since (the next matmul then adds).
        self.acc = (np.zeros(self.size, dtype=np.bool_)
                    if buffer is Buffer.PSUM and array is not None else None)
        # a deferred fill (Beta-1 PSUM zeros): issued when an instruction first touches the
        # tensor, unless an accumulating matmul takes it over (tessera.nki.beta1.values)
        self.pending: object = None

    def alias(self, dtype: dt.DType) -> Storage:
        """The same bytes reinterpreted as another dtype (for `view(dtype)`)."""
        ratio_num, ratio_den = self.dtype.itemsize, dtype.itemsize
        if (self.shape[-1] * ratio_num) % ratio_den:
            raise KernelUsageError(
                f"cannot view {self.name} {self.shape} {self.dtype.name} as {dtype.name}: "
                "the last dimension's bytes are not a multiple of the new itemsize")
        shape = (*self.shape[:-1], self.shape[-1] * ratio_num // ratio_den)
        array = self.array.view(dtype.storage) if self.array is not None else None
        other = Storage(self.name, self.buffer, shape, dtype, array)
        if self.acc is not None and ratio_num == ratio_den:
            other.acc = self.acc  # same elements: one accumulation state
        return other


class NkiTensor(TensorApi):
    """A strided view of a tensor in HBM, SBUF or PSUM. Views share storage; none copies."""

    __slots__ = ("storage", "offset", "shape", "strides", "_ap", "_np", "_lazy", "_replay",
                 "_vars")

    def __init__(self, storage: Storage, offset: int, shape: tuple[int, ...],
                 strides: tuple[int, ...], check: bool = True) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.strides = strides
        self._ap: AccessPattern | None = None  # built on first use: views are immutable
        self._np: np.ndarray | None = None
        self._lazy = False  # bounds checked at first use instead (raw .ap() views)
        self._replay = None  # a Beta-1 result: how to issue it into an assignment's target
        self._vars: tuple[int, ...] | None = None  # Beta-1 iterator ids per axis (masks)
        if check:
            self._check_bounds()

    @classmethod
    def whole(cls, storage: Storage) -> NkiTensor:
        """A view of all of `storage`."""
        return cls(storage, 0, storage.shape, contiguous_strides(storage.shape), check=False)

    # ------------------------------------------------------------------ attributes
    @property
    def dtype(self) -> dt.DType:
        return self.storage.dtype

    @property
    def buffer(self) -> Buffer:
        return self.storage.buffer

    @property
    def name(self) -> str:
        return self.storage.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def itemsize(self) -> int:
        return self.storage.dtype.itemsize

    @property
    def partitions(self) -> int:
        """Size of dimension 0 (the partition dimension on chip)."""
        return self.shape[0] if self.shape else 1

    @property
    def free_size(self) -> int:
        """Elements per partition (product of the free dimensions)."""
        n = 1
        for d in self.shape[1:]:
            n *= d
        return n

    def __repr__(self) -> str:
        return (f"NkiTensor({self.name}, shape={self.shape}, dtype={self.dtype.name}, "
                f"buffer={self.buffer.value})")

    def __len__(self) -> int:
        return self.shape[0]

    # ------------------------------------------------------------------ checks
    def _extent(self, dims: range) -> tuple[int, int]:
        lo = hi = 0
        for k in dims:
            span = self.strides[k] * (self.shape[k] - 1)
            if span >= 0:
                hi += span
            else:
                lo += span
        return lo, hi

    def _check_bounds(self) -> None:
        if 0 in self.shape:
            return
        st = self.storage
        lo, hi = self._extent(range(len(self.shape)))
        if self.offset + lo < 0 or self.offset + hi >= st.size:
            raise OutOfBoundsError(
                f"view {self._describe()} reaches elements {self.offset + lo}..{self.offset + hi}"
                f" outside {st.name} of shape {st.shape} ({st.size} elements)")
        if st.partition_elems and self.shape:
            pe = st.partition_elems
            if self.shape[0] > 1 and self.strides[0] % pe:
                raise OutOfBoundsError(
                    f"view {self._describe()} of on-chip tensor {st.name}: dimension 0 must "
                    f"step over whole partitions (stride {self.strides[0]} is not a multiple "
                    f"of {pe} elements per partition)")
            flo, fhi = self._extent(range(1, len(self.shape)))
            base = self.offset % pe
            if base + flo < 0 or base + fhi >= pe:
                raise OutOfBoundsError(
                    f"view {self._describe()} of on-chip tensor {st.name}: free dimensions "
                    f"leave the partition row ({pe} elements per partition)")

    def _beta1_view(self, key: object) -> NkiTensor | None:
        """The view a Beta-1 subscript names (None for a plain Beta-2 subscript)."""
        if type(key) is MgridResult:
            key = key.exprs  # `t[nl.mgrid[0:128, 0:512]]`
        if type(key) is tuple and self.storage.buffer.on_chip and any(
                not isinstance(k, int | slice | IndexExpr) for k in key[1:]):
            # run-time offsets on a tile's free axis (`t[i_p, idx[0, j] + i_f]`)
            from tessera.nki.beta1.dynamic import dynamic_view, is_dynamic_key

            if is_dynamic_key(self, key):
                return dynamic_view(self, key)  # type: ignore[return-value]
        if isinstance(key, NkiTensor) or (type(key) is tuple and key
                                          and isinstance(key[0], NkiTensor)):
            # indirect rows: `t[index_tile, i_f]` (a gather/scatter view for DMAs)
            from tessera.nki.beta1.misc_indirect import indirect_view  # builds on tensors

            return indirect_view(self, key)
        if type(key) is IndexExpr or (type(key) is tuple and any(
                type(k) is IndexExpr or type(k) is DynSlice for k in key)):
            # affine indexing (and nl.ds, which may run past the end under a mask): checked
            # where used, after a mask has cut the view down
            offset, shape, strides, iters = affine_view(self.shape, self.strides, self.offset,
                                                        key, self.name)
            view = NkiTensor(self.storage, offset, shape, strides, check=False)
            view._lazy = True
            view._vars = iters
            return view
        if type(key) is Mask:
            # operand masking (`lhs[i_f <= 64]`): the view cut to the mask's box
            from tessera.nki.beta1.masking import operand_view  # it builds on tensors

            return operand_view(self, key)
        return None

    def _describe(self) -> str:
        return f"shape={self.shape} strides={self.strides} offset={self.offset}"

    def _new(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NkiTensor:
        return NkiTensor(self.storage, offset, shape, strides)

    # ------------------------------------------------------------------ indexing
    # Indexing and view methods are kernel APIs: a bad index is reported at the kernel line
    # that wrote it.
    @kernel_api
    def __getitem__(self, key: object) -> NkiTensor:
        if _runtime.beta1_active:  # a Beta-1 kernel is running: its index forms first
            view = self._beta1_view(key)
            if view is not None:
                return view
        on_chip = self.storage.buffer.on_chip
        items = normalise_key(key, self.shape)
        offset = self.offset
        shape: list[int] = []
        strides: list[int] = []
        dropped: list[int] = []
        for dim, item in enumerate(items):
            size, stride = self.shape[dim], self.strides[dim]
            if isinstance(item, int):
                if not -size <= item < size:
                    raise OutOfBoundsError(
                        f"index {item} out of range for dimension {dim} of size {size} "
                        f"of {self.name}{list(self.shape)}")
                offset += (item % size) * stride
                if on_chip and dim == 0:
                    shape.append(1)  # an int on the partition dim keeps it, size 1
                    strides.append(stride)
                else:
                    dropped.append(len(shape))
            elif isinstance(item, DynSlice):
                if item.start < 0 or item.size < 0 or item.start + item.size > size:
                    raise OutOfBoundsError(
                        f"nl.ds({item.start}, {item.size}) out of range for dimension {dim} "
                        f"of size {size} of {self.name}{list(self.shape)}")
                offset += item.start * stride
                shape.append(item.size)
                strides.append(stride)
            else:
                start, count, step = item
                offset += start * stride
                shape.append(count)
                strides.append(stride * step)
        if on_chip and len(shape) < 2 and dropped:
            # on-chip views stay at least 2-D: keep the last dropped free dim as size 1
            shape.append(1)
            strides.append(1)
        return self._new(offset, tuple(shape), tuple(strides))

    # ------------------------------------------------------------------ view methods
    def _dim(self, dim: int) -> int:
        n = len(self.shape)
        d = operator.index(dim)
        if not -n <= d < n:
            raise OutOfBoundsError(f"dimension {dim} out of range for a {n}-D view of {self.name}")
        return d % n

    def _guard_partition_dim(self, dim: int, what: str) -> None:
        if self.storage.buffer.on_chip and dim == 0:
            raise KernelUsageError(
                f"{what} cannot change the partition dimension (dim 0) of on-chip tensor "
                f"{self.name}")

    @kernel_api
    def slice(self, dim: int, start: int, end: int, step: int = 1) -> NkiTensor:
        """View of `start:end:step` along `dim`."""
        key: list[object] = [slice(None)] * len(self.shape)
        key[self._dim(dim)] = slice(start, end, step)
        return self[tuple(key)]

    @kernel_api
    def select(self, dim: int, index: int) -> NkiTensor:
        """Drop dimension `dim`, keeping position `index` of it (like an int index, so an
        on-chip view keeps a size-1 free dimension rather than fall below 2-D)."""
        if isinstance(index, NkiTensor):
            raise_refusal("nl.NkiTensor.select with a tensor index",
                          "dynamic select; use .ap(scalar_offset=...)")
        d = self._dim(dim)
        self._guard_partition_dim(d, "select")
        size = self.shape[d]
        if not -size <= index < size:
            raise OutOfBoundsError(f"select index {index} out of range for dimension {d} of "
                                   f"size {size} of {self.name}")
        key: list[object] = [slice(None)] * len(self.shape)
        key[d] = operator.index(index)
        return self[tuple(key)]

    @kernel_api
    def permute(self, dims: tuple[int, ...] | list[int]) -> NkiTensor:
        """Reorder dimensions (the partition dimension must stay first on chip)."""
        order = [self._dim(d) for d in dims]
        if sorted(order) != list(range(len(self.shape))):
            raise KernelUsageError(f"permute({list(dims)}) is not a permutation of "
                                   f"{len(self.shape)} dimensions")
        if self.storage.buffer.on_chip and order[0] != 0:
            self._guard_partition_dim(0, "permute")
        return self._new(self.offset, tuple(self.shape[d] for d in order),
                         tuple(self.strides[d] for d in order))

    @kernel_api
    def broadcast(self, dim: int, size: int) -> NkiTensor:
        """Repeat a size-1 dimension `size` times (stride 0)."""
        d = self._dim(dim)
        if self.shape[d] != 1:
            raise KernelUsageError(f"broadcast needs a size-1 dimension; dimension {d} of "
                                   f"{self.name} has size {self.shape[d]}")
        if d == 0:
            self._guard_partition_dim(d, "broadcast")
        shape = list(self.shape)
        strides = list(self.strides)
        shape[d], strides[d] = size, 0
        return self._new(self.offset, tuple(shape), tuple(strides))

    @kernel_api
    def expand_dim(self, dim: int) -> NkiTensor:
        """Insert a new size-1 dimension at position `dim`."""
        n = len(self.shape)
        d = dim % (n + 1) if -n - 1 <= dim <= n else None
        if d is None:
            raise OutOfBoundsError(f"expand_dim({dim}) out of range for a {n}-D view")
        self._guard_partition_dim(d, "expand_dim")
        return self._new(self.offset, self.shape[:d] + (1,) + self.shape[d:],
                         self.strides[:d] + (0,) + self.strides[d:])

    @kernel_api
    def squeeze_dim(self, dim: int) -> NkiTensor:
        """Remove a size-1 dimension."""
        d = self._dim(dim)
        if self.shape[d] != 1:
            raise KernelUsageError(f"squeeze_dim({dim}): dimension has size {self.shape[d]}")
        self._guard_partition_dim(d, "squeeze_dim")
        return self._new(self.offset, self.shape[:d] + self.shape[d + 1:],
                         self.strides[:d] + self.strides[d + 1:])

    @kernel_api
    def reshape(self, shape: tuple[int, ...] | list[int]) -> NkiTensor:
        """Same elements, new shape, without copying (fails if the strides do not allow it)."""
        new_shape = resolve_shape(tuple(shape), self.size)
        if self.storage.buffer.on_chip and (not new_shape or new_shape[0] != self.shape[0]):
            self._guard_partition_dim(0, f"reshape to {list(new_shape)}")
        strides = reshape_strides(self.shape, self.strides, new_shape)
        if strides is None:
            raise KernelUsageError(f"cannot reshape view {self._describe()} of {self.name} to "
                                   f"{list(new_shape)} without a copy")
        return self._new(self.offset, new_shape, strides)

    @kernel_api
    def reshape_dim(self, dim: int, shape: tuple[int, ...] | list[int]) -> NkiTensor:
        """Split dimension `dim` into `shape`."""
        d = self._dim(dim)
        return self.reshape(self.shape[:d] + tuple(shape) + self.shape[d + 1:])

    @kernel_api
    def flatten_dims(self, start_dim: int, end_dim: int) -> NkiTensor:
        """Merge dimensions start_dim..end_dim (inclusive) into one."""
        s, e = self._dim(start_dim), self._dim(end_dim)
        merged = math.prod(self.shape[s:e + 1])
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1:])

    @kernel_api
    def view(self, dtype: object) -> NkiTensor:
        """Reinterpret the bytes of the whole tensor as another dtype."""
        new = dt.to_dtype(dtype)
        if self.offset or self.shape != self.storage.shape:
            raise KernelUsageError("view(dtype) applies to a whole tensor, not to a sub-view")
        return NkiTensor.whole(self.storage.alias(new))

    @kernel_api
    def ap(self, pattern: list[list[int]] | tuple, offset: int = 0,
           scalar_offset: object = None, vector_offset: object = None,
           indirect_dim: int = 0, dtype: object = None) -> NkiTensor:
        """Raw access pattern over the tensor's storage: [[stride, count], ...] plus offset.

        With `vector_offset` (an integer [P, 1] tile) or `scalar_offset`, the first pattern
        dimension is placed at runtime offsets along `indirect_dim` (a DMA gather/scatter;
        see `tessera.nki.indirect`). With `dtype` the storage's bytes are read as that dtype
        and `pattern`/`offset` count its elements, from this view's first byte."""
        if dtype is not None:
            return self._retyped(dtype, vector_offset is not None or scalar_offset is not None
                                 ).ap(pattern, offset, scalar_offset, vector_offset,
                                      indirect_dim)
        pairs = [tuple(p) for p in pattern]
        if any(len(p) != 2 for p in pairs):
            raise KernelUsageError(f"ap pattern must be [[stride, count], ...], got {pattern!r}")
        if vector_offset is not None or scalar_offset is not None:
            from tessera.nki.indirect import IndirectTensor  # indirect builds on this module

            return IndirectTensor(self, tuple((int(s), int(c)) for s, c in pairs),
                                  int(offset), vector_offset, scalar_offset, int(indirect_dim))
        # a raw pattern is checked when an instruction uses it, not when it is written: a
        # kernel may build a view for a case its own guard then skips (the hardware only
        # faults on an access)
        view = NkiTensor(self.storage, self.offset + int(offset),
                         tuple(int(c) for _, c in pairs), tuple(int(s) for s, _ in pairs),
                         check=False)
        view._lazy = True
        return view

    def get_pattern(self) -> list[list[int]]:
        """This view's access pattern as [[stride, count], ...]."""
        return [[s, n] for s, n in zip(self.strides, self.shape, strict=True)]

    def is_contiguous(self) -> bool:
        """True when the view is a dense C-order block of its storage."""
        return self.strides == contiguous_strides(self.shape)

    # ------------------------------------------------------------------ data access
    def _checked(self) -> None:
        if getattr(self, "_lazy", False):
            self._check_bounds()
            self._lazy = False

    def access(self) -> AccessPattern:
        """The access pattern an instruction records for this view."""
        if self.storage.pending is not None:
            fill, self.storage.pending = self.storage.pending, None
            fill()  # the deferred fill goes before the instruction that touches the tensor
        self._checked()
        ap = self._ap
        if ap is None:
            st = self.storage
            ap = AccessPattern(st.name, st.buffer, st.dtype.name, st.dtype.itemsize,
                               self.offset, tuple(zip(self.strides, self.shape, strict=True)),
                               st.partition_elems)
            self._ap = ap
        return ap

    def numpy(self) -> np.ndarray:
        """A writable numpy view of the elements (functional mode only)."""
        self._checked()
        st = self.storage
        if st.array is None:
            raise KernelUsageError(f"tensor {st.name} has no values in symbolic mode")
        if 0 in self.shape:
            # an empty view may start one past the end, which np.ndarray refuses
            return st.array[:0].reshape(self.shape)
        view = self._np
        if view is None:  # cached: an instruction often reads and writes the same view
            isz = st.dtype.itemsize
            view = np.ndarray(self.shape, st.dtype.storage, st.array, self.offset * isz,
                              tuple(s * isz for s in self.strides))
            self._np = view
        return view

    def acc_mask(self) -> np.ndarray:
        """The PSUM accumulation-group flags under this view."""
        st = self.storage
        if 0 in self.shape:
            return st.acc[:0].reshape(self.shape)
        return np.ndarray(self.shape, np.bool_, st.acc, self.offset, self.strides)

    def read_f32(self) -> np.ndarray:
        """Values as float32 (engines compute in fp32)."""
        return self.numpy().astype(np.float32)

    def write(self, values: np.ndarray | float) -> None:
        """Store values (any shape with the same element count), cast to this dtype."""
        target = self.numpy()
        arr = np.asarray(values)
        if arr.shape != self.shape:
            arr = arr.reshape(self.shape) if arr.size == self.size else np.broadcast_to(
                arr, self.shape)
        target[...] = dt.cast(arr, self.dtype)
        if self.storage.acc is not None:
            self.acc_mask()[...] = False

    def write_raw(self, values: np.ndarray) -> None:
        """Store values already in this dtype's storage format, bit for bit (same size)."""
        arr = np.asarray(values)
        if arr.dtype != self.dtype.storage:
            raise KernelUsageError(f"write_raw: values are {arr.dtype}, {self.name} stores "
                                   f"{self.dtype.storage}")
        if arr.shape != self.shape and arr.size == self.size:
            arr = arr.reshape(self.shape)  # same elements in C order (may copy a strided view)
        self.numpy()[...] = arr
        if self.storage.acc is not None:
            self.acc_mask()[...] = False

