"""Data types of the kernel language, stored with numpy/ml_dtypes.

Engines compute in float32 and cast on write. Casting rules (documented and tested):
- float -> bf16/fp16/fp32/tf32: round to nearest, ties to even (RNE); tf32 keeps 10
  mantissa bits in a float32 container.
- float -> fp8 (e4m3, e4m3fn, e5m2): RNE; finite values beyond the format's largest finite
  value saturate to +-max (the Neuron engines saturate rather than overflow); +-inf stays
  +-inf where the format has infinities (e4m3, e5m2) and becomes NaN for e4m3fn; NaN stays NaN.
- float -> float8_e8m0fnu (the MX scale: a bare power-of-two exponent): the nearest power of
  two, saturating at 2**127; zero, negatives, inf and NaN become NaN (the format has no zero
  and no sign).
- float -> int: round to nearest even, saturate to the integer range, NaN -> 0.
- anything -> bool: nonzero is True.
- the packed MX types (float8_e4m3fn_x4, float8_e5m2_x4, float4_e2m1fn_x4) hold four values
  per container; only zero converts to them (as `memset` allows). Their containers are written
  bit for bit: build them with `pack_x4` (or `nisa.quantize_mx` inside a kernel).

A `DType` prints as its NKI name (`str(nl.bfloat16) == 'bfloat16'`) and compares equal to it,
because NKI's dtypes are those strings and kernels compare them.
"""

from __future__ import annotations

from enum import Enum

import ml_dtypes
import numpy as np

from tessera.nki.errors import DTypeError


class DTypeKind(Enum):
    """Closed set of dtype families; instruction rules are stated per family."""

    FLOAT = "float"
    FLOAT8 = "float8"
    SCALE = "scale"  # float8_e8m0fnu: an MX scale exponent, not a Tensor-engine operand
    PACKED = "packed"  # MX x4 containers of four fp8/fp4 values
    INT = "int"
    UINT = "uint"
    BOOL = "bool"


