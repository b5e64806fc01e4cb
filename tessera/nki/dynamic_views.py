"""Runtime-offset views of SBUF/PSUM tensors: `tile.ap(pattern, offset, scalar_offset=s,
indirect_dim=d)` on an on-chip tensor.

What the pages say: the "NKI Access Patterns" deep dive defines `scalar_offset` as the start
of the access, counted in elements of the `indirect_dim` dimension; the 2.28/2.29
`nki.isa.tensor_copy_dynamic_src/dst` pages place an SBUF/PSUM operand "at a dynamic offset
within each partition", the offset being "a scalar value resided in SBUF"; NKI 0.4 replaced
those two instructions by `tensor_copy` with such a view.

Semantics here:

- `s` is an int, a `VirtualRegister`, or a one-element integer tile in SBUF, read when
  the instruction runs (0 in a symbolic trace, which has no values, as for DMA offsets).
- Partitions cannot move at run time, so the offset moves the pattern inside each
  partition's row: by `s * stride_d` elements for a free dimension `d >= 1` of the view `ap`
  is called on, by `s` elements for `d = 0` (the default; the partition dimension itself
  cannot be offset).
- The pattern at offset 0 must be a valid view; at run time every element must stay inside
  its partition's row, else `OutOfBoundsError` at the kernel line.
- `vector_offset` (one offset per partition) is refused on SBUF/PSUM: per-row runtime offsets
  are DMA gathers from/to HBM here (Tensor Indirection, NeuronCore-v4's compute-engine column
  gather, is not modelled).

Recording: an instruction's access pattern for such a view covers every row position the
offset can reach (the union of all placements that stay in the row), so the dependency
tracker sees every overlap it could have; its N stays the view's own elements per partition
(`isa._common.record`), and a tile offset is recorded as one more read (the engine reads it
from SBUF). Views of such a view (slices, reshapes) keep the runtime offset.
"""

from __future__ import annotations

import operator

import numpy as np

from tessera.nki.buffers import Buffer
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, OutOfBoundsError
from tessera.nki.runtime import maybe_current
from tessera.nki.stream import AccessPattern
from tessera.nki.tensor import NkiTensor


def _check_offset(scalar: object) -> None:
    """An on-chip view's scalar_offset: an int, a register, or an SBUF int tile."""
    if isinstance(scalar, NkiTensor):
        if not scalar.dtype.is_int or scalar.size != 1:
            raise DTypeError(f"scalar_offset {scalar.name}{list(scalar.shape)} must be a "
                             "one-element integer tile")
        if scalar.buffer is not Buffer.SBUF:
            raise BufferKindError(f"scalar_offset {scalar.name} is in {scalar.buffer.value}; "
                                  "the dynamic offset of an SBUF/PSUM view must reside in "
                                  "SBUF")
        return
    if hasattr(scalar, "dma_offset"):  # a VirtualRegister (nisa.register_*), read at run time
        return
    try:
        operator.index(scalar)
    except TypeError:
        raise KernelUsageError(f"scalar_offset must be an int, a register or a one-element "
                               f"integer SBUF tile, got {scalar!r}") from None


