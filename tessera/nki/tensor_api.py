"""The part of `NkiTensor`'s documented interface that lives outside tensor.py: the
`NKIObject` base (as in NKI, where `NkiTensor` derives from it), annotation subscripts,
small aliases, the pattern views `rearrange` and `vector_select`, and the documented view
method Tessera refuses for now (`indirect`).

`NkiTensor` derives from `TensorApi`; the methods here use only the public view methods
of the tensor, so tensor.py keeps the storage and view arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.nki.errors import KernelUsageError
from tessera.nki.objects import NKIObject
from tessera.nki.refusals import Refused
from tessera.nki.runtime import kernel_api

if TYPE_CHECKING:  # tensor.py imports this module
    from tessera.nki.tensor import NkiTensor

# The Tensor Indirection deep dive: NeuronCore-v4 compute engines gather/scatter columns at
# uint16 offsets shared by each 16-partition group; no instruction here reads such operands.
_TI = ("Tensor Indirection (NeuronCore-v4 compute-engine column gather/scatter at uint16 "
       "offsets per 16-partition group) is not modelled by the instructions; use "
       ".vector_select or .ap(vector_offset=...) for DMA row gathers")


class TensorApi(NKIObject):
    """Documented `NkiTensor` members that are aliases, queries or refusals."""

    __slots__ = ()

    def __class_getitem__(cls, item: object) -> type:
        # Beta-1 annotations `nt.tensor[shape, dtype]` name the tensor type; they are
        # accepted and not enforced, as kernel signatures are not checked here
        return cls

    def _retyped(self: NkiTensor, dtype: object, indirect: bool) -> NkiTensor:
        """This view over the storage's bytes read as `dtype` (for `ap(dtype=)`), starting
        at the same byte."""
        from tessera.nki import dtypes as dt
        from tessera.nki.tensor import NkiTensor

        new = dt.to_dtype(dtype)
        old_size, new_size = self.dtype.itemsize, new.itemsize
        if new_size == old_size:
            return NkiTensor(self.storage.alias(new), self.offset, self.shape, self.strides)
        if indirect:
            raise KernelUsageError(f"ap(dtype={new.name}) with runtime offsets needs the same "
                                   f"itemsize as {self.dtype.name}")
        if (self.offset * old_size) % new_size:
            raise KernelUsageError(f"ap(dtype={new.name}): view {self._describe()} of "
                                   f"{self.name} does not start on a {new_size}-byte boundary")
        # a direct ap replaces shape and strides with its pattern: only the start matters
        return NkiTensor(self.storage.alias(new), self.offset * old_size // new_size, (1,),
                         (1,), check=False)

    def reinterpret_cast(self, dtype: object) -> NkiTensor:
        """Alias of `view(dtype)`: the same bytes read as another dtype."""
        return self.view(dtype)  # type: ignore[attr-defined]

    def is_indirect(self) -> bool:
        """True for views placed by runtime offsets (`ap(..., vector_offset=/scalar_offset=)`)."""
        # imported here: indirect.py builds on tensor.py, which imports this module
        from tessera.nki.indirect import IndirectTensor

        return isinstance(self, IndirectTensor)

    @kernel_api
    def rearrange(self, src_pattern: object, dst_pattern: object = None,
                  fixed_sizes: dict[str, int] | None = None) -> NkiTensor:
        """Einops-style view: `t.rearrange(('p', ('a', 'b')), ('p', 'b', 'a'), {'a': 4})`
        (or `'p (a b) -> p b a'`); see `tessera.nki.rearrange`."""
        from tessera.nki.rearrange import rearrange_view  # it needs the NkiTensor class

        return rearrange_view(self, src_pattern, dst_pattern, fixed_sizes)  # type: ignore[arg-type]

    @kernel_api
    def vector_select(self, dim: int, vector_offset: NkiTensor) -> NkiTensor:
        """Rows of dimension `dim` picked per partition at runtime: row p of the result is
        position `vector_offset[p]` along `dim`, followed by the view's other dimensions.
        An indirect HBM view for DMAs (the same as `ap(..., vector_offset=,
        indirect_dim=dim)`)."""
        from tessera.nki.indirect import select_rows

        return select_rows(self, dim, vector_offset)  # type: ignore[arg-type]

    indirect = Refused("nl.NkiTensor.indirect", _TI)

    # ------------------------------------------------------------------ Beta-1 tile values
    # Beta-1 kernels (neuronxcc.nki) treat tiles as values: `t[...] = f(x)`, `psum += ...`,
    # `a + b`, `a / 512`. Each works inside a Beta-1 launch only (tessera.nki.beta1.values).
    __array_ufunc__ = None  # `np.float32(2) * tile` defers to the tile's operators

    @kernel_api
    def __setitem__(self, key: object, value: object) -> None:
        from tessera.nki.beta1 import values  # the Beta-1 front end builds on tensors

        values.assign(self, key, value)  # type: ignore[arg-type]

    @kernel_api
    def __iadd__(self, value: object) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.inplace(self, "add", value)  # type: ignore[arg-type]

    @kernel_api
    def __isub__(self, value: object) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.inplace(self, "sub", value)  # type: ignore[arg-type]

    @kernel_api
    def __imul__(self, value: object) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.inplace(self, "mul", value)  # type: ignore[arg-type]

    @kernel_api
    def __itruediv__(self, value: object) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.inplace(self, "truediv", value)  # type: ignore[arg-type]

    def _op(self, name: str, a: object, b: object) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.binary(name, a, b)

    @kernel_api
    def __add__(self, o: object) -> NkiTensor:
        return self._op("add", self, o)

    @kernel_api
    def __radd__(self, o: object) -> NkiTensor:
        return self._op("add", o, self)

    @kernel_api
    def __sub__(self, o: object) -> NkiTensor:
        return self._op("subtract", self, o)

    @kernel_api
    def __rsub__(self, o: object) -> NkiTensor:
        return self._op("subtract", o, self)

    @kernel_api
    def __mul__(self, o: object) -> NkiTensor:
        return self._op("multiply", self, o)

    @kernel_api
    def __rmul__(self, o: object) -> NkiTensor:
        return self._op("multiply", o, self)

    @kernel_api
    def __truediv__(self, o: object) -> NkiTensor:
        return self._op("divide", self, o)

    @kernel_api
    def __rtruediv__(self, o: object) -> NkiTensor:
        return self._op("divide", o, self)

    @kernel_api
    def __pow__(self, o: object) -> NkiTensor:
        return self._op("power", self, o)

    @kernel_api
    def __lt__(self, o: object) -> NkiTensor:
        return self._op("less", self, o)

    @kernel_api
    def __le__(self, o: object) -> NkiTensor:
        return self._op("less_equal", self, o)

    @kernel_api
    def __gt__(self, o: object) -> NkiTensor:
        return self._op("greater", self, o)

    @kernel_api
    def __ge__(self, o: object) -> NkiTensor:
        return self._op("greater_equal", self, o)

    @kernel_api
    def __and__(self, o: object) -> NkiTensor:
        return self._op("bitwise_and", self, o)

    @kernel_api
    def __or__(self, o: object) -> NkiTensor:
        return self._op("bitwise_or", self, o)

    @kernel_api
    def __neg__(self) -> NkiTensor:
        from tessera.nki.beta1 import values

        return values.unary("negative", self)  # type: ignore[arg-type]

    @kernel_api
    def broadcast_to(self, shape: object) -> NkiTensor:
        """Beta-1 tile method: a new tile of `shape` repeating this one's size-1 axes
        (`nl.broadcast_to`)."""
        from tessera.nki.beta1 import values

        values.require_beta1("tile.broadcast_to")
        from tessera.nki.beta1.layout import broadcast_to

        return broadcast_to(self, shape=shape)

    @kernel_api
    def astype(self, dtype: object) -> NkiTensor:
        """Beta-1 tile method: a copy of the tile in `dtype` (one tensor_copy)."""
        from tessera.nki.beta1 import layout, values

        values.require_beta1("tile.astype")
        return layout.copy(self, dtype=dtype)

    @kernel_api
    def expand_dims(self, axis: int) -> NkiTensor:
        """Beta-1 tile method: `nl.expand_dims(tile, axis)` (a view)."""
        from tessera.nki.beta1 import layout, values

        values.require_beta1("tile.expand_dims")
        return layout.expand_dims(self, axis)

    @kernel_api
    def assert_shape(self, shape: object) -> NkiTensor:
        """Beta-1 tile method: this tile, after checking its shape is `shape`."""
        want = tuple(int(d) for d in shape)  # type: ignore[union-attr]
        if tuple(self.shape) != want:
            raise KernelUsageError(f"{self.name} has shape {list(self.shape)}, asserted "
                                   f"{list(want)}")
        return self
