"""Small documented `nki.language` helpers: buffer predicates, `zeros_like`/`empty_like`
and `device_print`.

Each follows its page of the NKI API reference:
- `is_hbm/is_on_chip/is_psum/is_sbuf(buffer)`: which memory a buffer (`nl.sbuf`, ...) is;
- `zeros_like(x, dtype=None, buffer=None)`: zeros of x's shape, dtype `dtype` or x's,
  buffer `buffer` or SBUF (the page's default);
- `empty_like(x, dtype=None, buffer=None)`: uninitialised, dtype and buffer default to x's;
- `device_print(prefix, tensor)`: "In CPU simulation, this prints immediately to stdout".
  It records no instruction (the hardware's debug stream is not modelled in timings).
"""

from __future__ import annotations

import sys

import numpy as np

from tessera.nki.buffers import Buffer
from tessera.nki.creation import ndarray, zeros
from tessera.nki.dtypes import cast, to_dtype
from tessera.nki.errors import KernelUsageError
from tessera.nki.runtime import current, kernel_api
from tessera.nki.tensor import NkiTensor

__all__ = ["device_print", "empty_like", "is_hbm", "is_on_chip", "is_psum", "is_sbuf",
           "static_cast", "zeros_like"]


def _as_buffer(buffer: object, what: str) -> Buffer:
    if isinstance(buffer, Buffer):
        return buffer
    for b in Buffer:
        if buffer == b.value:
            return b
    raise KernelUsageError(f"nl.{what}: expected a buffer such as nl.sbuf, got {buffer!r}")


def is_hbm(buffer: object) -> bool:
    """True for any HBM buffer (hbm, private_hbm, shared_hbm)."""
    return _as_buffer(buffer, "is_hbm").is_hbm


def is_on_chip(buffer: object) -> bool:
    """True for SBUF and PSUM."""
    return _as_buffer(buffer, "is_on_chip").on_chip


def is_psum(buffer: object) -> bool:
    """True for PSUM."""
    return _as_buffer(buffer, "is_psum") is Buffer.PSUM


def is_sbuf(buffer: object) -> bool:
    """True for SBUF."""
    return _as_buffer(buffer, "is_sbuf") is Buffer.SBUF


def _tensor_arg(x: object, what: str) -> NkiTensor:
    if not isinstance(x, NkiTensor):
        raise KernelUsageError(f"nl.{what} needs an NKI tensor, got {type(x).__name__}")
    return x


@kernel_api
def zeros_like(x: NkiTensor, dtype: object = None, buffer: object = None,
               name: str = "") -> NkiTensor:
    """A new tensor of zeros shaped like `x` (dtype defaults to x's, buffer to SBUF)."""
    t = _tensor_arg(x, "zeros_like")
    return zeros(t.shape, dtype if dtype is not None else t.dtype,
                 buffer if buffer is not None else Buffer.SBUF, name or None)


@kernel_api
def empty_like(x: NkiTensor, dtype: object = None, buffer: object = None,
               name: str = "") -> NkiTensor:
    """A new uninitialised tensor shaped like `x` (dtype and buffer default to x's)."""
    t = _tensor_arg(x, "empty_like")
    return ndarray(t.shape, dtype if dtype is not None else t.dtype,
                   buffer if buffer is not None else t.buffer, name or None)


@kernel_api
def device_print(print_prefix: str, tensor: NkiTensor) -> None:
    """Print `print_prefix` and the tensor's values to stdout (SBUF or HBM tensors)."""
    t = _tensor_arg(tensor, "device_print")
    if not isinstance(print_prefix, str):
        raise KernelUsageError("nl.device_print: print_prefix must be a constant string")
    if t.buffer is Buffer.PSUM:
        raise KernelUsageError("nl.device_print: the tensor must be in SBUF or HBM, not PSUM")
    ctx = current()
    if ctx.run.symbolic:
        values: object = f"<{t.dtype.name}{list(t.shape)}: no values in a symbolic trace>"
    else:
        values = np.asarray(t.numpy())
    print(f"{print_prefix} {values}", file=sys.stdout, flush=True)


def static_cast(data: object, dtype: object) -> np.ndarray:
    """Cast host data (a numpy array or anything `np.asarray` takes) to an NKI dtype's
    host storage, by the rule kernels cast with (`tessera.nki.dtypes.cast`).

    No reference page lists it; the vendor's kernel-library tests call it on their numpy
    reference outputs (`nl.static_cast(out, x.dtype)`). In a kernel, cast a tile with
    `nisa.tensor_copy` into a tile of the target dtype."""
    if isinstance(data, NkiTensor):
        raise KernelUsageError("nl.static_cast casts host arrays; cast a tile with "
                               "nisa.tensor_copy into a tile of the target dtype")
    # the kernel language's one casting rule (dtypes.cast: RNE, narrow floats saturate,
    # integers round to nearest even and clip)
    return cast(np.asarray(data), to_dtype(dtype))
