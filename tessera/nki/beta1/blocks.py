"""Beta-1 block dimensions: `nl.ndarray((4, nl.par_dim(128), 512), ...)`.

The Beta-1 pages ("nki.language.par_dim", "NKI programming model": tile and block
dimensions) put the partition dimension where `nl.par_dim` stands; the dimensions before
it are block dimensions, so the tensor is a list (or nested lists) of tiles, each of the
shape from `par_dim` on. The compiler allocates each tile on its own, which is how a
blocked tensor larger than a partition row can still be placed, or spilled tile by tile.
Here each tile is its own allocation, so the allocator and the spilling model see tiles.
"""

from __future__ import annotations

import itertools
import math
import operator

from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.runtime import kernel_api
from tessera.nki.tensor import NkiTensor


class BlockTensor:
    """A tensor with leading block dimensions: tiles indexed by the leading ints."""

    __slots__ = ("block_shape", "tiles", "name")

    def __init__(self, block_shape: tuple[int, ...], tiles: list[NkiTensor], name: str) -> None:
        self.block_shape = block_shape
        self.tiles = tiles  # row-major over block_shape
        self.name = name

    # ---------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.block_shape + self.tiles[0].shape

    @property
    def dtype(self) -> object:
        return self.tiles[0].dtype

    @property
    def buffer(self) -> Buffer:
        return self.tiles[0].buffer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.block_shape[0]

    def __repr__(self) -> str:
        return (f"BlockTensor({self.name}, blocks={list(self.block_shape)}, "
                f"tile={list(self.tiles[0].shape)}, dtype={self.dtype.name})")

    # ---------------------------------------------------------------- indexing
    def _split(self, key: object) -> tuple[list[int], tuple]:
        keys = list(key) if isinstance(key, tuple) else [key]
        if keys and keys[0] is Ellipsis:
            raise KernelUsageError(f"{self.name}[...]: index the block dimensions "
                                   f"{list(self.block_shape)} with ints first")
        nb = len(self.block_shape)
        blocks = []
        for k, n in zip(keys[:nb], self.block_shape, strict=False):
            try:
                b = operator.index(k)
            except TypeError:
                raise KernelUsageError(f"{self.name}: block dimensions take int indices (a "
                                       f"list of tiles), got {k!r}") from None
            if not -n <= b < n:
                raise OutOfBoundsError(f"block index {b} out of range for block dimension of "
                                       f"size {n} of {self.name}{list(self.shape)}")
            blocks.append(b % n)
        return blocks, tuple(keys[nb:])

    def _flat(self, blocks: list[int]) -> int:
        idx = 0
        for b, n in zip(blocks, self.block_shape, strict=False):
            idx = idx * n + b
        return idx

    @kernel_api
    def __getitem__(self, key: object) -> object:
        blocks, rest = self._split(key)
        nb = len(self.block_shape)
        if len(blocks) < nb:  # a sub-list of tiles
            sub = self.block_shape[len(blocks):]
            start = self._flat(blocks) * math.prod(sub)
            return BlockTensor(sub, self.tiles[start:start + math.prod(sub)], self.name)
        tile = self.tiles[self._flat(blocks)]
        return tile[rest] if rest else tile

    @kernel_api
    def __setitem__(self, key: object, value: object) -> None:
        blocks, rest = self._split(key)
        if len(blocks) < len(self.block_shape):
            sub = self[tuple(blocks)]
            for t in sub.tiles:  # type: ignore[union-attr]
                t[...] = value
            return
        tile = self.tiles[self._flat(blocks)]
        tile[rest if rest else ...] = value


def blocked(block_shape: tuple[int, ...], make_tile: object, name: str) -> BlockTensor:
    """A block tensor whose tiles come from `make_tile()` (one allocation each)."""
    tiles = [make_tile() for _ in itertools.product(*[range(n) for n in block_shape])]
    return BlockTensor(block_shape, tiles, name)  # type: ignore[arg-type]
