"""`nki.typing`: annotations used in kernel signatures (accepted, not enforced).

Beta-1 kernels annotate parameters `nt.tensor` or `nt.tensor[shape, dtype]` (inputs) and
`nt.mutable_tensor` (outputs written in place); both name `NkiTensor`, whose subscript
returns the class, so the annotations evaluate and nothing is checked.
"""

from __future__ import annotations

from tessera.nki.tensor import NkiTensor as _NkiTensor

tensor = _NkiTensor
mutable_tensor = _NkiTensor
