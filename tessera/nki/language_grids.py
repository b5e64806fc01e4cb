"""Tile and block grids and stream buffers (NKI 0.7): nl.tiles, nl.blocks, nl.alloc_tiles,
nl.alloc_blocks, nl.alloc_stream_buffers and the classes they return (NkiGrid, NkiTileGrid,
NkiBlockGrid from `tessera.nki.grid_views`, NkiStreamBuffers here).

Semantics follow the NKI 0.7 pages of each name:

- `tiles(source, *, tile_shape=None)`: a tile-coordinate view of a tensor or grid;
  `tile_shape` (at least two ints) covers the trailing dimensions, leading dimensions stay
  untiled. Over a grid, `tile_shape` defaults to the grid's and the selection's tiles are
  re-exposed (a block's interior tiles, say).
- `blocks(source, *, tile_shape=None, block_shape)`: groups `block_shape` tiles (same rank
  as `tile_shape`) into one coordinate.
- `alloc_tiles` / `alloc_blocks(*, tile_shape, [block_shape,] element_shape, buffer,
  dtype, address=None, name='')`: new storage with that geometry. HBM holds the compact
  `element_shape`; SBUF and PSUM hold every tile at full capacity, tile after tile along the
  free dimension, with the tile's first dimension on the partitions (`address` is accepted;
  the allocator places tensors).
- `alloc_stream_buffers(view, *, buffer, dim, num_slots=2, dtype=None, transpose_axes=None,
  address=None, name='')`: `num_slots` SBUF/PSUM work areas, each the full capacity of one
  step of `view` along coordinate `dim`; `buffers[k]` is slot `k % num_slots` in the shape of
  step k (a final partial step is a clamped view of its full slot).

None of these records an instruction: the data moves with the ordinary instructions
(`nisa.dma_copy(dst=t.data, src=g[i, j].data)`), and slots rotate because step k and step
k + num_slots use the same storage, so the timing model orders them like any reused tile.
"""

from __future__ import annotations

import math
import operator

from tessera.nki.creation import _buffer, new_tensor
from tessera.nki.errors import KernelUsageError, OutOfBoundsError, PartitionError
from tessera.nki.grid_views import Axis, Layout, NkiBlockGrid, NkiGrid, NkiTileGrid
from tessera.nki.objects import NKIObject
from tessera.nki.runtime import current, kernel_api, kernel_location
from tessera.nki.tensor import NkiTensor

__all__ = ["NkiBlockGrid", "NkiGrid", "NkiStreamBuffers", "NkiTileGrid",
           "alloc_blocks", "alloc_stream_buffers", "alloc_tiles", "blocks", "tiles"]

# empty_like's page: the dma_transpose destination orders of the tiled dimensions, by rank
_TRANSPOSE_ORDERS = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}


def _int_tuple(value: object, what: str, min_rank: int = 1) -> tuple[int, ...]:
    if not isinstance(value, tuple) or any(type(v) is not int for v in value):
        raise KernelUsageError(f"{what} must be a tuple of Python ints, got {value!r}")
    if len(value) < min_rank:
        raise KernelUsageError(f"{what} needs at least {min_rank} dimensions, got {value!r}")
    if any(v <= 0 for v in value):
        raise KernelUsageError(f"{what} entries must be positive, got {value!r}")
    return value


def _tile_grid(view: NkiTensor, tile_shape: tuple[int, ...]) -> NkiTileGrid:
    """Tiles over an existing view: element e of dimension d is the view's element e."""
    if type(view) is not NkiTensor:
        raise KernelUsageError("nl.tiles: an indirect view has no fixed layout to tile")
    rank, t_rank = view.ndim, len(tile_shape)
    if t_rank > rank:
        raise KernelUsageError(f"nl.tiles: tile_shape {tile_shape} has more dimensions than "
                               f"the {rank}-D source {view.name}{list(view.shape)}")
    untiled = rank - t_rank
    units = (1,) * untiled + tile_shape
    axes = tuple(
        Axis(d < untiled, 0, n, u, 1, 0, math.ceil(n / u), 1, False)
        for d, (n, u) in enumerate(zip(view.shape, units, strict=True)))
    layout = Layout(view.storage, view.offset, units,
                    tuple(u * s for u, s in zip(units, view.strides, strict=True)),
                    view.strides)
    return NkiTileGrid(layout=layout, axes=axes, tile_shape=tile_shape)


@kernel_api
def tiles(source: NkiTensor | NkiGrid, *, tile_shape: tuple[int, ...] | None = None
          ) -> NkiTileGrid:
    """A tile-coordinate view of `source` (a tensor, or a grid's selection)."""
    if isinstance(source, NkiGrid):
        if tile_shape is None or tuple(tile_shape) == source.tile_shape:
            return source.regrouped(None)  # type: ignore[return-value]
        source = source.data
    elif not isinstance(source, NkiTensor):
        raise KernelUsageError(f"nl.tiles: source must be an NkiTensor or a grid, got "
                               f"{type(source).__name__}")
    if tile_shape is None:
        raise KernelUsageError("nl.tiles: tile_shape is required when the source is a tensor")
    return _tile_grid(source, _int_tuple(tile_shape, "nl.tiles: tile_shape", 2))


