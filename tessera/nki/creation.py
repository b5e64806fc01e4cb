"""Tensor creation inside kernels: nl.ndarray, zeros, ones, full, shared constants."""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.errors import CapacityError, KernelUsageError, PartitionError
from tessera.nki.isa.dma import dma_copy
from tessera.nki.isa.vector import memset
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.tensor import NkiTensor, Storage

_PREFIX = {Buffer.SBUF: "sb", Buffer.PSUM: "ps", Buffer.HBM: "hbm",
           Buffer.SHARED_HBM: "out", Buffer.PRIVATE_HBM: "phbm"}


class par_dim(int):  # noqa: N801 - NKI's spelling
    """`nl.par_dim(n)`: marks the partition dimension of a shape. As the first dimension it
    is the plain size n (`nl.ndarray((nl.par_dim(128), 512), ...)`). After the first, the
    Beta-1 pages make the leading dimensions blocks (a list of tiles): the Beta-1 front end
    (`neuronxcc.nki`, tessera.nki.beta1) supports that; Beta-2 kernels use lists."""

    def __repr__(self) -> str:
        return f"par_dim({int(self)})"


def _shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    if isinstance(shape, tuple | list) and any(isinstance(s, par_dim) for s in shape[1:]):
        raise KernelUsageError(f"shape {tuple(shape)!r}: a par_dim after the first dimension "
                               "makes Beta-1 block dimensions, which only Beta-1 kernels "
                               "(neuronxcc.nki) have; put the partition dimension first and "
                               "hold blocks of tiles in a Python list")
    try:
        dims = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except TypeError:
        raise KernelUsageError(f"shape must be a tuple of ints, got {shape!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise KernelUsageError(f"shape must be non-empty with positive sizes, got {shape!r}")
    return dims


def _buffer(buffer: object) -> Buffer:
    if isinstance(buffer, Buffer):
        return buffer
    if isinstance(buffer, str):
        for b in Buffer:
            if b.value == buffer:
                return b
    raise KernelUsageError(f"buffer must be nl.sbuf, nl.psum, nl.hbm, nl.shared_hbm or "
                           f"nl.private_hbm, got {buffer!r}")


def _check_capacity(ctx: CoreContext, shape: tuple[int, ...], dtype: dt.DType,
                    buffer: Buffer, name: str) -> None:
    lim = ctx.run.limits
    if not buffer.on_chip:
        return
    if shape[0] > lim.pmax:
        raise PartitionError(f"tensor {name}{list(shape)} in {buffer.value} has {shape[0]} "
                             f"partitions; the limit is pmax={lim.pmax}")
    per_partition = math.prod(shape[1:]) * dtype.itemsize
    cap = lim.sbuf_bytes_per_partition if buffer is Buffer.SBUF else lim.psum_bytes_per_partition
    if per_partition > cap:
        raise CapacityError(f"tensor {name}{list(shape)} {dtype.name} needs {per_partition} "
                            f"bytes per partition; {buffer.value} has {cap} bytes per partition "
                            f"on {lim.chip}")


_UINT_BY_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def poison_fill(array: np.ndarray, dtype: dt.DType) -> None:
    """Fill new storage with the poison value, through an unsigned-integer view of the same
    width: filling ml_dtypes arrays directly is ~8x slower, and every tile pays for this."""
    unsigned, word = _poison_word(dtype)
    array.view(unsigned).fill(word)


@functools.cache
def _poison_word(dtype: dt.DType) -> tuple[type, np.generic]:
    pattern = np.array([dt.uninitialised_fill(dtype)]).astype(dtype.storage)
    unsigned = _UINT_BY_SIZE[dtype.itemsize]
    return unsigned, pattern.view(unsigned)[0]


def new_tensor(ctx: CoreContext, shape: object, dtype: object, buffer: object,
               name: str | None) -> NkiTensor:
    """Allocate a tensor (poisoned with NaN / a sentinel in functional mode)."""
    dims = _shape(shape)
    d = dt.to_dtype(dtype)
    buf = _buffer(buffer)
    run = ctx.run
    shared = buf is Buffer.SHARED_HBM and (run.num_cores > 1 or run.grid_instances > 1)
    if shared:
        # one allocation seen by every core: the k-th shared_hbm tensor of each core is the
        # same tensor, with a core-independent name so the stream is deterministic
        key = ctx.shared_count
        ctx.shared_count += 1
        label = f"{name or _PREFIX[buf]}.shared{key}"
    else:
        # names stay unique per launch (a kernel may allocate under one name in a loop)
        label = ctx.fresh_name(name or _PREFIX[buf])
    _check_capacity(ctx, dims, d, buf, label)
    array = None
    if not run.symbolic:
        array = np.empty(math.prod(dims), dtype=d.storage)
        poison_fill(array, d)
    st = Storage(label, buf, dims, d, array)
    if shared:
        with run.lock:
            existing = run.shared.setdefault(key, st)
        if existing is not st:
            if existing.shape != dims or existing.dtype != d:  # type: ignore[attr-defined]
                raise KernelUsageError(f"shared_hbm tensor #{key} has shape {list(dims)} "
                                       f"{d.name} on core {ctx.core_id} but a different "
                                       "shape or dtype on the other core")
            return NkiTensor.whole(existing)  # type: ignore[arg-type]
    ctx.register_tensor(label, buf, dims, d.name, d.itemsize)
    return NkiTensor.whole(st)


@kernel_api
def ndarray(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
            name: str | None = None, address: object = None) -> NkiTensor:
    """A new uninitialised tensor (`address` is accepted; the allocator places tensors)."""
    return new_tensor(current(), shape, dtype, buffer, name or None)


def _filled(shape: object, dtype: object, buffer: object, name: str | None,
            value: float) -> NkiTensor:
    """A new tensor holding `value`, written by a recorded instruction.

    On chip that is one memset. HBM has no compute-engine port (`nisa.memset` runs on the
    Vector or GpSimd engine, which read and write SBUF/PSUM only), so there the fill is
    one DMA from a constant in HBM holding the values, as a compiled kernel loads its
    constants (see `shared_identity_matrix`). Recording it lets the LNC=2 race checker see
    the write and the timing model charge it. The constant is core-private HBM, so the
    numbering of the launch's shared_hbm tensors does not change."""
    ctx = current()
    t = new_tensor(ctx, shape, dtype, buffer, name or None)
    if t.buffer.on_chip:
        memset(t, value)
        return t
    source = new_tensor(ctx, t.shape, t.dtype, Buffer.HBM, f"{name or 'fill'}_const")
    if not ctx.run.symbolic:
        source.write(np.full(source.shape, value))
    dma_copy(t, source)
    return t


@kernel_api
def zeros(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
          name: str | None = None) -> NkiTensor:
    """A tensor of zeros (on chip: one memset instruction; in HBM: one DMA from a constant)."""
    return _filled(shape, dtype, buffer, name, 0)


@kernel_api
def ones(shape: object, dtype: object = dt.float32, buffer: object = Buffer.SBUF,
         name: str | None = None) -> NkiTensor:
    """A tensor of ones (on chip: one memset instruction; in HBM: one DMA from a constant)."""
    return _filled(shape, dtype, buffer, name, 1)


@kernel_api
def full(shape: object, fill_value: float, dtype: object = dt.float32,
         buffer: object = Buffer.SBUF, name: str | None = None) -> NkiTensor:
    """A tensor filled with `fill_value` (on chip: one memset instruction; in HBM: one DMA
    from a constant)."""
    return _filled(shape, dtype, buffer, name, fill_value)


# host dtypes NKI has no engine type for: the nearest supported one
_HOST_DEFAULTS = {np.dtype(np.float64): dt.float32, np.dtype(np.int64): dt.int32,
                  np.dtype(np.uint64): dt.uint32}


def _host_array(constant: object) -> np.ndarray:
    """The constant's values: a `.npy` path is loaded, anything array-like converted."""
    if isinstance(constant, str | os.PathLike):
        path = os.fspath(constant)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise KernelUsageError(f"shared_constant: cannot load {path!r} as a .npy "
                                   f"file: {err}") from None
    arr = np.asarray(constant)
    if arr.dtype == object:
        raise KernelUsageError(f"shared_constant: expected a numpy array, an array-like or "
                               f"a path to a .npy file, got {type(constant).__name__}")
    return arr


def _constant_values(arr: np.ndarray, d: dt.DType) -> np.ndarray:
    """`arr` in d's storage format: raw bytes are reinterpreted, values cast."""
    if d.is_packed and arr.dtype == d.element:
        return dt.pack_x4(arr, d)
    if arr.dtype.kind == "V" or (d.is_packed and arr.dtype.kind == "u" and arr.ndim
                                 and arr.dtype.itemsize < d.itemsize):
        # raw bytes: an ml_dtypes array saved with np.save loads as void, and MX data
        # travels as uint8 bytes (the NKI MX tutorials view it as the x4 type)
        raw = np.ascontiguousarray(arr)
        if (raw.shape[-1] * raw.dtype.itemsize) % d.itemsize:
            raise KernelUsageError(f"shared_constant: {raw.dtype} data of shape "
                                   f"{list(raw.shape)} does not reinterpret as {d.nki_name}")
        return raw.view(d.storage)
    return dt.cast(arr, d)


@kernel_api
def shared_constant(constant: object, dtype: object = None, name: str | None = None
                    ) -> NkiTensor:
    """A shared-HBM tensor holding host data (a compile-time constant).

    `constant` is a numpy array, anything `np.asarray` accepts (lists, scalars, objects with
    `__array__`) or a path to a `.npy` file. Without `dtype` the data's own dtype is used
    (float64 -> float32, int64 -> int32, uint64 -> uint32); with it values are cast, and raw
    data (a `.npy` of an ml_dtypes array, which loads as void, or uint8 bytes for an MX x4
    type) is reinterpreted. Arrays of an MX element type (ml_dtypes float8_e4m3fn, ...) are
    packed four to a container for the matching x4 dtype."""
    ctx = current()
    arr = _host_array(constant)
    if dtype is not None:
        d = dt.to_dtype(dtype)
    elif arr.dtype.kind == "V":
        raise KernelUsageError(f"shared_constant: the data is raw {arr.dtype} (an ml_dtypes "
                               "array saved with np.save?); pass dtype= to say what it holds")
    else:
        d = _HOST_DEFAULTS.get(arr.dtype) or dt.to_dtype(arr.dtype)
    values = _constant_values(arr, d)
    t = new_tensor(ctx, values.shape if values.ndim else (1,), d, Buffer.SHARED_HBM, name)
    if not ctx.run.symbolic:
        if values.dtype == d.storage:
            t.write_raw(values)
        else:
            t.write(values)
    return t


@kernel_api
def shared_identity_matrix(n: int, dtype: object = dt.uint8, dst: NkiTensor | None = None,
                           name: str | None = None) -> NkiTensor:
    """An n x n identity matrix in SBUF (the Tensor engine's operand for transposes).

    Its values come from a constant in HBM through one DMA, as a compiled kernel loads them.
    With `dst` (an SBUF [n, n] tensor) the identity is written there and `dst` returned."""
    ctx = current()
    n = int(n)
    if dst is None:
        dst = new_tensor(ctx, (n, n), dtype, Buffer.SBUF, name or "ident")
    elif not isinstance(dst, NkiTensor) or dst.buffer is not Buffer.SBUF or \
            dst.partitions != n or dst.free_size != n:
        raise KernelUsageError(f"shared_identity_matrix: dst must be an SBUF [{n}, {n}] "
                               f"tensor, got {dst!r}")
    source = shared_constant(np.eye(n), dtype=dst.dtype, name=f"{name or 'ident'}_const")
    dma_copy(dst, source)
    return dst
