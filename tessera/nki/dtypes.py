"""Data types of the kernel language, stored with numpy/ml_dtypes.

Engines compute in float32 and cast on write. Casting rules (documented and tested):
- float -> bf16/fp16/fp32/tf32: round to nearest, ties to even (RNE); tf32 keeps 10
  mantissa bits in a float32 container.
- float -> fp8 (e4m3, e4m3fn, e5m2): RNE; finite values beyond the format's largest finite
  value saturate to +-max (the Neuron engines saturate rather than overflow); +-inf stays
  +-inf where the format has infinities (e4m3, e5m2) and becomes NaN for e4m3fn; NaN stays NaN.
- float -> int: round to nearest even, saturate to the integer range, NaN -> 0.
- anything -> bool: nonzero is True.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import ml_dtypes
import numpy as np

from tessera.nki.errors import DTypeError


class DTypeKind(Enum):
    """Closed set of dtype families; instruction rules are stated per family."""

    FLOAT = "float"
    FLOAT8 = "float8"
    INT = "int"
    UINT = "uint"
    BOOL = "bool"


@dataclass(frozen=True)
class DType:
    """A kernel-language dtype: its NKI name, storage numpy dtype and family.

    Has a `.dtype` attribute so numpy accepts it wherever a dtype is expected
    (`arr.astype(nl.bfloat16)` works on the host).
    """

    name: str
    storage: np.dtype
    kind: DTypeKind
    mantissa_bits: int = 0

    @property
    def dtype(self) -> np.dtype:
        """The numpy storage dtype (numpy's dtype protocol)."""
        return self.storage

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.storage.itemsize

    @property
    def is_float(self) -> bool:
        return self.kind in (DTypeKind.FLOAT, DTypeKind.FLOAT8)

    @property
    def is_int(self) -> bool:
        return self.kind in (DTypeKind.INT, DTypeKind.UINT)

    def __repr__(self) -> str:
        return f"nl.{self.name}"


def _d(name: str, storage: object, kind: DTypeKind, mantissa_bits: int = 0) -> DType:
    return DType(name, np.dtype(storage), kind, mantissa_bits)


float32 = _d("float32", np.float32, DTypeKind.FLOAT, 23)
float16 = _d("float16", np.float16, DTypeKind.FLOAT, 10)
bfloat16 = _d("bfloat16", ml_dtypes.bfloat16, DTypeKind.FLOAT, 7)
tfloat32 = _d("tfloat32", np.float32, DTypeKind.FLOAT, 10)
float8_e4m3 = _d("float8_e4m3", ml_dtypes.float8_e4m3, DTypeKind.FLOAT8, 3)
float8_e4m3fn = _d("float8_e4m3fn", ml_dtypes.float8_e4m3fn, DTypeKind.FLOAT8, 3)
float8_e5m2 = _d("float8_e5m2", ml_dtypes.float8_e5m2, DTypeKind.FLOAT8, 2)
int8 = _d("int8", np.int8, DTypeKind.INT)
int16 = _d("int16", np.int16, DTypeKind.INT)
int32 = _d("int32", np.int32, DTypeKind.INT)
uint8 = _d("uint8", np.uint8, DTypeKind.UINT)
uint16 = _d("uint16", np.uint16, DTypeKind.UINT)
uint32 = _d("uint32", np.uint32, DTypeKind.UINT)
bool_ = _d("bool_", np.bool_, DTypeKind.BOOL)

ALL_DTYPES: tuple[DType, ...] = (
    float32, float16, bfloat16, tfloat32, float8_e4m3, float8_e4m3fn, float8_e5m2,
    int8, int16, int32, uint8, uint16, uint32, bool_,
)
_BY_NAME = {d.name: d for d in ALL_DTYPES} | {"bool": bool_, "float8_e4m3fnuz": float8_e4m3fn}
# numpy storage dtype -> DType; tfloat32 shares float32's storage, so float32 wins here.
_BY_STORAGE = {d.storage: d for d in reversed(ALL_DTYPES)}


def to_dtype(value: object) -> DType:
    """Normalise a DType, numpy dtype/type, ml_dtypes type or name to a `DType`."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = _BY_NAME.get(value)
        if found is not None:
            return found
    else:
        try:
            found = _BY_STORAGE.get(np.dtype(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            found = None
        if found is not None:
            return found
    names = ", ".join(sorted(_BY_NAME))
    raise DTypeError(f"unsupported dtype {value!r}; supported: {names}")


def _round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to `bits` mantissa bits (RNE), keeping float32 storage."""
    raw = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    drop = 23 - bits
    half = np.uint32((1 << (drop - 1)) - 1)
    lsb = (raw >> np.uint32(drop)) & np.uint32(1)
    rounded = (raw + half + lsb) & ~np.uint32((1 << drop) - 1)
    finite = np.isfinite(values)
    return np.where(finite, rounded.view(np.float32), values).astype(np.float32)


def cast(values: np.ndarray | float, dtype: DType) -> np.ndarray:
    """Cast float32 (or integer) values to `dtype`'s storage following the rules above."""
    arr = np.asarray(values)
    if arr.dtype == np.float64 and dtype.is_float:
        # engines produce float32; rounding float64 straight to the target would skip the
        # float32 rounding step the hardware performs (and double-round differently)
        arr = arr.astype(np.float32)
    kind = dtype.kind
    if dtype is float32:
        return arr.astype(np.float32, copy=False)
    if kind is DTypeKind.FLOAT:
        if dtype is tfloat32:
            return _round_mantissa(arr.astype(np.float32), dtype.mantissa_bits)
        with np.errstate(over="ignore"):  # fp16 overflow to inf is the IEEE rule we want
            return arr.astype(dtype.storage)
    if kind is DTypeKind.FLOAT8:
        f = arr.astype(np.float32)
        top = float(ml_dtypes.finfo(dtype.storage).max)
        saturated = np.where(np.isfinite(f), np.clip(f, -top, top), f)
        return saturated.astype(dtype.storage)
    if kind is DTypeKind.BOOL:
        return arr != 0
    if arr.dtype.kind in "iub":
        info = np.iinfo(dtype.storage)
        return np.clip(arr.astype(np.int64), info.min, info.max).astype(dtype.storage)
    info = np.iinfo(dtype.storage)
    f = np.nan_to_num(arr.astype(np.float64), nan=0.0)
    return np.clip(np.rint(f), info.min, info.max).astype(dtype.storage)


def uninitialised_fill(dtype: DType) -> float | int:
    """The poison value new tensors start with, so reading uninitialised memory shows."""
    if dtype.is_float:
        return np.nan
    if dtype.kind is DTypeKind.BOOL:
        return True
    return int(np.iinfo(dtype.storage).max)


def promote(a: DType, b: DType) -> DType:
    """NKI's promotion for mixed operands (commutative): float beats int; fp16+bf16 -> fp32;
    two fp8 formats -> bf16; fp32+tf32 -> fp32; int32+uint32 -> fp32; a signed and an
    unsigned int -> the signed type if it is wider, else the next wider signed type;
    otherwise the wider type. bool loses to everything."""
    if a == b:
        return a
    if a.is_float != b.is_float:
        return a if a.is_float else b
    wider = a if a.itemsize > b.itemsize else b
    if a.is_float:
        if {a, b} == {float16, bfloat16}:
            return float32
        if a.kind is DTypeKind.FLOAT8 and b.kind is DTypeKind.FLOAT8:
            return bfloat16
        # equal widths left here are fp32 and tf32: keep the more precise one
        return wider if a.itemsize != b.itemsize else float32
    if DTypeKind.BOOL in (a.kind, b.kind):
        return b if a.kind is DTypeKind.BOOL else a
    if a.kind == b.kind:
        return wider
    signed, unsigned = (a, b) if a.kind is DTypeKind.INT else (b, a)
    if unsigned.itemsize < signed.itemsize:
        return signed
    if unsigned.itemsize == 4:
        return float32  # no 64-bit integers on the engines
    return int16 if unsigned.itemsize == 1 else int32
