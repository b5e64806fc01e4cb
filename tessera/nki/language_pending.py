"""`nki.language` names from the NKI API reference that Tessera refuses for now.

Each is a `Refused` placeholder: `import nki.language as nl` and `from nki.language import
rand` work, and the first use raises a `KernelUsageError` at the kernel's line naming
the API and the reason (docs/nki_coverage.md lists them all, from reference_names.yaml).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused, refused_property

_BETA1_INDEX = "Beta-1 affine index expressions; index with slices, nl.ds or .ap"


def _nl(name: str, reason: str) -> Refused:
    return Refused(f"nl.{name}", reason)


average = _nl("average", "operator constant without a documented meaning")
prelu = _nl("prelu", "parametric ReLU needs activation's relu_param, which is not modelled")
bypass = _nl("bypass", "pass-through operator stage of the ISA instructions")
arange = _nl("arange", _BETA1_INDEX)
mgrid = _nl("mgrid", _BETA1_INDEX)
par_dim = _nl("par_dim", "Beta-1 block dimensions; hold tiles in a Python list")

# documented `nl.tile_size` fields with no documented value
_ALIGN = "its value is not documented and addresses are not modelled"
TILE_SIZE_PENDING: dict[str, property] = {
    field: refused_property(f"nl.tile_size.{field}", _ALIGN)
    for field in ("psum_min_align", "sbuf_min_align")}

__all__ = ["arange", "average", "bypass", "mgrid", "par_dim", "prelu"]
