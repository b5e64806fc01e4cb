"""Device loops: nl.dynamic_range, nl.fori_loop, nl.while_loop and `while reg:` with bounds
read from tensors at run time, their iteration fences, and the dynamic-loops page's timing."""

from __future__ import annotations

import numpy as np
import pytest

import tessera.nki.isa as nisa
import tessera.nki.language as nl
from tessera import nki, sim
from tessera.nki.errors import KernelUsageError
from tessera.nki.stream import Opcode

ROWS, COLS = 8, 4


def _count_register(n):
    """A register loaded at run time from the [1, 1] int32 HBM tensor n."""
    n_sb = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=n_sb, src=n)
    reg = nisa.register_alloc()
    nisa.register_load(reg, n_sb)
    return reg


def _copy_row(x, out, i):
    """out[i] = 2 * x[i], the row placed by the register i (scalar_offset=)."""
    t = nl.ndarray((1, COLS), nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x.ap([[COLS, 1], [1, COLS]], scalar_offset=i, indirect_dim=0))
    nisa.tensor_scalar(dst=t, data=t, op0=nl.multiply, operand0=2.0)
    nisa.dma_copy(dst=out.ap([[COLS, 1], [1, COLS]], scalar_offset=i, indirect_dim=0), src=t)


def _zeroed(shape):
    out = nl.ndarray(shape, nl.float32, buffer=nl.shared_hbm)
    z = nl.ndarray(shape, nl.float32, buffer=nl.sbuf)
    nisa.memset(z, 0.0)
    nisa.dma_copy(dst=out, src=z)
    return out


@nki.jit
def _rows_dynamic_range(x, n, start):
    out = _zeroed(x.shape)
    for i in nl.dynamic_range(start, _count_register(n), 2):
        _copy_row(x, out, i)
    return out


@nki.jit
def _rows_fori(x, n):
    out = _zeroed(x.shape)
    nl.fori_loop(0, _count_register(n), lambda i: _copy_row(x, out, i))
    return out


@nki.jit
def _rows_while_loop(x, n):
    """Count down from n: the body handles row r - 1 and returns the register r - 1."""
    out = _zeroed(x.shape)
    c_sb = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=c_sb, src=n)
    init = nisa.register_alloc()
    nisa.register_load(init, c_sb)

    def body(r):
        nisa.tensor_scalar(dst=c_sb, data=c_sb, op0=nl.subtract, operand0=1)
        nxt = nisa.register_alloc()
        nisa.register_load(nxt, c_sb)
        _copy_row(x, out, nxt)
        return nxt

    nl.while_loop(init, body)
    return out


@nki.jit
def _rows_while_reg(x, n):
    """The dynamic-loops page's `while reg:`, the condition reloaded from SBUF."""
    out = _zeroed(x.shape)
    c_sb = nl.ndarray((1, 1), nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=c_sb, src=n)
    reg = nisa.register_alloc()
    nisa.register_load(reg, c_sb)
    while reg:
        nisa.tensor_scalar(dst=c_sb, data=c_sb, op0=nl.subtract, operand0=1)
        nisa.register_load(reg, c_sb)
        _copy_row(x, out, reg)
    return out


def _reference(x, rows):
    out = np.zeros_like(x)
    out[list(rows)] = 2 * x[list(rows)]
    return out


X = np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS)


@pytest.mark.parametrize("n", [0, 3, ROWS])
def test_bounds_read_from_a_tensor_at_run_time(n: int) -> None:
    count = np.array([[n]], np.int32)
    np.testing.assert_array_equal(nki.simulate(_rows_dynamic_range)(X, count, 1),
                                  _reference(X, range(1, n, 2)))
    for kernel in (_rows_fori, _rows_while_loop, _rows_while_reg):
        np.testing.assert_array_equal(nki.simulate(kernel)(X, count), _reference(X, range(n)))


def _loop_controls(trace):
    return [p for p, i in enumerate(trace.instructions) if i.opcode is Opcode.REGISTER_MOVE
            and i.attrs.source == "loop"]


def test_iterations_are_fenced() -> None:
    trace = nki.trace(_rows_fori)(X, np.array([[3]], np.int32))
    controls = _loop_controls(trace)
    assert len(controls) == 4  # entry + one per iteration
    t = sim.schedule(trace, "trn2").timeline
    for before, after in zip(controls, controls[1:], strict=False):
        body = range(before + 1, after)
        assert all(t.start_s[c] >= t.end_s[before] for c in body)
        assert all(t.start_s[after] >= t.end_s[c] for c in body)


