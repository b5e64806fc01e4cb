"""Random numbers: rng, rand2, rand_set_state, rand_get_state, set_rng_seed, dropout.

Rules follow the NKI API reference page of each instruction (current signatures):
engines and NeuronCore versions, memory, dtypes and state sizes are checked as the
pages state them. Values come from an XORWOW generator per engine and compute lane of the
core (`tessera.nki.isa._xorwow`): deterministic under a seed, and a state written with
rand_set_state reads back unchanged with rand_get_state, but the numbers are NOT the
hardware's (the pages name the algorithm, not the state layout, seeding or lane mapping).
A tile row on partition p draws from lane p; a lane's elements are drawn in free order.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from tessera.nki import dtypes as dt
from tessera.nki.attrs import NO_ATTRS, DropoutAttrs, Rand2Attrs, RngAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    KernelUsageError,
    ShapeMismatchError,
)
from tessera.nki.isa._common import record, resolve_engine, tensor_arg
from tessera.nki.isa._xorwow import draw_bits, engine_state, spread_seed, state_words, uniform
from tessera.nki.isa.vector import prepare
from tessera.nki.runtime import CoreContext, current, kernel_api
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

__all__ = ["dropout", "rand2", "rand_get_state", "rand_set_state", "rng", "set_rng_seed"]

RNG_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32")  # nisa.rng page
RAND2_DTYPES = ("float8_e4m3", "float8_e5m2", "float16", "bfloat16", "float32", "tfloat32",
                "int8", "int16", "int32", "uint8", "uint16", "uint32")  # nisa.rand2 page


# ---------------------------------------------------------------------- shared checks
def require_version(ctx: CoreContext, version: int, what: str) -> None:
    """`what` exists only on NeuronCore-v`version` and newer."""
    limits = ctx.run.limits
    if limits.version < version:
        raise KernelUsageError(f"{what} is available only on NeuronCore-v{version} and newer; "
                               f"this kernel targets {limits.chip} "
                               f"(NeuronCore-v{limits.version})")


def first_lane(t: NkiTensor) -> int:
    """The partition (= compute lane) a tile starts on."""
    per = t.storage.partition_elems
    return t.offset // per if per else 0


def _dtype_in(t: NkiTensor, allowed: tuple[str, ...], what: str, op: str) -> None:
    if t.dtype.name not in allowed:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be one of "
                         f"{', '.join(allowed)}")


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def per_partition(value: object, partitions: int, what: str, op: str
                  ) -> tuple[float | None, NkiTensor | None]:
    """A scalar constant, or a tile holding one value per partition ([P, 1])."""
    if isinstance(value, NkiTensor):
        if value.partitions != partitions or value.free_size != 1:
            raise ShapeMismatchError(f"{op}: {what} {value.name}{list(value.shape)} must hold "
                                     f"one value per partition ([{partitions}, 1])")
        return None, value
    if _number(value):
        return float(value), None  # type: ignore[arg-type]
    raise KernelUsageError(f"{op}: {what} must be a number or a [{partitions}, 1] tile, got "
                           f"{type(value).__name__}")


def _rows(t: NkiTensor) -> np.ndarray:
    """[P, 1] float32 values of a per-partition operand."""
    return t.read_f32().reshape(t.partitions, 1)


def _state_operand(t: NkiTensor, engine: Engine, what: str, op: str) -> None:
    """rand_set_state / rand_get_state: a 2-D uint32 tile of the engine's state size."""
    if t.ndim != 2:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} must be a 2-D tile "
                                 "(partitions = compute lanes, free = state words)")
    if t.dtype is not dt.uint32:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; it must be uint32")
    words = state_words(engine)
    if t.free_size != words:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} must hold {words} "
                                 f"uint32 words per partition on the {engine.value} engine "
                                 "(XORWOW: 6 on GpSimd, 24 on Vector)")