def _check_blocks(block_shape: object, tile_shape: tuple[int, ...], where: str
                  ) -> tuple[int, ...]:
    group = _int_tuple(block_shape, f"{where}: block_shape")
    if len(group) != len(tile_shape):
        raise KernelUsageError(f"{where}: block_shape {group} must have the rank of "
                               f"tile_shape {tile_shape}")
    return group


@kernel_api
def blocks(source: NkiTensor | NkiGrid, *, tile_shape: tuple[int, ...] | None = None,
           block_shape: tuple[int, ...] | None = None) -> NkiBlockGrid:
    """A block-coordinate view: each coordinate groups `block_shape` tiles."""
    grid = tiles(source, tile_shape=tile_shape)
    group = _check_blocks(block_shape, grid.tile_shape, "nl.blocks")
    return grid.regrouped(group)  # type: ignore[return-value]


def _allocate(tile_shape: object, element_shape: object, buffer: object, dtype: object,
              name: str, where: str) -> NkiTileGrid:
    tile = _int_tuple(tile_shape, f"{where}: tile_shape", 2)
    extent = _int_tuple(element_shape, f"{where}: element_shape")
    if len(tile) > len(extent):
        raise KernelUsageError(f"{where}: tile_shape {tile} has more dimensions than "
                               f"element_shape {extent}")
    buf = _buffer(buffer)
    ctx = current()
    if not buf.on_chip:  # HBM: the compact logical extent
        return _tile_grid(new_tensor(ctx, extent, dtype, buf, name or None), tile)
    untiled = len(extent) - len(tile)
    if tile[0] > ctx.run.limits.pmax:
        raise PartitionError(f"{where}: a tile of {tile[0]} partitions exceeds "
                             f"pmax={ctx.run.limits.pmax}")
    counts = extent[:untiled] + tuple(math.ceil(e / t) for e, t in zip(
        extent[untiled:], tile, strict=True))
    tile_free = math.prod(tile[1:])
    cells = math.prod(counts)
    storage = new_tensor(ctx, (tile[0], cells * tile_free), dtype, buf, name or None).storage
    units = (1,) * untiled + tile
    cell_strides = tuple(math.prod(counts[d + 1:]) * tile_free for d in range(len(extent)))
    elem_strides = list(cell_strides)
    elem_strides[untiled] = storage.partition_elems
    for d in range(untiled + 1, len(extent)):
        elem_strides[d] = math.prod(tile[d - untiled + 1:])
    axes = tuple(Axis(d < untiled, 0, n, u, 1, 0, c, 1, False)
                 for d, (n, u, c) in enumerate(zip(extent, units, counts, strict=True)))
    layout = Layout(storage, 0, units, cell_strides, tuple(elem_strides))
    return NkiTileGrid(layout=layout, axes=axes, tile_shape=tile)


@kernel_api
def alloc_tiles(*, tile_shape: tuple[int, ...], element_shape: tuple[int, ...],
                buffer: object, dtype: object, address: object = None, name: str = ""
                ) -> NkiTileGrid:
    """New uninitialised storage organised as a grid of tiles."""
    return _allocate(tile_shape, element_shape, buffer, dtype, name, "nl.alloc_tiles")


@kernel_api
def alloc_blocks(*, tile_shape: tuple[int, ...], block_shape: tuple[int, ...],
                 element_shape: tuple[int, ...], buffer: object, dtype: object,
                 address: object = None, name: str = "") -> NkiBlockGrid:
    """New uninitialised storage organised as a grid of blocks of tiles (same storage
    order as `alloc_tiles`: blocks only regroup the coordinates)."""
    grid = _allocate(tile_shape, element_shape, buffer, dtype, name, "nl.alloc_blocks")
    group = _check_blocks(block_shape, grid.tile_shape, "nl.alloc_blocks")
    return grid.regrouped(group)  # type: ignore[return-value]


