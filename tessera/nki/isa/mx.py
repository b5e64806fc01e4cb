"""MX (OCP microscaling) instructions of NeuronCore-v4: quantize_mx (Vector engine) and
nc_matmul_mx (Tensor engine).

Sources: the NKI API reference pages nki.isa.quantize_mx (Neuron 2.32: the scale rule and
float8_e8m0fnu scales) and nki.isa.nc_matmul_mx, the deep dive "MXFP Matrix Multiplication
with NKI" and the Trainium3 architecture guide ([A4]).

Layout. An MX tile [P, F] of x4 containers holds P x 4F values; its contraction runs over the
P partitions and the four values inside each container. A scaling group is 8 partitions x
the 4 values of one container column (32 values) sharing one 8-bit scale s, the power of
two 2**(s - 127) (float8_e8m0fnu; s = 255 is NaN). Scales stay in the SBUF quadrant (32
partitions) of their data: the group of partitions 8g..8g+7 has its scale in row
(g // 4) * 32 + g % 4 of the scale tile, column j for container column j. So a scale tile
starts in the quadrant where its data tile starts, within the first 16 partitions of it
(at most 12 in: four rows must fit, and several tiles' scales may be packed at 0, 4, 8,
12), and spans at least (P/32 - 1) * 32 + 4 partitions ([4, F] for a 32-partition tile;
the pages allocate [P, F] beyond one quadrant). Data tiles start on a quadrant boundary,
since the layout is defined per quadrant.

Not on the pages, chosen here: quantize_mx gives a group holding inf or NaN the NaN scale
(0xFF) and NaN values (the OCP spec's NaN block); nc_matmul_mx sums each instruction's
products exactly in float64 and rounds once to float32 (the engine's summation order is
not documented; the sum is exact while one instruction's terms span under ~2**36), then
accumulates into PSUM as nc_matmul does.
"""

from __future__ import annotations

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import MxMatmulAttrs, QuantizeMxAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import (
    DTypeError,
    KernelUsageError,
    MatmulShapeError,
    PartitionError,
    ShapeMismatchError,
)
from tessera.nki.isa._common import check_partitions, record, require_on_chip, tensor_arg
from tessera.nki.isa.tensor_engine import check_psum_bank
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

QUADRANT = 32  # SBUF partitions per quadrant: MX tiles span whole quadrants
GROUP_PARTITIONS = 8  # a scaling group: 8 partitions x the 4 values of one container
SCALE_ROWS = QUADRANT // GROUP_PARTITIONS  # scale rows per quadrant of data (4)
SCALE_WINDOW = 16  # scales sit in the first 16 partitions of each quadrant
SCALE_BIAS = 127  # float8_e8m0fnu: value = 2**(byte - 127), byte 255 = NaN
SCALE_NAN = 255
# [quantize_mx] E_max, the largest unbiased exponent of the element type
E_MAX = {"float8_e4m3fn_x4": 8, "float8_e5m2_x4": 15}
SCALE_DTYPES = ("float8_e8m0fnu", "uint8")
QUANTIZE_SRC_DTYPES = ("float16", "bfloat16")
ROW_TILES = (32, 64, 128)  # [nc_matmul_mx] row tiling: 4x32, 2x64 or the full 128 rows
PE_COLUMNS = 128


# ---------------------------------------------------------------------- shared checks
def _require_v4(ctx: CoreContext, op: str) -> None:
    limits = ctx.run.limits
    if limits.version < 4:
        raise KernelUsageError(f"{op} is available only on NeuronCore-v4 and newer; this "
                               f"kernel targets {limits.chip} (NeuronCore-v{limits.version})")


def _start(t: NkiTensor) -> int:
    per = t.storage.partition_elems
    return t.offset // per if per else 0