def _state_engine(ctx: CoreContext, engine: object, opcode: Opcode, op: str) -> Engine:
    require_version(ctx, 3, op)
    eng = resolve_engine(engine, opcode, op)
    if eng is Engine.VECTOR:
        require_version(ctx, 4, f"{op} on the Vector engine")
    return eng


# ---------------------------------------------------------------------- generators
@kernel_api
def rng(dst: NkiTensor, engine: object = None, name: str | None = None) -> None:
    """dst = 32 random bits per element, truncated to dst's integer type (its low bits).

    dst is int8/16/32 or uint8/16/32 in SBUF or PSUM. engine: Vector (default, any
    NeuronCore) or GpSimd (NeuronCore-v3+, SBUF only). Each partition draws from its own
    lane of that engine's generator.
    """
    op = "rng"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    eng = resolve_engine(engine, Opcode.RNG, op)
    if eng is Engine.GPSIMD:
        require_version(ctx, 3, f"{op} on the GpSimd engine")
    prepare(ctx, op, eng, (), (dst,))
    _dtype_in(dst, RNG_DTYPES, "dst", op)
    record(ctx, eng, Opcode.RNG, (), (dst,), RngAttrs())
    if ctx.run.symbolic:
        return
    bits = draw_bits(ctx, eng, first_lane(dst), dst.partitions, dst.free_size)
    # astype wraps: the least significant bits of each 32-bit word, as the page says
    dst.write_raw(bits.astype(dst.dtype.storage).reshape(dst.shape))


def fill_uniform(ctx: CoreContext, dst: NkiTensor, op: str) -> None:
    """nl.rand's fill: values in [0, 1) from the Vector engine's generator, one rng pass.

    The fraction keeps as many bits as dst's float type has significant bits, so a value
    never rounds up to 1.0 in a narrow type."""
    if dst.dtype.kind not in (dt.DTypeKind.FLOAT, dt.DTypeKind.FLOAT8):
        raise DTypeError(f"{op}: dtype {dst.dtype.name} cannot hold values in [0, 1); use a "
                         "float type such as nl.float32 or nl.bfloat16")
    prepare(ctx, op, Engine.VECTOR, (), (dst,))
    record(ctx, Engine.VECTOR, Opcode.RNG, (), (dst,), RngAttrs(uniform=True))
    if ctx.run.symbolic:
        return
    bits = draw_bits(ctx, Engine.VECTOR, first_lane(dst), dst.partitions, dst.free_size)
    dst.write(uniform(bits, min(24, dst.dtype.mantissa_bits + 1)).reshape(dst.shape))


@kernel_api
def rand2(dst: NkiTensor, min: object, max: object,  # noqa: A002 - the page's names
          name: str | None = None) -> None:
    """dst = uniform random values in [min, max] (Vector engine, NeuronCore-v4+).

    min and max are float32 constants or [P, 1] float32 tiles (one bound per partition);
    min < max. Values are drawn in float32 and cast to dst's dtype (float8_e4m3/e5m2,
    float16, bfloat16, float32, tfloat32, or an 8/16/32-bit integer type); dst is in SBUF
    or PSUM.
    """
    op = "rand2"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    require_version(ctx, 4, op)
    low, low_t = per_partition(min, dst.partitions, "min", op)
    high, high_t = per_partition(max, dst.partitions, "max", op)
    reads = tuple(t for t in (low_t, high_t) if t is not None)
    prepare(ctx, op, Engine.VECTOR, reads, (dst,))
    _dtype_in(dst, RAND2_DTYPES, "dst", op)
    for t, what in ((low_t, "min"), (high_t, "max")):
        if t is not None and t.dtype is not dt.float32:
            raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; the bounds are float32")
    if low is not None and high is not None and not low < high:
        raise KernelUsageError(f"{op}: min ({low}) must be less than max ({high})")
    record(ctx, Engine.VECTOR, Opcode.RAND2, reads, (dst,), Rand2Attrs(low, high))
    if ctx.run.symbolic:
        return
    lo = np.float32(low) if low_t is None else _rows(low_t)
    hi = np.float32(high) if high_t is None else _rows(high_t)
    if not np.all(np.broadcast_to(lo < hi, (dst.partitions, 1))):
        raise KernelUsageError(f"{op}: min must be less than max on every partition")
    bits = draw_bits(ctx, Engine.VECTOR, first_lane(dst), dst.partitions, dst.free_size)
    values = lo + uniform(bits) * (hi - lo)  # float32, as the engine draws
    dst.write(np.clip(values, lo, hi).reshape(dst.shape))


