"""The part of `NkiTensor`'s documented interface that lives outside tensor.py: the
`NKIObject` base (as in NKI, where `NkiTensor` derives from it), annotation subscripts,
small aliases, and the documented view methods Tessera refuses for now.

`NkiTensor` derives from `TensorApi`; the methods here use only the public view methods
of the tensor, so tensor.py keeps the storage and view arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.nki.objects import NKIObject
from tessera.nki.refusals import Refused

if TYPE_CHECKING:  # tensor.py imports this module
    from tessera.nki.tensor import NkiTensor

_TI = "Tensor Indirection (NeuronCore-v4 .indirect views) is not modelled"


class TensorApi(NKIObject):
    """Documented `NkiTensor` members that are aliases, queries or refusals."""

    __slots__ = ()

    def __class_getitem__(cls, item: object) -> type:
        # Beta-1 annotations `nt.tensor[shape, dtype]` name the tensor type; they are
        # accepted and not enforced, as kernel signatures are not checked here
        return cls

    def reinterpret_cast(self, dtype: object) -> NkiTensor:
        """Alias of `view(dtype)`: the same bytes read as another dtype."""
        return self.view(dtype)  # type: ignore[attr-defined]

    def is_indirect(self) -> bool:
        """True for views placed by runtime offsets (`ap(..., vector_offset=/scalar_offset=)`)."""
        # imported here: indirect.py builds on tensor.py, which imports this module
        from tessera.nki.indirect import IndirectTensor

        return isinstance(self, IndirectTensor)

    rearrange = Refused("nl.NkiTensor.rearrange", "einops-style view patterns")
    vector_select = Refused("nl.NkiTensor.vector_select",
                            "per-partition indirect select; use .ap(vector_offset=...)")
    indirect = Refused("nl.NkiTensor.indirect", _TI)