class DynamicTileView(NkiTensor):
    """An SBUF/PSUM view moved inside each partition row at run time (module docstring).

    `offset`, `shape` and `strides` describe the placement at offset 0; `shift_stride` is the
    number of elements one unit of the offset moves it."""

    __slots__ = ("scalar", "shift_stride")

    def __init__(self, storage: object, offset: int, shape: tuple[int, ...],
                 strides: tuple[int, ...], scalar: object, shift_stride: int) -> None:
        super().__init__(storage, offset, shape, strides)  # type: ignore[arg-type]
        self.scalar = scalar
        self.shift_stride = shift_stride

    @classmethod
    def build(cls, base: NkiTensor, pattern: tuple[tuple[int, int], ...], offset: int,
              index: object, scalar: object, indirect_dim: int) -> DynamicTileView:
        """`base.ap(pattern, offset, scalar_offset=scalar, indirect_dim=indirect_dim)`."""
        st = base.storage
        if index is not None:
            raise KernelUsageError(
                f"vector_offset on {st.name} in {st.buffer.value}: per-partition runtime "
                "offsets are DMA gathers/scatters of HBM tensors; an SBUF/PSUM view takes "
                "one scalar_offset (a dynamic offset within each partition)")
        if scalar is None:
            raise KernelUsageError("an SBUF/PSUM runtime-offset view needs scalar_offset=")
        if isinstance(base, DynamicTileView):
            raise KernelUsageError(f"{st.name} already sits at a runtime offset; a view takes "
                                   "one scalar_offset (call ap on the tensor itself)")
        if not 0 <= indirect_dim < base.ndim:
            raise KernelUsageError(f"indirect_dim {indirect_dim} out of range for the "
                                   f"{base.ndim}-D view {st.name}{list(base.shape)}")
        _check_offset(scalar)
        # the partition dimension cannot move: indirect_dim 0 counts elements of the row
        step = base.strides[indirect_dim] if indirect_dim else 1
        return cls(st, base.offset + offset, tuple(c for _, c in pattern),
                   tuple(s for s, _ in pattern), scalar, step)

    def _new(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NkiTensor:
        # a view of the view: the same runtime shift applies to all of its elements
        return DynamicTileView(self.storage, offset, shape, strides, self.scalar,
                               self.shift_stride)

    # ------------------------------------------------------------------ the offset
    def offset_value(self) -> int:
        """The scalar_offset as the instruction reads it (0 in a symbolic trace)."""
        s = self.scalar
        if isinstance(s, NkiTensor):
            if s.storage.array is None:  # symbolic: no values
                return 0
            return int(s.numpy().reshape(-1)[0])
        if hasattr(s, "dma_offset"):
            return int(s.dma_offset())  # type: ignore[attr-defined]
        return operator.index(s)  # type: ignore[call-overload]

    def offset_tiles(self) -> tuple[NkiTensor, ...]:
        """The SBUF tile an instruction reads the offset from (none for a register/int)."""
        return (self.scalar,) if isinstance(self.scalar, NkiTensor) else ()

    def _row_span(self) -> tuple[int, int]:
        """First and last row position (elements within a partition) at offset 0."""
        lo, hi = self._extent(range(1, self.ndim))
        base = self.offset % self.storage.partition_elems
        return base + lo, base + hi

    def shift(self, op: str | None = None) -> int:
        """Elements the runtime offset moves the view by; an error when that leaves the
        partition row. `op` names the instruction in the message."""
        value = self.offset_value()
        moved = value * self.shift_stride
        if moved and 0 not in self.shape:
            lo, hi = self._row_span()
            row = self.storage.partition_elems
            if lo + moved < 0 or hi + moved >= row:
                name = op or _current_op()
                where = f"{name}: " if name else ""
                raise OutOfBoundsError(
                    f"{where}scalar_offset {value} moves {self.name}{list(self.shape)} to "
                    f"row elements {lo + moved}..{hi + moved}, outside its partition row of "
                    f"{row} elements")
        return moved

    # ------------------------------------------------------------------ values and records
    def numpy(self) -> np.ndarray:
        """The elements at the offset read now (not cached: a register may change)."""
        st = self.storage
        if st.array is None:
            raise KernelUsageError(f"tensor {st.name} has no values in symbolic mode")
        if 0 in self.shape:
            return st.array[:0].reshape(self.shape)
        isz = st.dtype.itemsize
        return np.ndarray(self.shape, st.dtype.storage, st.array,
                          (self.offset + self.shift()) * isz,
                          tuple(s * isz for s in self.strides))

    def acc_mask(self) -> np.ndarray:
        """The PSUM accumulation flags under the view at its runtime offset."""
        st = self.storage
        if 0 in self.shape:
            return st.acc[:0].reshape(self.shape)
        return np.ndarray(self.shape, np.bool_, st.acc, self.offset + self.shift(),
                          self.strides)

    def access(self) -> AccessPattern:
        """The partitions of the view x every row position a valid offset can reach (one
        contiguous run per partition): conservative for dependencies and SBUF traffic."""
        ap = self._ap
        if ap is not None:
            return ap
        st = self.storage
        if 0 in self.shape or not self.ndim:
            return super().access()
        row = st.partition_elems
        lo, hi = self._row_span()
        step = abs(self.shift_stride)
        if step:  # every placement lo + k * step .. hi + k * step inside [0, row)
            lo, hi = lo - (lo // step) * step, hi + ((row - 1 - hi) // step) * step
        first = self.offset - self.offset % row  # the first partition's row start
        ap = AccessPattern(st.name, st.buffer, st.dtype.name, st.dtype.itemsize, first + lo,
                           ((self.strides[0], self.shape[0]), (1, hi - lo + 1)), row)
        self._ap = ap
        return ap


def _current_op() -> str | None:
    """The instruction being executed: the last one recorded (values are computed after
    recording), for error messages raised while reading a view."""
    ctx = maybe_current()
    if ctx is None or not ctx.stream:
        return None
    return ctx.stream[-1].opcode.value
