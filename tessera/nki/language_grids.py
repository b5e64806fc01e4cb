"""Tile and block grids and stream buffers (NKI 0.7): nl.tiles, nl.blocks, nl.alloc_tiles,
nl.alloc_blocks, nl.alloc_stream_buffers, NkiGrid, NkiTileGrid, NkiBlockGrid, NkiStreamBuffers.

Not implemented yet: each name is a `Refused` placeholder (tessera.nki.refusals).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

_GRID = "tile and block grids (NKI 0.7) are not modelled; index NkiTensor views"


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


tiles = _nl("tiles", _GRID)
blocks = _nl("blocks", _GRID)
alloc_tiles = _nl("alloc_tiles", _GRID)
alloc_blocks = _nl("alloc_blocks", _GRID)
alloc_stream_buffers = _nl("alloc_stream_buffers", _GRID)
NkiGrid = _nl("NkiGrid", _GRID)
NkiTileGrid = _nl("NkiTileGrid", _GRID)
NkiBlockGrid = _nl("NkiBlockGrid", _GRID)
NkiStreamBuffers = _nl("NkiStreamBuffers", _GRID)

__all__ = ["NkiBlockGrid", "NkiGrid", "NkiStreamBuffers", "NkiTileGrid",
           "alloc_blocks", "alloc_stream_buffers", "alloc_tiles", "blocks", "tiles"]
