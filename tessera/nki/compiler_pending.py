"""`nki.compiler` names from the NKI API reference that Tessera refuses for now.

`AddressRotation` is documented only as "whether the backend may rotate a memloc's
address", without its members; the Beta-1 `ncc.sbuf`/`ncc.psum` allocator namespaces place
tiles by hand, which the allocator here does not take. Using any of them raises a
`KernelUsageError` naming it (docs/nki_coverage.md).
"""

from __future__ import annotations

from tessera.nki.refusals import Refused

AddressRotation = Refused("nki.compiler.AddressRotation",
                          "its members are not documented; backend address rotation is not "
                          "modelled")
sbuf = Refused("nki.compiler.sbuf", "Beta-1 manual SBUF allocators; nl.ndarray allocates")
psum = Refused("nki.compiler.psum", "Beta-1 manual PSUM allocators; nl.ndarray allocates")

__all__ = ["AddressRotation", "psum", "sbuf"]