def _mx_partitions(t: NkiTensor, what: str, op: str) -> None:
    """MX data: a multiple of 32 partitions (at most 128) starting on a quadrant."""
    p = t.partitions
    if p % QUADRANT or not 0 < p <= 4 * QUADRANT:
        raise PartitionError(f"{op}: {what} {t.name}{list(t.shape)} spans {p} partitions; it "
                             "must span a multiple of 32, at most 128")
    if _start(t) % QUADRANT:
        raise PartitionError(f"{op}: {what} {t.name} starts at partition {_start(t)}; MX "
                             "tiles start on an SBUF quadrant (0, 32, 64 or 96), where their "
                             "scale layout is defined")


def _scale_dtype(t: NkiTensor, what: str, op: str) -> None:
    if t.dtype.name not in SCALE_DTYPES:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; MX scales are "
                         f"{' or '.join(SCALE_DTYPES)}")


def _check_scale(scale: NkiTensor, data: NkiTensor, what: str, data_what: str,
                 op: str) -> None:
    """The scale tile of `data`: its dtype, columns, quadrant and partition span."""
    _scale_dtype(scale, what, op)
    if scale.free_size != data.free_size:
        raise ShapeMismatchError(f"{op}: {what} {scale.name}{list(scale.shape)} must hold one "
                                 f"scale per {data_what} container column: "
                                 f"{data.free_size} per partition, has {scale.free_size}")
    start, data_start = _start(scale), _start(data)
    if start // QUADRANT != data_start // QUADRANT or start % QUADRANT > SCALE_WINDOW - 4:
        raise PartitionError(
            f"{op}: {what} {scale.name} starts at partition {start}; the scales of "
            f"{data_what} {data.name} (from partition {data_start}) go in the first "
            f"{SCALE_WINDOW} partitions of its quadrant: start the scale tile at partition "
            f"{data_start}..{data_start + SCALE_WINDOW - 4}")
    need = (data.partitions // QUADRANT - 1) * QUADRANT + SCALE_ROWS
    if scale.partitions < need:
        raise PartitionError(f"{op}: {what} {scale.name}{list(scale.shape)} spans "
                             f"{scale.partitions} partitions; {data_what} of "
                             f"{data.partitions} partitions puts {SCALE_ROWS} scale rows in "
                             f"each of its quadrants, so it needs at least {need}")


def scale_rows(partitions: int) -> np.ndarray:
    """Scale-tile row of each group of 8 data partitions: (g // 4) * 32 + g % 4."""
    g = np.arange(partitions // GROUP_PARTITIONS)
    return (g // SCALE_ROWS) * QUADRANT + g % SCALE_ROWS


def _scale_bytes(t: NkiTensor) -> np.ndarray:
    """[rows, F] raw scale bytes of a tile (uint8 or float8_e8m0fnu)."""
    raw = np.ascontiguousarray(t.numpy().reshape(t.partitions, t.free_size))
    return raw.view(np.uint8)


def dequantized(data: NkiTensor, scale: NkiTensor) -> np.ndarray:
    """[P, F, 4] float64 values of an MX tile, each times its group's scale."""
    p, f = data.partitions, data.free_size
    values = dt.unpack_x4(data.numpy().reshape(p, f), data.dtype).astype(np.float64)
    exps = _scale_bytes(scale)[scale_rows(p)].astype(np.int64)  # [P/8, F]
    factors = np.where(exps == SCALE_NAN, np.nan, np.ldexp(1.0, exps - SCALE_BIAS))
    per_partition = np.repeat(factors, GROUP_PARTITIONS, axis=0)  # [P, F]
    return values.reshape(p, f, 4) * per_partition[:, :, None]


# ---------------------------------------------------------------------- quantize_mx
def quantize_groups(values: np.ndarray, e_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(scaled values [P, 4F] float64, scale bytes [P/8, F] uint8) of src values [P, 4F].

    [quantize_mx] X = 2**(floor(log2(amax)) - (E_max - 1)) per group of 8 partitions x 4
    values (twice the OCP sample algorithm's scale, so the largest value lands in
    [2**(E_max-1), 2**E_max) and never saturates); an all-zero group gets 2**-127. The
    exponent is clamped to float8_e8m0fnu's range [-127, 127].
    """
    p, n = values.shape
    groups = values.reshape(p // GROUP_PARTITIONS, GROUP_PARTITIONS, n // 4, 4)
    amax = np.abs(groups).max(axis=(1, 3))  # [P/8, F]; NaN propagates
    finite = np.isfinite(amax)
    mantissa_exp = np.frexp(np.where(finite & (amax > 0), amax, 1.0))[1]
    exp = np.where(amax > 0, mantissa_exp - 1 - (e_max - 1), -SCALE_BIAS)  # floor(log2)
    exp = np.clip(exp, -SCALE_BIAS, SCALE_BIAS)
    scale = np.where(finite, exp + SCALE_BIAS, SCALE_NAN).astype(np.uint8)
    factor = np.where(finite, np.ldexp(1.0, -exp), np.nan)  # NaN block: NaN values
    scaled = groups * factor[:, None, :, None]  # exact: a power of two (float64)
    return scaled.reshape(p, n), scale


@kernel_api
def quantize_mx(dst: NkiTensor, src: NkiTensor, dst_scale: NkiTensor,
                name: str | None = None) -> None:
    """Quantise fp16/bf16 `src` [P, 4F] to MXFP8: dst [P, F] x4 containers and their
    scales in `dst_scale` (Vector engine, NeuronCore-v4 only; all tiles in SBUF).

    Each group of 8 partitions x 4 consecutive values (one dst container column) shares
    the scale X = 2**(floor(log2(max |v|)) - (E_max - 1)) (E_max = 8 for float8_e4m3fn_x4,
    15 for float8_e5m2_x4; 2**-127 for an all-zero group), and each value is stored as
    v / X rounded to nearest even. dst keeps src's layout with four values per container
    (value j of a container in its bits j*8..j*8+7). P is 32, 64, 96 or 128 and src's free
    size a multiple of 4; dst_scale (float8_e8m0fnu or uint8) receives F scales in 4 rows
    per quadrant (see the module docstring); its other rows keep their contents.
    """
    op = "quantize_mx"
    ctx = current()
    _require_v4(ctx, op)
    dst = tensor_arg(dst, "dst", op)
    src = tensor_arg(src, "src", op)
    scale = tensor_arg(dst_scale, "dst_scale", op)
    for t, what in ((src, "src"), (dst, "dst"), (scale, "dst_scale")):
        require_on_chip(t, what, op, (Buffer.SBUF,))
    for t, what in ((src, "src"), (dst, "dst")):
        check_partitions(ctx, t, what, op, Engine.VECTOR)
    check_partitions(ctx, scale, "dst_scale", op)  # its own placement rule below
    if src.dtype.name not in QUANTIZE_SRC_DTYPES:
        raise DTypeError(f"{op}: src {src.name} is {src.dtype.name}; it must be float16 or "
                         "bfloat16")
    if dst.dtype.name not in E_MAX:
        raise DTypeError(f"{op}: dst {dst.name} is {dst.dtype.name}; it must be "
                         f"{' or '.join(E_MAX)} (quantize_mx writes MXFP8 only)")
    _mx_partitions(src, "src", op)
    n = src.free_size
    if n % 4:
        raise ShapeMismatchError(f"{op}: src {src.name}{list(src.shape)} has {n} elements per "
                                 "partition; it must be a multiple of 4 (one dst container "
                                 "per 4 values)")
    if dst.partitions != src.partitions or dst.free_size * 4 != n:
        raise ShapeMismatchError(f"{op}: dst {dst.name}{list(dst.shape)} must be "
                                 f"[{src.partitions}, {n // 4}] (src's partitions, a quarter "
                                 f"of its {n} values per partition), got "
                                 f"{dst.partitions}x{dst.free_size}")
    if _start(dst) != _start(src):
        raise PartitionError(f"{op}: src {src.name} starts at partition {_start(src)} and "
                             f"dst {dst.name} at {_start(dst)}; the layout is kept partition "
                             "for partition")
    _check_scale(scale, dst, "dst_scale", "dst", op)
    record(ctx, Engine.VECTOR, Opcode.QUANTIZE_MX, (src,), (dst, scale),
           QuantizeMxAttrs(dst.dtype.name), partitions=src.partitions, free_elements=n)
    if ctx.run.symbolic:
        return
    values = src.read_f32().reshape(src.partitions, n).astype(np.float64)
    scaled, scale_bytes = quantize_groups(values, E_MAX[dst.dtype.name])
    dst.write_raw(dt.pack_x4(scaled.astype(np.float32), dst.dtype))  # exact, then RNE
    rows = _scale_bytes(scale).copy()  # rows without scales keep their contents
    rows[scale_rows(src.partitions)] = scale_bytes
    scale.write_raw(rows.view(scale.dtype.storage))


# ---------------------------------------------------------------------- nc_matmul_mx
def _tiling(tile_position: object, tile_size: object, k: int, op: str
            ) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """[nc_matmul_mx] row tiling only: tile_size (row_size, 128), tile_position
    (start_row, 0), both or neither; the stationary's K partitions fit in the row tile."""
    position = tuple(tile_position or ())
    size = tuple(tile_size or ())
    if not position and not size:
        return None, None
    if not position or not size:
        raise KernelUsageError(f"{op}: tile_position and tile_size must both be set to "
                               f"enable row tiling (got {position or None} and "
                               f"{size or None})")
    if len(size) != 2 or len(position) != 2 or not all(
            isinstance(v, int | np.integer) for v in position + size):
        raise KernelUsageError(f"{op}: tile_position and tile_size are (row, column) integer "
                               f"pairs, got {position} and {size}")
    rows, cols = (int(v) for v in size)
    start_row, start_col = (int(v) for v in position)
    if rows not in ROW_TILES or cols != PE_COLUMNS:
        raise KernelUsageError(f"{op}: tile_size {size} must be (32, 128), (64, 128) or "
                               "(128, 128): only row tiling, with column_size 128")
    if start_col != 0 or start_row % rows or not 0 <= start_row < PE_COLUMNS:
        raise KernelUsageError(f"{op}: tile_position {position} must be (start_row, 0) with "
                               f"start_row a multiple of the row size {rows} below 128")
    if k > rows:
        raise MatmulShapeError(f"{op}: the stationary spans K={k} partitions, more than the "
                               f"row tile of {rows} rows")
    return (start_row, start_col), (rows, cols)


def _accumulate(dst: NkiTensor, product: np.ndarray, accumulate: bool | None) -> None:
    """Write or add a float32 product into PSUM: the nc_matmul accumulation-group rule."""
    target = dst.numpy()
    mask = dst.acc_mask()
    if accumulate is None:
        result = np.where(mask, target.astype(np.float32) + product, product)
    elif accumulate:
        result = target.astype(np.float32) + product
    else:
        result = product
    target[...] = dt.cast(result.astype(np.float32), dst.dtype)
    mask[...] = True


@kernel_api
def nc_matmul_mx(dst: NkiTensor, stationary: NkiTensor, moving: NkiTensor,
                 stationary_scale: NkiTensor, moving_scale: NkiTensor,
                 tile_position: tuple = (), tile_size: tuple = (),
                 accumulate: bool | None = None, name: str | None = None) -> None:
    """dst[M, N] (PSUM) = the dequantised stationary[K, M]^T @ moving[K, N] (Tensor engine,
    NeuronCore-v4 only), contracting the K partitions and the 4 values of each container.

    stationary/moving are float8_e4m3fn_x4, float8_e5m2_x4 or float4_e2m1fn_x4 SBUF tiles
    (they may differ); each value is multiplied by the scale of its group (8 partitions x
    one container) from stationary_scale / moving_scale (uint8 or float8_e8m0fnu, SBUF, the
    quantize_mx layout). K is 32..128 in steps of 32, M even and at most 128, N at most 512
    (fp32 dst) or 1024 (bf16 dst). The result accumulates into dst as nc_matmul's does
    (`accumulate` None: the PSUM accumulation group decides). Row tiling: tile_size
    (row_size, 128) with row_size 32/64/128 and tile_position (start_row, 0).
    """
    op = "nc_matmul_mx"
    ctx = current()
    _require_v4(ctx, op)
    dst = tensor_arg(dst, "dst", op)
    stationary = tensor_arg(stationary, "stationary", op)
    moving = tensor_arg(moving, "moving", op)
    s_scale = tensor_arg(stationary_scale, "stationary_scale", op)
    m_scale = tensor_arg(moving_scale, "moving_scale", op)
    operands = ((stationary, "stationary"), (moving, "moving"),
                (s_scale, "stationary_scale"), (m_scale, "moving_scale"))
    for t, what in operands:
        require_on_chip(t, what, op, (Buffer.SBUF,))
    require_on_chip(dst, "dst", op, (Buffer.PSUM,))
    for t, what in (*operands, (dst, "dst")):
        check_partitions(ctx, t, what, op)
    for t, what in operands[:2]:
        if not t.dtype.is_packed:
            raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be "
                             f"{', '.join(d.nki_name for d in dt.MX_DTYPES)}")
        _mx_partitions(t, what, op)
    k, m, n = stationary.partitions, stationary.free_size, moving.free_size
    if moving.partitions != k:
        raise MatmulShapeError(f"{op}: contraction mismatch: stationary {stationary.name}"
                               f"{list(stationary.shape)} has K={k} partitions, moving "
                               f"{moving.name}{list(moving.shape)} has K={moving.partitions}")
    if m % 2 or m > PE_COLUMNS:
        raise MatmulShapeError(f"{op}: stationary {stationary.name}{list(stationary.shape)} "
                               f"has {m} containers per partition; it must be even and at "
                               f"most {PE_COLUMNS}")
    if dst.dtype not in (dt.float32, dt.bfloat16):
        raise DTypeError(f"{op}: dst {dst.name} is {dst.dtype.name}; it must be float32 or "
                         "bfloat16")
    n_max = 512 if dst.dtype is dt.float32 else 1024
    if n > n_max:
        raise MatmulShapeError(f"{op}: moving {moving.name}{list(moving.shape)} has {n} "
                               f"containers per partition; at most {n_max} with a "
                               f"{dst.dtype.name} dst")
    if dst.partitions != m or dst.free_size != n:
        raise MatmulShapeError(f"{op}: dst {dst.name}{list(dst.shape)} must be [{m}, {n}] "
                               f"(stationary free x moving free), got "
                               f"{dst.partitions}x{dst.free_size}")
    _check_scale(s_scale, stationary, "stationary_scale", "stationary", op)
    _check_scale(m_scale, moving, "moving_scale", "moving", op)
    position, size = _tiling(tile_position, tile_size, k, op)
    check_psum_bank(ctx, dst, op)
    fp4 = dt.float4_e2m1fn_x4 in (stationary.dtype, moving.dtype)
    record(ctx, Engine.TENSOR, Opcode.NC_MATMUL_MX,
           (stationary, moving, s_scale, m_scale), (dst,),
           MxMatmulAttrs(stationary_free=m, moving_free=n,
                         precision="mxfp4" if fp4 else "mxfp8", accumulate=accumulate,
                         tile_position=position, tile_size=size),
           partitions=k, free_elements=n)
    if ctx.run.symbolic:
        return
    # contract (partition, value-in-container) pairs: row k*4+q of both operands
    lhs = dequantized(stationary, s_scale).transpose(1, 0, 2).reshape(m, k * 4)
    rhs = dequantized(moving, m_scale).transpose(0, 2, 1).reshape(k * 4, n)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf values stay NaN/inf
        product = (lhs @ rhs).astype(np.float32)
    _accumulate(dst, product.reshape(dst.shape), accumulate)


__all__ = ["nc_matmul_mx", "quantize_mx"]
