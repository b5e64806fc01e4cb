"""Tile and block grids (NKI 0.7): `NkiGrid`, `NkiTileGrid`, `NkiBlockGrid`.

A grid is a view of a tensor region addressed in tile (or block) coordinates; following the
`nki.language.NkiGrid`, `NkiTileGrid` and `NkiBlockGrid` pages:

- `shape` counts coordinates (tiles, or blocks of `block_shape` tiles) along each tiled
  dimension; untiled leading (HBM) dimensions count elements and are indexed one slab at a
  time;
- indexing with an int consumes a coordinate (the grid type is kept), a slice with a
  positive step keeps the level with the selected count; a negative int counts from the end;
- partial final tiles and blocks are kept and clamped to the source's extent
  (`is_remainder`), `element_shape` is the number of selected elements per dimension;
- `data` is the selection as one `NkiTensor` view, which every instruction accepts; a
  selection one access pattern cannot describe (a stepped slice over tiles, or tiles that
  are not adjacent in storage) has `is_data_representable == False` and `data` raises.

Creating or indexing a grid allocates nothing and records no instruction. A grid maps
elements to storage through a `Layout`: the source view itself (`nl.tiles`), or the dense
tile-after-tile layout `nl.alloc_tiles` gives SBUF/PSUM (tile partitions on the partitions,
tiles one after another along the free dimension).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.objects import NKIObject
from tessera.nki.runtime import kernel_api, kernel_location
from tessera.nki.tensor import NkiTensor, Storage


@dataclass(frozen=True, slots=True)
class Layout:
    """Where element `e` of root dimension d lives: `offset + sum_d (e // units[d]) *
    cell_strides[d] + (e % units[d]) * elem_strides[d]` (storage elements)."""

    storage: Storage
    offset: int
    units: tuple[int, ...]
    cell_strides: tuple[int, ...]
    elem_strides: tuple[int, ...]

    def at(self, dim: int, element: int) -> int:
        """Storage offset contributed by `element` along root dimension `dim`."""
        tile, within = divmod(element, self.units[dim])
        return tile * self.cell_strides[dim] + within * self.elem_strides[dim]


@dataclass(frozen=True, slots=True)
class Axis:
    """One root dimension of a grid selection. Coordinate c covers elements
    `[origin + c*span, min(origin + (c+1)*span, limit))` with `span = unit * group`."""

    untiled: bool
    origin: int
    limit: int
    unit: int      # elements per tile (1 when untiled)
    group: int     # tiles per coordinate (the block_shape entry; 1 for tiles)
    start: int     # first selected coordinate
    count: int     # selected coordinates
    step: int      # coordinate step between selected coordinates
    consumed: bool  # an int index consumed this coordinate

    @property
    def span(self) -> int:
        return self.unit * self.group

    def runs(self) -> list[tuple[int, int]]:
        """The element ranges of the selected coordinates, clamped to `limit`."""
        out = []
        for k in range(self.count):
            lo = self.origin + (self.start + k * self.step) * self.span
            out.append((lo, min(lo + self.span, self.limit)))
        return out

    def elements(self) -> int:
        return sum(hi - lo for lo, hi in self.runs())

    def is_remainder(self) -> bool:
        return any(hi - lo < self.span for lo, hi in self.runs())

    def contiguous(self) -> bool:
        return self.count == 1 or self.step == 1


def _coord(value: object, size: int, where: str) -> int:
    if isinstance(value, bool) or isinstance(value, NkiTensor):
        raise KernelUsageError(
            f"{where}: runtime grid coordinates (SBUF scalars, NkiScalar, VirtualRegister) "
            "are not modelled; index the grid with Python ints and slices")
    try:
        i = operator.index(value)
    except TypeError:
        raise KernelUsageError(f"{where}: a grid index must be an int or a slice, got "
                               f"{value!r}") from None
    if not -size <= i < size:
        raise OutOfBoundsError(f"{where}: coordinate {i} out of range for a grid dimension "
                               f"of {size}")
    return i % size


class NkiGrid(NKIObject):
    """A tensor region navigated in tile or block coordinates (see module docstring).
    Made by `nl.tiles`, `nl.blocks`, `nl.alloc_tiles` and `nl.alloc_blocks`."""

    __slots__ = ("_layout", "_axes", "_tile_shape", "_block_shape")

    def __init__(self, *, layout: Layout | None = None, axes: tuple[Axis, ...] = (),
                 tile_shape: tuple[int, ...] = (),
                 block_shape: tuple[int, ...] | None = None) -> None:
        if layout is None:
            raise KernelUsageError(f"nl.{type(self).__name__} is not constructed directly; "
                                   "use nl.tiles, nl.blocks, nl.alloc_tiles or nl.alloc_blocks",
                                   location=str(kernel_location()))
        self._layout = layout
        self._axes = axes
        self._tile_shape = tile_shape
        self._block_shape = block_shape

    def _with(self, axes: tuple[Axis, ...]) -> NkiGrid:
        return type(self)(layout=self._layout, axes=axes, tile_shape=self._tile_shape,
                          block_shape=self._block_shape)

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        """Coordinates along each remaining grid dimension."""
        return tuple(a.count for a in self._axes if not a.consumed)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """Nominal source elements of one tile."""
        return self._tile_shape

    @property
    def element_shape(self) -> tuple[int, ...]:
        """Selected elements along each source dimension (consumed untiled dimensions are
        dropped, as in `data`)."""
        return tuple(a.elements() for a in self._axes if not (a.untiled and a.consumed))

    @property
    def index_step_elements(self) -> tuple[int, ...]:
        """Source elements between consecutive coordinates of each grid dimension."""
        return tuple(a.step * a.span for a in self._axes if not a.consumed)

    @property
    def is_remainder(self) -> bool:
        """True when a selected tile or block is clamped by the source's extent."""
        return any(a.is_remainder() for a in self._axes if not a.untiled)

    @property
    def dtype(self) -> dt.DType:
        return self._layout.storage.dtype

    @property
    def buffer(self) -> Buffer:
        return self._layout.storage.buffer

    @property
    def is_data_representable(self) -> bool:
        """Whether one `NkiTensor` view describes this selection exactly."""
        return isinstance(self._build(), NkiTensor)

    @property
    def data(self) -> NkiTensor:
        """The selection as one `NkiTensor` operand."""
        view = self._build()
        if isinstance(view, str):
            raise KernelUsageError(f"{type(self).__name__}.data: {view}",
                                   location=str(kernel_location()))
        return view

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._layout.storage.name}, shape={self.shape}, "
                f"tile_shape={self._tile_shape}, element_shape={self.element_shape})")

    # ------------------------------------------------------------------ data
    def _build(self) -> NkiTensor | str:
        """The selection's view, or why no single view describes it."""
        lay = self._layout
        offset = lay.offset
        shape: list[int] = []
        strides: list[int] = []
        for d, a in enumerate(self._axes):
            if a.untiled:
                first = a.origin + a.start
                offset += lay.at(d, first)
                if not a.consumed:
                    shape.append(a.count)
                    strides.append(a.step * lay.cell_strides[d])
                continue
            if not a.contiguous():
                return (f"dimension {d} selects coordinates {a.step} apart, which leaves "
                        "gaps no single access pattern spans")
            lo, hi = a.runs()[0][0], a.runs()[-1][1]
            unit = a.unit
            spans_tiles = lo // unit != (hi - 1) // unit
            if spans_tiles and lay.cell_strides[d] != unit * lay.elem_strides[d]:
                return (f"dimension {d} spans several tiles that are not adjacent in "
                        f"{lay.storage.buffer.value} storage")
            offset += lay.at(d, lo)
            shape.append(hi - lo)
            strides.append(lay.elem_strides[d])
        try:
            return NkiTensor(lay.storage, offset, tuple(shape), tuple(strides))
        except OutOfBoundsError as err:  # on chip: the partition dimension must lead
            return f"the selection is not one on-chip view ({err.args[0]})"

    # ------------------------------------------------------------------ indexing
    @kernel_api
    def __getitem__(self, key: object) -> NkiGrid:
        where = f"{type(self).__name__}{list(self.shape)}[...]"
        items = key if isinstance(key, tuple) else (key,)
        live = [i for i, a in enumerate(self._axes) if not a.consumed]
        if len(items) > len(live):
            raise OutOfBoundsError(f"{where}: {len(items)} indices for a grid with "
                                   f"{len(live)} dimensions")
        axes = list(self._axes)
        for pos, item in zip(live, items, strict=False):
            a = axes[pos]
            if isinstance(item, slice):
                if item.step is not None and operator.index(item.step) <= 0:
                    raise KernelUsageError(f"{where}: grid slices need a positive step, got "
                                           f"{item.step}")
                picked = range(a.count)[item]
                if not picked:
                    raise OutOfBoundsError(f"{where}: slice {item.start}:{item.stop} selects "
                                           "no coordinates")
                axes[pos] = replace(a, start=a.start + picked.start * a.step,
                                    count=len(picked), step=a.step * picked.step)
            else:
                i = _coord(item, a.count, where)
                axes[pos] = replace(a, start=a.start + i * a.step, count=1, step=1,
                                    consumed=True)
        return self._with(tuple(axes))

    def regrouped(self, group: tuple[int, ...] | None) -> NkiGrid:
        """The selected region as a fresh grid of tiles (`group` None) or of blocks of
        `group` tiles, coordinates restarting at the selection's first tile."""
        axes = []
        t = 0
        for d, a in enumerate(self._axes):
            if a.untiled:
                axes.append(a)
                continue
            g = 1 if group is None else group[t]
            t += 1
            if not a.contiguous():
                raise KernelUsageError(
                    f"cannot regroup dimension {d} of {type(self).__name__}: its selection "
                    f"takes coordinates {a.step} apart")
            lo, hi = a.runs()[0][0], a.runs()[-1][1]
            axes.append(Axis(False, lo, hi, a.unit, g, 0, math.ceil((hi - lo) / (a.unit * g)),
                             1, False))
        cls = NkiTileGrid if group is None else NkiBlockGrid
        return cls(layout=self._layout, axes=tuple(axes), tile_shape=self._tile_shape,
                   block_shape=None if group is None else tuple(group))

    def clamped(self, lengths: tuple[int, ...]) -> NkiGrid:
        """This grid with each element-carrying axis limited to `lengths` elements (for the
        final, partial step of a stream)."""
        axes = list(self._axes)
        keep = [i for i, a in enumerate(axes) if not (a.untiled and a.consumed)]
        for i, n in zip(keep, lengths, strict=True):
            a = axes[i]
            if not a.untiled:
                first = a.origin + a.start * a.span
                axes[i] = replace(a, limit=min(a.limit, first + n))
        return self._with(tuple(axes))


class NkiTileGrid(NkiGrid):
    """A grid whose coordinates count tiles (`nl.tiles`, `nl.alloc_tiles`)."""

    __slots__ = ()


class NkiBlockGrid(NkiGrid):
    """A grid whose coordinates count blocks of `block_shape` tiles (`nl.blocks`,
    `nl.alloc_blocks`)."""

    __slots__ = ()

    @property
    def block_shape(self) -> tuple[int, ...]:
        """Tiles per block along each tiled dimension."""
        return self._block_shape or ()