class NkiStreamBuffers(NKIObject):
    """`num_slots` on-chip work areas addressed by logical stream step:
    `buffers[k]` is slot `k % num_slots` shaped like step k (made by
    `nl.alloc_stream_buffers`)."""

    __slots__ = ("_source", "_dim", "_slots", "_order", "num_slots")

    def __init__(self, *, source: NkiTensor | NkiGrid | None = None, dim: int = 0,
                 slots: tuple = (), order: tuple[int, ...] | None = None) -> None:
        if source is None:
            raise KernelUsageError("nl.NkiStreamBuffers is made by nl.alloc_stream_buffers",
                                   location=str(kernel_location()))
        self._source = source
        self._dim = dim
        self._slots = slots
        self._order = order
        self.num_slots = len(slots)

    def _step(self, k: int) -> NkiTensor | NkiGrid:
        key = (slice(None),) * self._dim + (k,)
        return self._source[key]  # type: ignore[index]

    @kernel_api
    def __getitem__(self, k: object) -> NkiTensor | NkiGrid:
        if type(k) is not int:
            raise KernelUsageError(f"NkiStreamBuffers: a stream index must be a Python int, "
                                   f"got {k!r} (runtime and loop-variable indices are not "
                                   "supported)")
        steps = self._source.shape[self._dim]
        if not 0 <= k < steps:
            raise OutOfBoundsError(f"NkiStreamBuffers: step {k} outside the stream's "
                                   f"{steps} steps (negative indices are not supported)")
        slot = self._slots[k % self.num_slots]
        if isinstance(slot, NkiTensor):
            return slot
        lengths = self._step(k).element_shape  # type: ignore[union-attr]
        if self._order is not None:
            lead = len(lengths) - len(self._order)
            lengths = lengths[:lead] + tuple(lengths[lead + i] for i in self._order)
        return slot.clamped(lengths)

    def __iter__(self) -> None:
        raise KernelUsageError("NkiStreamBuffers: implicit iteration is not supported; "
                               "index buffers[k] for k in range(steps)",
                               location=str(kernel_location()))

    def __len__(self) -> int:
        raise KernelUsageError("NkiStreamBuffers: len() is not supported; use the source "
                               "view's shape", location=str(kernel_location()))


def _transpose_order(transpose_axes: object, rank: int) -> tuple[int, ...]:
    order = tuple(transpose_axes)  # type: ignore[arg-type]
    if _TRANSPOSE_ORDERS.get(rank) != order:
        raise KernelUsageError(f"nl.alloc_stream_buffers: transpose_axes {order} is not the "
                               f"supported order for {rank} tiled dimensions "
                               f"({_TRANSPOSE_ORDERS.get(rank, 'none')})")
    return order


def _grid_slot(step: NkiGrid, buffer: object, dtype: object, order: tuple[int, ...] | None,
               name: str) -> NkiGrid:
    """One full-capacity slot shaped like a grid step."""
    axes = [a for a in step._axes if not (a.untiled and a.consumed)]  # noqa: SLF001
    capacity = [a.count if a.untiled else a.count * a.span for a in axes]
    consumed = [a.consumed for a in axes]
    tile, group = step.tile_shape, getattr(step, "block_shape", None)
    if order is not None:
        lead = len(axes) - len(order)
        capacity = capacity[:lead] + [capacity[lead + i] for i in order]
        consumed = consumed[:lead] + [consumed[lead + i] for i in order]
        tile = tuple(tile[i] for i in order)
        group = None if group is None else tuple(group[i] for i in order)
    grid = _allocate(tile, tuple(capacity), buffer, dtype, name, "nl.alloc_stream_buffers")
    if group is not None:
        grid = grid.regrouped(group)
    key = tuple(0 if c else slice(None) for c in consumed)
    return grid[key] if key else grid


@kernel_api
def alloc_stream_buffers(view: NkiTensor | NkiGrid, *, buffer: object, dim: int,
                         num_slots: int = 2, dtype: object = None,
                         transpose_axes: tuple[int, ...] | None = None,
                         address: object = None, name: str = "") -> NkiStreamBuffers:
    """`num_slots` SBUF/PSUM slots, each holding one step of `view` along `dim`."""
    if not isinstance(view, NkiTensor | NkiGrid):
        raise KernelUsageError(f"nl.alloc_stream_buffers: view must be an NkiTensor or a "
                               f"grid, got {type(view).__name__}")
    if not _buffer(buffer).on_chip:
        raise KernelUsageError(f"nl.alloc_stream_buffers: slots live in nl.sbuf or nl.psum, "
                               f"not {_buffer(buffer).value}")
    if type(num_slots) is not int or num_slots < 1:
        raise KernelUsageError(f"nl.alloc_stream_buffers: num_slots must be a positive int, "
                               f"got {num_slots!r}")
    rank = len(view.shape)
    if type(dim) is not int or not 0 <= dim < rank:
        raise KernelUsageError(f"nl.alloc_stream_buffers: dim {dim!r} is not a coordinate of "
                               f"the view's shape {tuple(view.shape)}")
    dtype = view.dtype if dtype is None else dtype
    first = view[(slice(None),) * dim + (operator.index(0),)]
    base = name or "stream"
    order = None
    if isinstance(view, NkiTensor):
        shape = tuple(first.shape)
        if transpose_axes is not None:
            order = _transpose_order(transpose_axes, len(shape))
            shape = tuple(shape[i] for i in order)
            if shape[0] > current().run.limits.pmax:
                raise PartitionError(f"nl.alloc_stream_buffers: the transposed slot has "
                                     f"{shape[0]} partitions; the limit is 128")
        slots = tuple(new_tensor(current(), shape, dtype, buffer, base)
                      for i in range(num_slots))
        return NkiStreamBuffers(source=view, dim=dim, slots=slots, order=order)
    if transpose_axes is not None:
        order = _transpose_order(transpose_axes, len(view.tile_shape))
    slots = tuple(_grid_slot(first, buffer, dtype, order, base)
                  for i in range(num_slots))
    return NkiStreamBuffers(source=view, dim=dim, slots=slots, order=order)
