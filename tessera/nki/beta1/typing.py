"""`neuronxcc.nki.typing` (Beta 1): `nt.tensor[shape, dtype]` and `nt.mutable_tensor`
annotations (accepted, not enforced: kernel signatures are not checked)."""

from __future__ import annotations

from tessera.nki.tensor import NkiTensor as _NkiTensor

tensor = _NkiTensor
mutable_tensor = _NkiTensor

__all__ = ["mutable_tensor", "tensor"]
