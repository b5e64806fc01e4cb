"""`nki.language` names from the NKI API reference that Tessera refuses for now.

Each is a `Refused` placeholder: `import nki.language as nl` and `from nki.language import
rand` work, and the first use raises a `KernelUsageError` at the kernel's line naming
the API and the reason (docs/nki_coverage.md lists them all, from reference_names.yaml).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused, refused_property

_RANDOM = "random number generation is not modelled"
_GRID = "tile and block grids (NKI 0.7) are not modelled; index NkiTensor views"
_LOOP = "compiled loops (NKI 0.7) are not modelled; use a Python loop or nl.dynamic_range"
_BETA1_INDEX = "Beta-1 affine index expressions; index with slices, nl.ds or .ap"


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


average = _nl("average", "operator constant without a documented meaning")
prelu = _nl("prelu", "parametric ReLU needs activation's relu_param, which is not modelled")
bypass = _nl("bypass", "pass-through operator stage of the ISA instructions")
dropout = _nl("dropout", _RANDOM)
random_seed = _nl("random_seed", _RANDOM)
rand = _nl("rand", _RANDOM)
gather_flattened = _nl("gather_flattened", "gather helper is not modelled")
tiles = _nl("tiles", _GRID)
blocks = _nl("blocks", _GRID)
alloc_tiles = _nl("alloc_tiles", _GRID)
alloc_blocks = _nl("alloc_blocks", _GRID)
alloc_stream_buffers = _nl("alloc_stream_buffers", _GRID)
NkiGrid = _nl("NkiGrid", _GRID)
NkiTileGrid = _nl("NkiTileGrid", _GRID)
NkiBlockGrid = _nl("NkiBlockGrid", _GRID)
NkiStreamBuffers = _nl("NkiStreamBuffers", _GRID)
fori_loop = _nl("fori_loop", _LOOP)
while_loop = _nl("while_loop", _LOOP)
arange = _nl("arange", _BETA1_INDEX)
mgrid = _nl("mgrid", _BETA1_INDEX)
par_dim = _nl("par_dim", "Beta-1 block dimensions; hold tiles in a Python list")

# documented `nl.tile_size` fields with no documented value
_ALIGN = "its value is not documented and addresses are not modelled"
TILE_SIZE_PENDING: dict[str, property] = {
    field: refused_property(f"nl.tile_size.{field}", _ALIGN)
    for field in ("psum_min_align", "sbuf_min_align")}

__all__ = [
    "NkiBlockGrid", "NkiGrid", "NkiStreamBuffers", "NkiTileGrid", "alloc_blocks",
    "alloc_stream_buffers", "alloc_tiles", "arange", "average", "blocks", "bypass", "dropout",
    "fori_loop", "gather_flattened", "mgrid", "par_dim", "prelu", "rand", "random_seed",
    "tiles", "while_loop",
]