# ---------------------------------------------------------------------- state and seeds
@kernel_api
def rand_set_state(src_seeds: NkiTensor, engine: object = None,
                   name: str | None = None) -> None:
    """Load each partition's row of src_seeds as the PRNG state of the matching lane.

    NeuronCore-v3+. src_seeds is a 2-D uint32 SBUF tile: 6 words per partition for GpSimd
    (default; the only engine on NeuronCore-v3) or 24 for Vector (NeuronCore-v4+). The
    state persists for the rest of the launch; rand_get_state returns it unchanged.
    """
    op = "rand_set_state"
    ctx = current()
    src = tensor_arg(src_seeds, "src_seeds", op)
    eng = _state_engine(ctx, engine, Opcode.RAND_SET_STATE, op)
    if src.buffer is not Buffer.SBUF:
        raise BufferKindError(f"{op}: src_seeds {src.name}{list(src.shape)} is in "
                              f"{src.buffer.value}; it must be in SBUF")
    prepare(ctx, op, eng, (src,), ())
    _state_operand(src, eng, "src_seeds", op)
    record(ctx, eng, Opcode.RAND_SET_STATE, (src,), (), NO_ATTRS)
    if ctx.run.symbolic:
        return
    lane = first_lane(src)
    state = engine_state(ctx, eng)
    state[lane:lane + src.partitions] = src.numpy().reshape(src.partitions, -1)


@kernel_api
def rand_get_state(dst: NkiTensor, engine: object = None, name: str | None = None) -> None:
    """dst = the PRNG state of the lanes dst's partitions map to (uint32 words).

    NeuronCore-v3+. dst is a 2-D uint32 tile of 6 words per partition (GpSimd, default)
    or 24 (Vector, NeuronCore-v4+); in SBUF, or PSUM on NeuronCore-v4+ with the Vector
    engine (GpSimd has no PSUM port).
    """
    op = "rand_get_state"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    eng = _state_engine(ctx, engine, Opcode.RAND_GET_STATE, op)
    if dst.buffer is Buffer.PSUM and ctx.run.limits.version < 4:
        raise BufferKindError(f"{op}: dst {dst.name} is in psum; on NeuronCore-v3 it must be "
                              "in SBUF")
    prepare(ctx, op, eng, (), (dst,))
    _state_operand(dst, eng, "dst", op)
    record(ctx, eng, Opcode.RAND_GET_STATE, (), (dst,), NO_ATTRS)
    if ctx.run.symbolic:
        return
    lane = first_lane(dst)
    dst.write_raw(engine_state(ctx, eng)[lane:lane + dst.partitions].reshape(dst.shape))


def seed_vector(ctx: CoreContext, seed: object, what: str, op: str) -> None:
    """Seed every lane of the Vector engine's PRNG from a [1, 1] 32-bit tile."""
    src = tensor_arg(seed, what, op)
    if src.size != 1 or src.ndim > 2:
        raise ShapeMismatchError(f"{op}: {what} {src.name}{list(src.shape)} must be a [1, 1] "
                                 "tensor")
    if src.itemsize != 4 or src.dtype.is_packed:
        raise DTypeError(f"{op}: {what} {src.name} is {src.dtype.name}; the seed is a 32-bit "
                         "value (int32, uint32 or float32)")
    prepare(ctx, op, Engine.VECTOR, (src,), ())
    record(ctx, Engine.VECTOR, Opcode.SET_RNG_SEED, (src,), (), NO_ATTRS)
    if ctx.run.symbolic:
        return
    word = int(np.ascontiguousarray(src.numpy()).reshape(1).view(np.uint32)[0])
    ctx.rng_states[Engine.VECTOR] = spread_seed(word, Engine.VECTOR, ctx.run.limits.pmax)


