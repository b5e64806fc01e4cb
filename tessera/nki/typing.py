"""`nki.typing`: annotations used in kernel signatures (accepted, not enforced)."""

from __future__ import annotations

from tessera.nki.tensor import NkiTensor

tensor = NkiTensor
mutable_tensor = NkiTensor
