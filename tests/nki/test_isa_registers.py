"""nisa.register_alloc / register_move / register_load / register_store and VirtualRegister:
values (numpy references from the pages), the recorded instructions, and one error per rule."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.stream import Engine, Opcode


def _one(dtype, value, buffer=nl.sbuf):
    t = nl.ndarray((1, 1), dtype, buffer=buffer)
    nisa.memset(t, value) if buffer is nl.sbuf else None
    return t


@nki.jit
def _round_trip(x):
    """Each register path, stored into a row of int32 results."""
    out = nl.ndarray((1, 6), nl.int32, buffer=nl.shared_hbm)
    res = nl.ndarray((1, 6), nl.int32, buffer=nl.sbuf)
    a = nisa.register_alloc(-7)
    b = nisa.register_alloc()
    nisa.register_move(b, 42)
    c = nisa.register_alloc()
    nisa.register_move(c, src=a)  # the 2.29 page's register source
    d = nisa.register_alloc()
    nisa.register_load(d, x[0:1, 0:1])  # straight from HBM
    e = nisa.register_alloc()
    nisa.register_load(e, _one(nl.int8, -3))  # sign-extended
    f = nisa.register_alloc()
    nisa.register_move(f, b)  # a register as the second argument
    for col, reg in enumerate((a, b, c, d, e, f)):
        nisa.register_store(res[0:1, col:col + 1], reg)
    nisa.dma_copy(dst=out, src=res)
    return out


def test_values_follow_the_pages() -> None:
    x = np.array([[123456]], np.int32)
    np.testing.assert_array_equal(nki.simulate(_round_trip)(x), [[-7, 42, -7, 123456, -3, 42]])


@nki.jit
def _bits(x):
    """A float tile moves raw bits; a narrower integer tile keeps the low bits."""
    out_f = nl.ndarray((1, 1), nl.float32, buffer=nl.shared_hbm)
    out_u = nl.ndarray((1, 1), nl.uint16, buffer=nl.shared_hbm)
    r = nisa.register_alloc()
    nisa.register_load(r, x)
    f_sb, u_sb = _one(nl.float32, 0.0), _one(nl.uint16, 0)
    nisa.register_store(f_sb, r)
    big = nisa.register_alloc(0x12345)
    nisa.register_store(u_sb, big)
    nisa.dma_copy(dst=out_f, src=f_sb)
    nisa.dma_copy(dst=out_u, src=u_sb)
    return out_f, out_u


def test_float_bits_and_narrow_stores() -> None:
    x = np.array([[1.5]], np.float32)
    out_f, out_u = nki.simulate(_bits)(x)
    assert out_f.view(np.uint32)[0, 0] == np.float32(1.5).view(np.uint32)
    assert out_u[0, 0] == 0x2345


def test_instructions_and_costs() -> None:
    x = np.array([[9]], np.int32)
    trace = nki.trace(_round_trip)(x)
    ops = [i.opcode for i in trace.instructions if i.opcode.value.startswith("register")]
    assert ops.count(Opcode.REGISTER_ALLOC) == 1 and ops.count(Opcode.REGISTER_MOVE) == 3
    assert ops.count(Opcode.REGISTER_LOAD) == 2 and ops.count(Opcode.REGISTER_STORE) == 6
    assert all(i.engine is Engine.SCALAR for i in trace.instructions
               if i.opcode.value.startswith("register"))
    profile = sim.schedule(trace, "trn2")
    dur = {}
    for p, inst in enumerate(trace.instructions):
        if inst.opcode is Opcode.REGISTER_LOAD:
            hbm = inst.reads[0].buffer.is_hbm
            dur[hbm] = profile.timeline.end_s[p] - profile.timeline.start_s[p]
    assert dur[True] > dur[False] + 1e-6  # HBM pays a DMA's fixed latency on top


def _kernel(body):
    @nki.jit
    def k(x):
        body(x)
        return x
    return k


X = np.zeros((2, 2), np.int32)


@pytest.mark.parametrize(("body", "error", "match"), [
    (lambda x: nisa.register_alloc(1.5), KernelUsageError, "x must be a compile-time int"),
    (lambda x: nisa.register_alloc(2**31), KernelUsageError, "does not fit a 32-bit"),
    (lambda x: nisa.register_move(nisa.register_alloc(), 1, src=nisa.register_alloc(2)),
     KernelUsageError, "exactly one source"),
    (lambda x: nisa.register_move(nisa.register_alloc(), nisa.register_alloc()),
     KernelUsageError, "before any value was written"),
    (lambda x: nisa.register_move(5, 1), KernelUsageError, "dst must be a VirtualRegister"),
    (lambda x: nisa.register_load(nisa.register_alloc(), x), ShapeMismatchError,
     "exactly one element"),
    (lambda x: nisa.register_load(nisa.register_alloc(),
                                  nl.ndarray((1, 1), nl.int32, buffer=nl.psum)),
     BufferKindError, "HBM or SBUF"),
    (lambda x: nisa.register_load(nisa.register_alloc(),
                                  nl.ndarray((1, 1), nl.float8_e4m3fn_x4, buffer=nl.sbuf)),
     DTypeError, "packed MX"),
    (lambda x: nisa.register_store(x[0:1, 0:1], nisa.register_alloc()), KernelUsageError,
     "before any value was written"),
    (lambda x: range(nisa.register_alloc(3)), KernelUsageError, "not a compile-time int"),
    (lambda x: x.ap([[2, 1], [1, 2]], offset=nisa.register_alloc(1)), KernelUsageError,
     "scalar_offset"),
])
def test_each_rule_raises(body, error, match) -> None:
    with pytest.raises(error, match=match) as info:
        nki.simulate(_kernel(body))(X)
    assert "test_isa_registers.py" in str(info.value)  # the kernel line is named


def test_symbolic_trace_refuses_an_unknown_register() -> None:
    def body(x):
        r = nisa.register_alloc()
        nisa.register_load(r, x[0:1, 0:1])
        for _ in nl.dynamic_range(r):
            pass

    with pytest.raises(KernelUsageError, match=r"register reg0 was loaded from memory"):
        nki.trace(_kernel(body), symbolic=True)(nki.TensorSpec((2, 2), nl.int32))
