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


# The reference lists these three nki.language names with no page or docstring of their own,
# and no instruction page names them as an `op`; their meaning would be a guess.
_NO_PAGE = "listed in the nki.language stub with no documented meaning or instruction using it"
average = _nl("average", _NO_PAGE)
prelu = _nl("prelu", "parametric ReLU needs a negative slope (alpha) and nisa.activation "
            "documents no parameter to carry it")
bypass = _nl("bypass", _NO_PAGE)
arange = _nl("arange", _BETA1_INDEX)
mgrid = _nl("mgrid", _BETA1_INDEX)

# documented `nl.tile_size` fields with no documented value
_ALIGN = "its value is not documented and addresses are not modelled"
TILE_SIZE_PENDING: dict[str, property] = {
    field: refused_property(f"nl.tile_size.{field}", _ALIGN)
    for field in ("psum_min_align", "sbuf_min_align")}

__all__ = ["arange", "average", "bypass", "mgrid", "prelu"]
