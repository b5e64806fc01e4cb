"""Runtime offsets on SBUF/PSUM views (`tile.ap(..., scalar_offset=)`) and
nisa.tensor_copy_dynamic_src / tensor_copy_dynamic_dst (2.28/2.29 pages): values against numpy
references, one error per rule, the recorded (conservative) access patterns and the cost
max(MIN_II_DYNAMIC = 600, N)."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import hw, nki, sim
from tessera.nki.errors import (
    BufferKindError,
    DTypeError,
    EngineAccessError,
    KernelUsageError,
    OutOfBoundsError,
    ShapeMismatchError,
)
from tessera.nki.stream import Engine, Opcode
from tessera.sim.cost_rules import engine_cycles
from tessera.sim.timing_calibration import load_calibration

P, F = 4, 16
X = np.arange(P * F, dtype=np.float32).reshape(P, F)


def _sb(shape, dtype=nl.float32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype, buffer=buffer)


def _load(x, buffer=nl.sbuf):
    t = _sb(x.shape, x.dtype, buffer)
    nisa.dma_copy(t, x) if buffer is nl.sbuf else nisa.tensor_copy(t, _load(x))
    return t


def _out(t):
    o = nl.ndarray(t.shape, t.dtype, buffer=nl.shared_hbm)
    if t.buffer is nl.psum:
        s = _sb(t.shape, t.dtype)
        nisa.tensor_copy(s, t)
        t = s
    nisa.dma_copy(o, t)
    return o


def _cols(width):
    """[P, F] row pattern of `width` consecutive elements (shifted by the runtime offset)."""
    return [[F, P], [1, width]]


# ---------------------------------------------------------------------------- values
@nki.jit
def _gather_cols(x, off):
    """dst = x[:, s:s+4] three ways: a register loaded from a tile, the tile itself, and the
    NKI 0.4 form (tensor_copy of the view)."""
    src, off_sb = _load(x), _load(off)
    reg = nisa.register_alloc()
    nisa.register_load(reg, off_sb)
    a, b, c = _sb((P, 4)), _sb((P, 4)), _sb((P, 4))
    nisa.tensor_copy_dynamic_src(a, src.ap(_cols(4), scalar_offset=reg, indirect_dim=1))
    nisa.tensor_copy_dynamic_src(b, src.ap(_cols(4), scalar_offset=off_sb))
    nisa.tensor_copy(c, src.ap(_cols(4), scalar_offset=reg))
    return _out(a), _out(b), _out(c)


@pytest.mark.parametrize("s", [0, 5, 12])
def test_copy_from_a_register_or_tile_offset(s):
    for got in nki.simulate(_gather_cols)(X, np.array([[s]], np.int32)):
        np.testing.assert_array_equal(got, X[:, s:s + 4])


@nki.jit
def _scatter_group(x, off):
    """3-D tile [P, 8, 3]: the offset counts positions of dimension 1 (stride 3); the dst
    side is moved, src is fixed; the result is cast to bf16 on the way."""
    row = _load(x)  # [P, 3]
    dst = _sb((P, 8, 3), nl.bfloat16)
    nisa.memset(dst, 0.0)
    reg = nisa.register_alloc()
    nisa.register_load(reg, _load(off))
    nisa.tensor_copy_dynamic_dst(dst.ap([[24, P], [1, 3]], scalar_offset=reg, indirect_dim=1),
                                 row, engine=nisa.gpsimd_engine)
    return _out(dst)


def test_dst_offset_along_a_free_dimension():
    x = np.arange(P * 3, dtype=np.float32).reshape(P, 3)
    want = np.zeros((P, 8, 3), np.float32)
    want[:, 6, :] = x
    got = nki.simulate(_scatter_group)(x, np.array([[6]], np.int32))
    np.testing.assert_array_equal(got.astype(np.float32), want)


@nki.jit
def _psum_both(x):
    """src and dst in PSUM on the Scalar engine (NeuronCore-v3+), a constant register."""
    src = _load(x, nl.psum)
    dst = _sb((P, F), buffer=nl.psum)
    nisa.memset(dst, -1.0)
    reg = nisa.register_alloc(3)
    nisa.tensor_copy_dynamic_dst(dst.ap(_cols(8), 2, scalar_offset=reg),
                                 src.ap(_cols(8)), engine=nisa.scalar_engine)
    return _out(dst)


def test_psum_on_both_sides():
    want = np.full((P, F), -1.0, np.float32)
    want[:, 5:13] = X[:, 0:8]  # static offset 2 + runtime 3
    np.testing.assert_array_equal(nki.simulate(_psum_both, chip="trn2")(X), want)


@nki.jit
def _device_loop(x, n):
    """Column i of x to column 8 + i of dst for i < n, in a device loop whose register is
    the offset of both views."""
    src = _load(x)
    dst = _sb((P, F))
    nisa.memset(dst, 0.0)
    count = nisa.register_alloc()
    nisa.register_load(count, _load(n))
    for i in nl.dynamic_range(count):
        col = _sb((P, 1))
        nisa.tensor_copy_dynamic_src(col, src.ap([[F, P], [1, 1]], scalar_offset=i))
        nisa.tensor_copy_dynamic_dst(dst.ap([[F, P], [1, 1]], 8, scalar_offset=i), col)
    return _out(dst)


def test_offsets_move_with_a_loop_register():
    want = np.zeros_like(X)
    want[:, 8:11] = X[:, 0:3]
    np.testing.assert_array_equal(nki.simulate(_device_loop)(X, np.array([[3]], np.int32)),
                                  want)


# ---------------------------------------------------------------------------- errors
def _kernel(body):
    @nki.jit
    def k(x):
        body(_load(x))
        return x
    return k


def _psum(s):
    t = _sb(s.shape, buffer=nl.psum)
    nisa.tensor_copy(t, s)
    return t


def _off(value, dtype=nl.int32, buffer=nl.sbuf):
    t = _sb((1, 1), dtype, buffer)
    nisa.memset(t, value)
    return t


@pytest.mark.parametrize(("body", "error", "match"), [
    # past the row end (12 + 8 > 16), and before its start
    (lambda s: nisa.tensor_copy_dynamic_src(
        _sb((P, 8)), s.ap(_cols(8), scalar_offset=nisa.register_alloc(12))),
     OutOfBoundsError, "tensor_copy_dynamic_src: scalar_offset 12 moves .* outside its "
                       "partition row of 16"),
    (lambda s: nisa.tensor_copy(_sb((P, 4)), s.ap(_cols(4), scalar_offset=_off(-1))),
     OutOfBoundsError, "tensor_copy: scalar_offset -1 moves"),
    (lambda s: nisa.tensor_copy_dynamic_src(
        _sb((P, 4)), _psum(s).ap(_cols(4), scalar_offset=_off(1)),
        engine=nisa.gpsimd_engine),
     EngineAccessError, "GpSimd engine cannot access PSUM"),
    (lambda s: nisa.tensor_copy_dynamic_src(
        _sb((2, 4)), s.ap(_cols(4), scalar_offset=_off(1))),
     ShapeMismatchError, "partitions x elements per partition must match"),
    (lambda s: nisa.tensor_copy_dynamic_src(_sb((P, 4)), s[:, 0:4]),
     KernelUsageError, "src .* has no runtime offset"),
    (lambda s: nisa.tensor_copy_dynamic_dst(_sb((P, F)).ap(_cols(4), scalar_offset=_off(1)),
                                            s.ap(_cols(4), scalar_offset=_off(1))),
     KernelUsageError, "only dst sits at a runtime offset"),
    (lambda s: s.ap(_cols(4), vector_offset=_sb((P, 1), nl.int32), indirect_dim=1),
     KernelUsageError, "vector_offset on .* in sbuf"),
    (lambda s: s.ap(_cols(8), scalar_offset=1).ap(_cols(4), scalar_offset=2),
     KernelUsageError, "already sits at a runtime offset"),
    (lambda s: s.ap(_cols(4), scalar_offset=_off(1, buffer=nl.psum)),
     BufferKindError, "must reside in SBUF"),
    (lambda s: s.ap(_cols(4), scalar_offset=_off(1.0, nl.float32)), DTypeError,
     "integer tile"),
    (lambda s: nisa.tensor_copy_dynamic_src(
        _sb((P, 4)), nl.ndarray((P, F), nl.float32, buffer=nl.shared_hbm).ap(
            _cols(4), scalar_offset=1)),
     BufferKindError, "compute engines access SBUF/PSUM only"),
])
def test_each_rule_raises_at_the_kernel_line(body, error, match):
    with pytest.raises(error, match=match) as info:
        nki.simulate(_kernel(body))(X)
    assert "test_dynamic_offsets.py" in str(info.value)
    assert "\n" not in str(info.value)


def test_scalar_engine_has_no_dynamic_copy_on_nc_v2():
    def body(s):
        nisa.tensor_copy_dynamic_src(_sb((P, 4)), s.ap(_cols(4), scalar_offset=_off(1)),
                                     engine=nisa.scalar_engine)

    with pytest.raises(EngineAccessError, match="NeuronCore-v2"):
        nki.simulate(_kernel(body), chip="trn1")(X)


# ---------------------------------------------------------------------------- records, cost
def test_symbolic_trace_records_conservative_patterns():
    trace = nki.trace(_gather_cols, symbolic=True)(
        nki.TensorSpec((P, F), nl.float32), nki.TensorSpec((1, 1), nl.int32))
    copies = [i for i in trace.instructions if i.opcode is Opcode.TENSOR_COPY_DYNAMIC_SRC]
    assert len(copies) == 2 and all(i.engine is Engine.VECTOR for i in copies)
    for inst in copies:
        src = inst.reads[0]
        # every row position an offset can reach: all 16 elements of each partition
        assert src.offset_elems == 0 and src.pattern == ((F, P), (1, F))
        assert inst.free_elements == 4 and inst.partitions == P  # N: the view's own size
    # the tile offset is read by the engine; the register offset touches no memory
    assert [len(i.reads) for i in copies] == [1, 2]
    assert copies[1].reads[1].pattern[-1] == (1, 1)


def test_reachable_range_follows_the_offset_stride():
    def body(x):
        t = _sb((P, 8, 3))
        view = t.ap([[24, P], [1, 2]], 1, scalar_offset=nisa.register_alloc(0), indirect_dim=1)
        assert view.access().offset_elems == 1  # placements 1..2, 4..5, ..., 22..23
        assert view.access().pattern == ((24, P), (1, 23))
        assert view[:, 1:2].shift() == 0 and view.free_size == 2
    nki.simulate(_kernel(lambda s: body(s)))(X)


@pytest.mark.parametrize("n", [64, 1024])
def test_cost_is_max_of_600_and_n(n):
    @nki.jit
    def k(x):
        src = _sb((P, 2048))
        nisa.memset(src, 1.0)
        nisa.tensor_copy_dynamic_src(_sb((P, n)), src.ap([[2048, P], [1, n]],
                                                         scalar_offset=nisa.register_alloc(7)))
        nisa.tensor_copy_dynamic_dst(src.ap([[2048, P], [1, n]], scalar_offset=_off(3)),
                                     _sb((P, n)))
        return x

    trace = nki.trace(k, chip="trn1")(X)
    core, cal = hw.load_chip("trn1").core, load_calibration("nc-v2")
    copies = [i for i in trace.instructions
              if i.opcode in (Opcode.TENSOR_COPY_DYNAMIC_SRC, Opcode.TENSOR_COPY_DYNAMIC_DST)]
    assert len(copies) == 2
    for inst in copies:
        assert engine_cycles(inst, core, cal) == max(600, n)
    profile = sim.schedule(trace, "trn1")
    assert profile.total_s > 0


def test_dependencies_see_every_position_the_offset_can_reach():
    """A runtime-offset write (static place: columns 0..3) orders a later read of columns
    8..11 of the same tile and the earlier memset of the offset tile; a static write of
    columns 0..3 does not order that read."""
    @nki.jit
    def k(x):
        t = _sb((P, F))
        nisa.memset(t, 0.0)
        off = _off(8)
        nisa.tensor_copy_dynamic_dst(t.ap(_cols(4), scalar_offset=off), _load(x)[:, 0:4])
        nisa.tensor_copy(_sb((P, 4)), t[:, 8:12])  # pos + 1
        nisa.tensor_copy(t[:, 0:4], _sb((P, 4)))  # pos + 2: a static write of columns 0..3
        nisa.tensor_copy(_sb((P, 4)), t[:, 12:16])  # pos + 3
        return x

    trace = nki.trace(k, symbolic=True)(nki.TensorSpec((P, F), nl.float32))
    ops = [i.opcode for i in trace.instructions]
    pos = ops.index(Opcode.TENSOR_COPY_DYNAMIC_DST)
    deps = [set(d) for d in sim.dependencies(sim.flatten(trace.instructions,
                                                         trace.tensors)).lists()]
    memset_off = pos - 2  # the offset tile's memset (the dma_copy of x comes between)
    assert trace.instructions[memset_off].writes[0].tensor == \
        trace.instructions[pos].reads[1].tensor
    assert memset_off in deps[pos]  # the engine reads the offset the memset wrote
    assert pos in deps[pos + 1]  # RAW: columns 8..11 may be what the copy wrote
    assert pos in deps[pos + 3]  # columns 12..15 are within reach too
    assert pos + 2 not in deps[pos + 3]  # a static write of 0..3 misses columns 12..15
