"""The rest of the Beta-1 nl surface: constants, `finfo`, and the calls of
`misc_compose` (where, softmax, rms_norm), `misc_data` (loop_reduce, gather_flattened,
dropout, rand) and `misc_indirect` (atomic_rmw).

- `nl.fp32.min` / `nl.bfp16.min` ("nki.language.fp32", "nki.language.bfp16"): the values
  of the bit patterns the pages give, 0xff7fffff (float32: -3.4028235e38, the most negative
  finite float32) and 0xff80 (bfloat16). 0xff80 is bfloat16's -inf, not its most negative
  finite value (0xff7f); the page calls it the type's minimum, and its value is what a
  kernel gets here.
- `nl.finfo(dtype)`: the page gives only the signature; it answers like `numpy.finfo`
  (bits, eps, max, min, tiny, dtype) for the NKI float types.
- Refused: `nl.all_reduce` (the launch traces the SPMD instances one after another, so no
  instance can read the others' tiles mid-kernel), `nl.gemm_grid` and
  `nl.gemm_stationary_grid` (their pages are one line each, with no return value or use).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.beta1.misc_compose import rms_norm, softmax, where
from tessera.nki.beta1.misc_data import dropout, gather_flattened, loop_reduce, rand
from tessera.nki.beta1.misc_indirect import atomic_rmw
from tessera.nki.errors import DTypeError
from tessera.nki.refusals import Refused


def _bits_value(bits: int, storage: object) -> float:
    width = np.dtype(storage).itemsize
    raw = np.array([bits], dtype={2: np.uint16, 4: np.uint32}[width])
    return float(raw.view(storage)[0])


class fp32:  # noqa: N801 - NKI's spelling
    """FP32 constants: `nl.fp32.min`, the bit pattern 0xff7fffff (-3.4028235e38)."""

    min = _bits_value(0xFF7FFFFF, np.float32)  # noqa: A003 - NKI's field name


class bfp16:  # noqa: N801 - NKI's spelling
    """BFLOAT16 constants: `nl.bfp16.min`, the bit pattern 0xff80 (see module docstring)."""

    min = _bits_value(0xFF80, ml_dtypes.bfloat16)  # noqa: A003 - NKI's field name


@dataclass(frozen=True)
class FInfo:
    """Machine limits of an NKI float type (numpy.finfo's fields)."""

    bits: int
    eps: float  # the gap between 1.0 and the next value
    max: float  # noqa: A003 - numpy's field names
    min: float  # noqa: A003
    tiny: float  # the smallest positive normal value
    dtype: dt.DType


def finfo(dtype: object) -> FInfo:
    """`nl.finfo(dtype)`: bits, eps, max, min and tiny of an NKI float dtype."""
    d = dt.to_dtype(dtype)
    if d.kind not in (dt.DTypeKind.FLOAT, dt.DTypeKind.FLOAT8):
        raise DTypeError(f"nl.finfo({d.name}): finfo describes float types; {d.name} is "
                         "not one (numpy.iinfo covers integers)")
    if d.name == "tfloat32":
        # 1 sign, 8 exponent and 10 mantissa bits, held in a float32 container
        top = (2.0 - 2.0 ** -10) * 2.0 ** 127
        return FInfo(19, 2.0 ** -10, top, -top, 2.0 ** -126, d)
    info = ml_dtypes.finfo(d.storage)
    return FInfo(int(info.bits), float(info.eps), float(info.max), float(info.min),
                 float(info.tiny), d)


all_reduce = Refused(
    "neuronxcc.nki.language.all_reduce",
    "a reduction across SPMD instances; Tessera traces the instances of a launch one after "
    "another, so no instance can read the others' tiles mid-kernel")
gemm_grid = Refused("neuronxcc.nki.language.gemm_grid",
                    "its page is one line with no return value or use")
gemm_stationary_grid = Refused("neuronxcc.nki.language.gemm_stationary_grid",
                               "its page is one line with no return value or use")

__all__ = ["FInfo", "all_reduce", "atomic_rmw", "bfp16", "dropout", "finfo", "fp32",
           "gather_flattened", "gemm_grid", "gemm_stationary_grid", "loop_reduce", "rand",
           "rms_norm", "softmax", "where"]