@kernel_api
def set_rng_seed(src_seeds: NkiTensor, name: str | None = None) -> None:
    """Seed the Vector engine's PRNG (every lane) from a [1, 1] 32-bit tile in SBUF or PSUM.

    The same seed gives the same sequence from the following Vector-engine rng, rand2,
    dropout and nl.rand calls.
    """
    seed_vector(current(), src_seeds, "src_seeds", "set_rng_seed")


# ---------------------------------------------------------------------- dropout
def apply_dropout(ctx: CoreContext, dst: NkiTensor, data: NkiTensor, prob: object,
                  op: str) -> None:
    """dst = data with each element replaced by zero with probability prob (Vector engine).

    Kept elements are copied bit for bit (not rescaled); an element is dropped when its
    uniform [0, 1) draw is below its partition's probability, so 0.0 keeps everything and
    1.0 drops everything."""
    p, p_t = per_partition(prob, data.partitions, "prob", op)
    reads = (data,) if p_t is None else (data, p_t)
    prepare(ctx, op, Engine.VECTOR, reads, (dst,))
    if data.partitions != dst.partitions or data.free_size != dst.free_size:
        raise ShapeMismatchError(f"{op}: data {data.name}{list(data.shape)} and dst "
                                 f"{dst.name}{list(dst.shape)} must have the same layout")
    if p is not None and not 0.0 <= p <= 1.0:
        raise KernelUsageError(f"{op}: prob {p} is not a probability (0.0 to 1.0)")
    if p_t is not None:
        if data.dtype.is_float and not p_t.dtype.is_float:
            raise DTypeError(f"{op}: prob {p_t.name} is {p_t.dtype.name}; it must be a float "
                             "type")
        if not data.dtype.is_float and p_t.dtype is not dt.float32:
            raise DTypeError(f"{op}: prob {p_t.name} is {p_t.dtype.name}; with {data.dtype.name}"
                             " data it must be float32")
    record(ctx, Engine.VECTOR, Opcode.DROPOUT, reads, (dst,), DropoutAttrs(p),
           free_elements=data.free_size)
    if ctx.run.symbolic:
        return
    rows, n = data.partitions, data.free_size
    raw = data.numpy().reshape(rows, n).copy()  # read first: dst may alias data
    threshold = np.float32(p) if p_t is None else _rows(p_t)
    draws = uniform(draw_bits(ctx, Engine.VECTOR, first_lane(data), rows, n))
    raw[draws < threshold] = 0
    dst.write_raw(raw.reshape(dst.shape))


@kernel_api
def dropout(dst: NkiTensor, data: NkiTensor, prob: object, name: str | None = None) -> None:
    """dst = data with elements replaced by zeros with probability prob (Vector engine).

    prob is a constant in [0, 1] or a [P, 1] tile of per-partition probabilities (float32
    with integer data, any float type with float data). dst has data's dtype and layout;
    kept values are unchanged (no 1 / (1 - prob) rescaling).
    """
    op = "dropout"
    ctx = current()
    dst = tensor_arg(dst, "dst", op)
    data = tensor_arg(data, "data", op)
    if dst.dtype != data.dtype:
        raise DTypeError(f"{op}: dst {dst.name} is {dst.dtype.name} but data {data.name} is "
                         f"{data.dtype.name}; they must match")
    apply_dropout(ctx, dst, data, prob, op)