def test_the_dynamic_loops_page_example_timing() -> None:
    """[128, 2048] fp32 per iteration: load, activation, tensor_scalar, store. The page
    measured ~7.5 us per iteration unrolled and ~17.9 us as nl.fori_loop (trn1)."""
    n = 16
    x = np.zeros((n * 128, 2048), np.float32)

    def body(xv, ov, i):
        t = nl.ndarray((128, 2048), nl.float32, buffer=nl.sbuf)
        a = nl.ndarray((128, 2048), nl.float32, buffer=nl.sbuf)
        pattern = [[2048, 128], [1, 2048]]
        nisa.dma_copy(dst=t, src=xv.ap(pattern, scalar_offset=i, indirect_dim=0))
        nisa.activation(dst=a, op=nl.exp, data=t)
        nisa.tensor_scalar(dst=t, data=a, op0=nl.multiply, operand0=2.0)
        nisa.dma_copy(dst=ov.ap(pattern, scalar_offset=i, indirect_dim=0), src=t)

    def kernel(x, rolled):
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        xv, ov = x.reshape((n, 128 * 2048)), out.reshape((n, 128 * 2048))
        if rolled:
            nl.fori_loop(0, n, lambda i: body(xv, ov, i))
        else:
            for i in range(n):
                body(xv, ov, i)
        return out

    per_iteration = {}
    for rolled in (False, True):
        trace = nki.trace(nki.jit(kernel), chip="trn1")(x, rolled)
        per_iteration[rolled] = sim.schedule(trace, "trn1").total_s / n * 1e6
    assert per_iteration[False] == pytest.approx(7.5, rel=0.2)
    assert per_iteration[True] == pytest.approx(17.9, rel=0.1)


def _kernel(body):
    @nki.jit
    def k(x):
        body(x)
        return x
    return k


@pytest.mark.parametrize(("body", "match"), [
    (lambda x: list(nl.dynamic_range(0, 4, nisa.register_alloc(1))), "step must be a compile"),
    (lambda x: list(nl.dynamic_range(0, 4, 0)), "step must be a compile-time positive"),
    (lambda x: list(nl.dynamic_range(1.5)), "stop must be an int or a VirtualRegister"),
    (lambda x: list(nl.dynamic_range(nisa.register_alloc())), "before any value was written"),
    (lambda x: nl.fori_loop(0, nisa.register_alloc(2), lambda i: None, unroll=True),
     "unroll=True needs compile-time bounds"),
    (lambda x: nl.fori_loop(0, 2, 5), "body_fun must be callable"),
    (lambda x: nl.while_loop(nisa.register_alloc(1), lambda r: None), "must return the next"),
    (lambda x: nl.while_loop(nisa.register_alloc(1), lambda r: 1), "still nonzero after"),
    (lambda x: [nisa.register_alloc(1) + 1], "not a compile-time int"),
])
def test_each_loop_rule_raises(body, match, monkeypatch) -> None:
    monkeypatch.setattr("tessera.nki.language_loops.MAX_WHILE_ITERATIONS", 5)
    with pytest.raises(KernelUsageError, match=match) as info:
        nki.simulate(_kernel(body))(np.zeros((1, 1), np.float32))
    assert "test_loops.py" in str(info.value)


def test_no_reorder_blocks_refuse_dynamic_loops() -> None:
    def body(x):
        with nl.no_reorder():
            nl.fori_loop(0, 2, lambda i: None)

    with pytest.raises(KernelUsageError, match="inside nl.no_reorder"):
        nki.simulate(_kernel(body))(np.zeros((1, 1), np.float32))


def test_fori_loop_unrolled_records_no_loop_and_keeps_init() -> None:
    seen = []

    def body(x):
        init = nisa.register_alloc(2)
        nl.fori_loop(0, 3, lambda i: seen.append(i.value), unroll=True)
        nl.while_loop(init, lambda r: r.value - 1)
        seen.append(init.value)

    trace = nki.trace(_kernel(body))(np.zeros((1, 1), np.float32))
    assert seen == [0, 1, 2, 2]
    assert len(_loop_controls(trace)) == 3  # the while loop only: entry + 2 iterations