class DType:
    """A kernel-language dtype: its name, storage numpy dtype and family.

    Not a dataclass on purpose: `dataclasses.asdict()` of a user's config that holds a dtype
    must keep the dtype (it deep-copies non-dataclass values, and a DType copies to itself,
    so `is` comparisons keep working). Has a `.dtype` attribute so numpy accepts it wherever a
    dtype is expected (`arr.astype(nl.bfloat16)`, `np.dtype(nl.int8)`, `np.issubdtype`).

    For the packed MX types an element of a tensor is one container: `itemsize` is the
    container's (4 bytes for fp8 x4, 2 bytes for fp4 x4), `element` the numpy dtype of the
    `lanes` (4) values inside and `element_bits` their width.
    """

    __slots__ = ("name", "storage", "kind", "mantissa_bits", "nki_name", "element", "lanes",
                 "element_bits", "host")

    def __init__(self, name: str, storage: object, kind: DTypeKind, mantissa_bits: int = 0,
                 nki_name: str | None = None, element: object = None,
                 element_bits: int = 0) -> None:
        values = {"name": name, "storage": np.dtype(storage), "kind": kind,
                  "mantissa_bits": mantissa_bits, "nki_name": nki_name or name,
                  "element": None if element is None else np.dtype(element),
                  "lanes": 4 if element is not None else 1, "element_bits": element_bits,
                  # what numpy sees (np.zeros(shape, dtype=nl.float8_e4m3fn_x4)): the storage,
                  # except that a packed MX type is a one-field record named after the type,
                  # so host arrays keep their x4 identity (str(arr.dtype) names it) and come
                  # back to this type as kernel inputs; kernels store the plain containers
                  "host": (np.dtype([(nki_name or name, np.dtype(storage))]) if element is not None
                           else np.dtype(storage))}
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"DType {self.name} is immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"DType {self.name} is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self.name == other.name
        if isinstance(other, str):
            return other == self.nki_name
        return NotImplemented  # numpy dtypes compare through their own __eq__ (via .dtype)

    def __hash__(self) -> int:
        # equal to the NKI name string, so hash like it; a packed MX type hashes like its
        # host record dtype instead, so a table keyed by nl.float8_e4m3fn_x4 is found with
        # an x4 array's .dtype (the vendor library's MX helpers look types up that way)
        return hash(self.host) if self.is_packed else hash(self.nki_name)

    def __repr__(self) -> str:
        return f"nl.{self.name}"

    def __str__(self) -> str:
        return self.nki_name

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return to_dtype, (self.name,)  # unpickles to the module's instance

    def __copy__(self) -> DType:
        return self

    def __deepcopy__(self, memo: dict) -> DType:
        return self

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of host arrays of this type (numpy's dtype protocol): the storage
        dtype, or for a packed MX type a one-field record of its containers."""
        return self.host

    @property
    def itemsize(self) -> int:
        """Bytes per element (per container for the packed MX types)."""
        return self.storage.itemsize

    @property
    def is_float(self) -> bool:
        """Floating-point values (the MX scale type included, packed containers not)."""
        return self.kind in (DTypeKind.FLOAT, DTypeKind.FLOAT8, DTypeKind.SCALE)

    @property
    def is_int(self) -> bool:
        """Signed or unsigned integers (not bool)."""
        return self.kind in (DTypeKind.INT, DTypeKind.UINT)

    @property
    def is_packed(self) -> bool:
        """An MX x4 container type (four fp8 or fp4 values per element)."""
        return self.kind is DTypeKind.PACKED


float32 = DType("float32", np.float32, DTypeKind.FLOAT, 23)
float16 = DType("float16", np.float16, DTypeKind.FLOAT, 10)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16, DTypeKind.FLOAT, 7)
tfloat32 = DType("tfloat32", np.float32, DTypeKind.FLOAT, 10)
float8_e4m3 = DType("float8_e4m3", ml_dtypes.float8_e4m3, DTypeKind.FLOAT8, 3)
float8_e4m3fn = DType("float8_e4m3fn", ml_dtypes.float8_e4m3fn, DTypeKind.FLOAT8, 3)
float8_e5m2 = DType("float8_e5m2", ml_dtypes.float8_e5m2, DTypeKind.FLOAT8, 2)
float8_e8m0fnu = DType("float8_e8m0fnu", ml_dtypes.float8_e8m0fnu, DTypeKind.SCALE, 0)
int8 = DType("int8", np.int8, DTypeKind.INT)
int16 = DType("int16", np.int16, DTypeKind.INT)
int32 = DType("int32", np.int32, DTypeKind.INT)
uint8 = DType("uint8", np.uint8, DTypeKind.UINT)
uint16 = DType("uint16", np.uint16, DTypeKind.UINT)
uint32 = DType("uint32", np.uint32, DTypeKind.UINT)
bool_ = DType("bool_", np.bool_, DTypeKind.BOOL, nki_name="bool")
# MX containers, NKI's layout: fp8 x4 is 32 bits wide, fp4 x4 16 bits; value j of a
# container sits in bits [j*w, (j+1)*w), the first value in the low bits
float8_e4m3fn_x4 = DType("float8_e4m3fn_x4", np.uint32, DTypeKind.PACKED, 3,
                         element=ml_dtypes.float8_e4m3fn, element_bits=8)
float8_e5m2_x4 = DType("float8_e5m2_x4", np.uint32, DTypeKind.PACKED, 2,
                       element=ml_dtypes.float8_e5m2, element_bits=8)
float4_e2m1fn_x4 = DType("float4_e2m1fn_x4", np.uint16, DTypeKind.PACKED, 1,
                         element=ml_dtypes.float4_e2m1fn, element_bits=4)

# the dtypes element-wise instructions compute in (closed under `promote`)
ALL_DTYPES: tuple[DType, ...] = (
    float32, float16, bfloat16, tfloat32, float8_e4m3, float8_e4m3fn, float8_e5m2,
    float8_e8m0fnu, int8, int16, int32, uint8, uint16, uint32, bool_,
)
# the packed MX types, which only quantize_mx / nc_matmul_mx and copies handle
MX_DTYPES: tuple[DType, ...] = (float8_e4m3fn_x4, float8_e5m2_x4, float4_e2m1fn_x4)
_KNOWN = ALL_DTYPES + MX_DTYPES
_BY_NAME = ({d.name: d for d in _KNOWN} | {d.nki_name: d for d in _KNOWN}
            | {"float8_e4m3fnuz": float8_e4m3fn})
# numpy storage dtype -> DType; tfloat32 shares float32's storage and the packed types share
# uint32/uint16's, so the earlier (plain) type wins here
_BY_STORAGE = {d.storage: d for d in reversed(_KNOWN)} | {d.host: d for d in MX_DTYPES}


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


def _saturating(values: np.ndarray, storage: np.dtype) -> np.ndarray:
    """float32 -> a narrow float format: RNE, finite values beyond the largest saturate."""
    f = values.astype(np.float32)
    top = float(ml_dtypes.finfo(storage).max)
    with np.errstate(invalid="ignore"):  # NaN compares and casts quietly, staying NaN
        saturated = np.where(np.isfinite(f), np.clip(f, -top, top), f)
        return saturated.astype(storage)


def _cast_packed(arr: np.ndarray, dtype: DType) -> np.ndarray:
    if arr.dtype == dtype.storage:
        return arr  # already containers: bit for bit
    if not np.any(arr):
        return np.zeros(arr.shape, dtype.storage)  # zero packs to an all-zero container
    raise DTypeError(f"only 0 converts to the packed MX type {dtype.nki_name}; build its "
                     "containers with tessera.nki.dtypes.pack_x4 or nisa.quantize_mx")


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
    if kind in (DTypeKind.FLOAT8, DTypeKind.SCALE):
        return _saturating(arr, dtype.storage)
    if kind is DTypeKind.PACKED:
        return _cast_packed(arr, dtype)
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
    if dtype.is_packed:
        # every value NaN (0x7F in e4m3fn and e5m2); fp4 has no NaN, so its largest value
        # (0x7 = 6.0) in every lane
        lane = 0x7F if dtype.element_bits == 8 else 0x7
        return sum(lane << (j * dtype.element_bits) for j in range(dtype.lanes))
    return int(np.iinfo(dtype.storage).max)


def promote(a: DType, b: DType) -> DType:
    """NKI's promotion for mixed operands (commutative): float beats int; fp16+bf16 -> fp32;
    two fp8 formats -> bf16; fp32+tf32 -> fp32; int32+uint32 -> fp32; a signed and an
    unsigned int -> the signed type if it is wider, else the next wider signed type;
    otherwise the wider type. bool loses to everything. Packed MX types do not mix."""
    if a == b:
        return a
    if a.is_packed or b.is_packed:
        raise DTypeError(f"packed MX type {a.nki_name if a.is_packed else b.nki_name} does "
                         "not take part in element-wise arithmetic")
    if a.is_float != b.is_float:
        return a if a.is_float else b
    wider = a if a.itemsize > b.itemsize else b
    if a.is_float:
        if {a, b} == {float16, bfloat16}:
            return float32
        if a.kind is DTypeKind.FLOAT8 and b.kind is DTypeKind.FLOAT8:
            return bfloat16
        # equal widths left here are fp32 and tf32 (or fp8 and the e8m0 scale): fp32 and
        # bf16 keep the precision of both
        return wider if a.itemsize != b.itemsize else float32 if a.itemsize == 4 else bfloat16
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


# ------------------------------------------------------------------ MX x4 containers
def _packed(dtype: object) -> DType:
    d = to_dtype(dtype)
    if not d.is_packed:
        raise DTypeError(f"{d.nki_name} is not a packed MX type; expected one of "
                         f"{', '.join(m.nki_name for m in MX_DTYPES)}")
    return d


def _element_codes(values: object, d: DType) -> np.ndarray:
    """Each value's bit code in d's element format, as uint8 (fp4 codes in the low nibble)."""
    arr = np.asarray(values)
    if arr.dtype != d.element:
        try:
            f = arr.astype(np.float32)
        except (TypeError, ValueError):
            raise DTypeError(f"cannot pack {arr.dtype} values as {d.nki_name}") from None
        if d.element_bits == 4 and np.isnan(f).any():
            raise DTypeError(f"{d.nki_name}: float4_e2m1fn has no NaN")
        arr = _saturating(f, d.element)
    return np.ascontiguousarray(arr).view(np.uint8) & np.uint8((1 << d.element_bits) - 1)


def pack_x4(values: object, dtype: object) -> np.ndarray:
    """Pack the last axis of `values` (length 4n) into n containers of the MX type `dtype`.

    Values of the element type (ml_dtypes float8_e4m3fn, float8_e5m2 or float4_e2m1fn) are
    packed bit for bit; other real values are first converted to it (RNE, finite values
    beyond the largest saturate). Returns the containers as numpy uint32 (fp8 x4) or uint16
    (fp4 x4), shape [..., n]: what a tensor of `dtype` stores. Value j of each group of four
    goes to bits [j*w, (j+1)*w) (w = 8 or 4), the first value in the low bits.
    """
    d = _packed(dtype)
    codes = _element_codes(values, d)
    if codes.ndim == 0 or codes.shape[-1] % d.lanes:
        raise DTypeError(f"pack_x4: the last axis of {list(codes.shape)} is not a multiple of "
                         f"{d.lanes} (four values per {d.nki_name} container)")
    lanes = codes.reshape(*codes.shape[:-1], -1, d.lanes).astype(d.storage)
    shifts = (np.arange(d.lanes) * d.element_bits).astype(d.storage)
    return np.bitwise_or.reduce(lanes << shifts, axis=-1).astype(d.storage)


def unpack_x4(packed: object, dtype: object) -> np.ndarray:
    """The values inside MX containers: [..., n] containers -> [..., 4n] values of the
    element type (ml_dtypes float8_e4m3fn, float8_e5m2 or float4_e2m1fn), bit for bit.

    `packed` holds containers as `pack_x4` returns them (any integer array of the container
    width is read as raw bits)."""
    d = _packed(dtype)
    arr = np.asarray(packed)
    if arr.dtype != d.storage:
        if arr.dtype.kind not in "iu" or arr.dtype.itemsize != d.itemsize:
            raise DTypeError(f"unpack_x4: {d.nki_name} containers are {d.storage} "
                             f"({d.itemsize} bytes), got {arr.dtype}")
        arr = arr.view(d.storage)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    shifts = (np.arange(d.lanes) * d.element_bits).astype(d.storage)
    mask = d.storage.type((1 << d.element_bits) - 1)
    codes = ((arr[..., None] >> shifts) & mask).astype(np.uint8)
    return codes.reshape(*arr.shape[:-1], -1).view(d.element)
