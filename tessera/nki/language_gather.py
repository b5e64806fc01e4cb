"""`nl.gather_flattened(data, indices, axis=0, dtype=None)`: a per-partition gather over the
flattened free dimensions, issued as one GpSimd `nisa.nc_n_gather` into a new SBUF tile.

From the nki.language.gather_flattened page (the 2.26 wording, which spells the semantics
out; 2.34 keeps the name, adds `axis` and drops the detail): data and indices are 2- to
4-dimensional with the same partitions, indices are uint32, the result has indices'
shape, and result[p, ...] = data[p].flatten()[indices[p, ...]] (np.take_along_axis over
the flattened rows). "Out of bounds indices will return garbage values": Tessera leaves
those result elements as the freshly allocated tile holds them (NaN for floats, the
uninitialised sentinel for integers) instead of raising. A `dtype` other than data's is a
Vector-engine cast of the gathered tile.
"""

from __future__ import annotations

from numbers import Integral

from tessera.nki import dtypes as dt
from tessera.nki import isa
from tessera.nki.buffers import Buffer
from tessera.nki.creation import new_tensor
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.isa.gather import issue_n_gather
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.tensor import NkiTensor

__all__ = ["gather_flattened"]

FN = "nl.gather_flattened"


def _tile(x: object, what: str) -> NkiTensor:
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"{FN}: {what} must be an NKI tensor, got {type(x).__name__}")
    if not x.buffer.on_chip:
        raise BufferKindError(f"{FN}: {what} {x.name}{list(x.shape)} is in {x.buffer.value}; "
                              "load it into SBUF first (nl.load / nisa.dma_copy)")
    if not 2 <= x.ndim <= 4:
        raise ShapeMismatchError(f"{FN}: {what} {x.name}{list(x.shape)} is {x.ndim}-D; data "
                                 "and indices must be 2-, 3- or 4-dimensional")
    return x


def _in_sbuf(ctx: CoreContext, x: NkiTensor) -> NkiTensor:
    """x, or a Vector-engine copy of a PSUM tile in SBUF (the GpSimd engine reads SBUF)."""
    if x.buffer is Buffer.SBUF:
        return x
    copy = new_tensor(ctx, x.shape, x.dtype, Buffer.SBUF, None)
    isa.tensor_copy(copy, x)
    return copy


@kernel_api
def gather_flattened(data: NkiTensor, indices: NkiTensor, axis: int = 0,
                     dtype: object = None) -> NkiTensor:
    """A new SBUF tile of indices' shape: result[p, ...] = data[p, flat index] where the
    index is indices[p, ...] into data's free dimensions flattened in C order.

    data and indices are on-chip, 2- to 4-D, with the same partitions; indices are
    uint32; axis must be 0 (the only value whose meaning the page gives); out-of-bounds
    indices give garbage (see the module docstring); `dtype` casts the result.
    """
    ctx = current()
    data = _tile(data, "data")
    indices = _tile(indices, "indices")
    if isinstance(axis, bool) or not isinstance(axis, Integral) or int(axis) != 0:
        raise KernelUsageError(f"{FN}: axis={axis!r}; only axis=0 (the default: gather over "
                               "the flattened free dimensions) is supported")
    if indices.dtype.name != "uint32":
        raise DTypeError(f"{FN}: indices {indices.name} is {indices.dtype.name}; it must be "
                         "uint32")
    out_dtype = data.dtype if dtype is None else dt.to_dtype(dtype)
    result = new_tensor(ctx, indices.shape, data.dtype, Buffer.SBUF, None)
    issue_n_gather(ctx, FN, result, _in_sbuf(ctx, data), _in_sbuf(ctx, indices),
                   out_of_range_ok=True)
    if out_dtype == data.dtype:
        return result
    cast = new_tensor(ctx, indices.shape, out_dtype, Buffer.SBUF, None)
    isa.tensor_copy(cast, result)
    return cast
