"""`nki.tensor`: trace-time tensors, host data a kernel builds while it is traced.

The `nki.language.shared_constant` page (current reference) takes "a trace-time tensor
containing the constant data", made with `nki.tensor.zeros()`, `nki.tensor.identity()` or
`nki.tensor.arange()`, e.g. `nl.shared_constant(ntensor.identity(128, dtype=nl.int8),
dtype=nl.float16)`. Here a trace-time tensor is a numpy array holding the values in the
NKI dtype's host storage (ml_dtypes for bf16/fp8), so `shared_constant`, numpy code and
references all read it directly. `NkiTensor` is re-exported as the module's tensor type.
"""

from __future__ import annotations

import numpy as np

from tessera.nki.dtypes import to_dtype as _to_dtype
from tessera.nki.errors import KernelUsageError as _KernelUsageError
from tessera.nki.tensor import NkiTensor

__all__ = ["NkiTensor", "TraceTimeTensor", "arange", "identity", "zeros"]

TraceTimeTensor = np.ndarray  # what these functions return (host data)


def _storage(dtype: object, where: str) -> np.dtype:
    try:
        return np.dtype(_to_dtype(dtype).storage)
    except Exception as err:  # noqa: BLE001 - any unknown dtype is the user's mistake
        raise _KernelUsageError(f"nki.tensor.{where}: unknown dtype {dtype!r} ({err})") from None


def _count(value: object, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise _KernelUsageError(f"nki.tensor.{where}: {what} must be a non-negative int, got "
                                f"{value!r}")
    return int(value)


def identity(n: int, dtype: object = "float32") -> np.ndarray:
    """An n x n identity matrix (ones on the diagonal) as a trace-time tensor of `dtype`."""
    size = _count(n, "n", "identity")
    return np.eye(size, dtype=np.float32).astype(_storage(dtype, "identity"))


def zeros(shape: object, dtype: object = "float32") -> np.ndarray:
    """A trace-time tensor of zeros of `shape` (an int or a tuple of ints)."""
    dims = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)  # type: ignore
    dims = tuple(_count(d, "each dimension", "zeros") for d in dims)
    return np.zeros(dims, dtype=_storage(dtype, "zeros"))


def arange(start: int, stop: int | None = None, step: int = 1,
           dtype: object = "int32") -> np.ndarray:
    """Evenly spaced values as numpy's `arange` gives them (`arange(n)` is 0..n-1), as a
    trace-time tensor of `dtype`."""
    if step == 0:
        raise _KernelUsageError("nki.tensor.arange: step must not be 0")
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    return values.astype(_storage(dtype, "arange"))
