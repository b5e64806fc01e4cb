"""Loops that run on the device: `nl.dynamic_range`, `nl.fori_loop`, `nl.while_loop`
(pages "NKI Dynamic Loops", "NKI Loops", "nki.language.dynamic_range", "fori_loop",
"while_loop").

Bounds and conditions may be registers (`nisa.register_alloc`/`register_load`); on the CPU
their values are known, so the body runs once per iteration, eagerly, like any kernel code.
In a symbolic trace a register loaded from memory has no value: such a loop raises an error
naming the register (trace with input values instead).

Timing, as the dynamic-loops page describes the compiled loop: each iteration ends with a
drain and a barrier across all engines, so no instruction of iteration i + 1 starts before
every instruction of iteration i has finished. Tessera records the loop control (counter
update and compare-and-branch) as one register_move at entry and one at the end of every
iteration, and fences each iteration with runtime dependencies: every instruction of the
iteration waits for the previous control step, and the next control step waits for all of
them. Instructions after the loop are not fenced against its last iteration (they still
wait for the data they read).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

from tessera.nki.errors import KernelUsageError, NkiError
from tessera.nki.isa.registers import VirtualRegister, new_register, record_loop_control
from tessera.nki.runtime import CoreContext, kernel_location, maybe_current

MAX_WHILE_ITERATIONS = 1_000_000  # a condition that never reaches 0 would hang the trace
F = TypeVar("F", bound=Callable[..., None])


def _located(fn: F) -> F:
    """Errors name the kernel line (like `kernel_api`), and the loop returns None as the
    pages say (no instruction handle)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except NkiError as err:
            raise err.with_location(str(kernel_location())) from None

    return wrapper  # type: ignore[return-value]


def fence(ctx: CoreContext, before: int, after: int) -> None:
    """Make the instructions strictly between control steps `before` and `after` one
    iteration: each waits for `before`, and `after` waits for each (and for `before`)."""
    edges = ctx.edges
    edges.append((after, before, "runtime"))
    for c in range(before + 1, after):
        edges.append((c, before, "runtime"))
        edges.append((after, c, "runtime"))


def _bound(value: object, what: str, op: str) -> int:
    """A loop bound: an int, or a register's value."""
    if isinstance(value, VirtualRegister):
        return value.known(op, f"as the loop's {what}")
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise KernelUsageError(f"{op}: {what} must be an int or a VirtualRegister, got "
                               f"{type(value).__name__}")
    return int(value)  # type: ignore[call-overload]


def _step(step: object, op: str) -> int:
    if isinstance(step, VirtualRegister):
        raise KernelUsageError(f"{op}: step must be a compile-time positive int, not register "
                               f"{step.name} (the loop instruction encodes it as an immediate)")
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise KernelUsageError(f"{op}: step must be a compile-time positive int, got {step!r}")
    return step


def _loop_context(op: str) -> CoreContext:
    ctx = maybe_current()
    if ctx is None:
        raise KernelUsageError(f"{op} runs on the device: call it inside a kernel")
    if ctx.no_reorder_depth:
        raise KernelUsageError(f"{op}: a dynamic loop inside nl.no_reorder() is not supported; "
                               "put the no_reorder block inside the loop body")
    return ctx


def _counted(ctx: CoreContext, values: range) -> Iterator[VirtualRegister]:
    """The device loop over `values`: entry control, then per iteration the loop register
    (passed by value), the body (the caller's), a control step and the iteration fence."""
    control = record_loop_control(ctx)
    for value in values:
        yield new_register(ctx, value)
        after = record_loop_control(ctx)
        fence(ctx, control, after)
        control = after


def dynamic_range(start: object, stop: object = None, step: object = 1) -> Iterator:
    """A loop run by the device (never unrolled): `for i in nl.dynamic_range(n)`.

    start/stop are ints or VirtualRegisters (one argument: the stop, from 0); step is a
    compile-time positive int. Inside a kernel the loop variable is a VirtualRegister
    (usable as a DMA `scalar_offset=`, not as a Python int) and each iteration is fenced
    (module docstring). On the host it is a plain range of ints.
    """
    op = "nl.dynamic_range"
    try:
        lo, hi = (0, start) if stop is None else (start, stop)
        inc = _step(step, op)
        ctx = maybe_current()
        if ctx is None:
            return iter(range(_bound(lo, "start", op), _bound(hi, "stop", op), inc))
        ctx = _loop_context(op)
        values = range(_bound(lo, "start", op), _bound(hi, "stop", op), inc)
    except KernelUsageError as err:
        raise err.with_location(str(kernel_location())) from None
    return _counted(ctx, values)


@_located
def fori_loop(lower: object, upper: object, body_fun: Callable[[VirtualRegister], object],
              step: object = 1, unroll: bool | None = None) -> None:
    """Run `body_fun(i)` for i in range(lower, upper, step) as a device loop.

    lower/upper: ints or VirtualRegisters; step: a compile-time positive int. `i` is a
    VirtualRegister passed by value (writing it does not change the loop). unroll=True
    unrolls at compile time (bounds must be ints; no loop control, no fences); None (the
    compiler's choice) and False keep the loop rolled. Returns None.
    """
    op = "nl.fori_loop"
    if not callable(body_fun):
        raise KernelUsageError(f"{op}: body_fun must be callable, got "
                               f"{type(body_fun).__name__}")
    ctx = _loop_context(op)
    inc = _step(step, op)
    if unroll:
        for what, bound in (("lower", lower), ("upper", upper)):
            if isinstance(bound, VirtualRegister):
                raise KernelUsageError(f"{op}: unroll=True needs compile-time bounds; {what} is "
                                       f"register {bound.name}, known only at run time")
        for value in range(_bound(lower, "lower", op), _bound(upper, "upper", op), inc):
            body_fun(new_register(ctx, value))
        return None
    values = range(_bound(lower, "lower", op), _bound(upper, "upper", op), inc)
    for i in _counted(ctx, values):
        body_fun(i)
    return None


def _condition(value: object, op: str, what: str) -> int:
    if isinstance(value, VirtualRegister):
        return value.known(op, f"as the {what}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise KernelUsageError(f"{op}: the {what} must be a VirtualRegister or an int, got "
                               f"{type(value).__name__}")
    return value


@_located
def while_loop(init: object, body_fun: Callable[[VirtualRegister], object]) -> None:
    """`r = init; while r != 0: r = body_fun(r)` as a device loop (a true while: a zero
    init runs the body 0 times).

    init is a VirtualRegister (or an int); the body receives the current condition as a
    VirtualRegister passed by value and returns the next one (a register or an int). The
    loop keeps its own condition register, so `init` keeps its value. Returns None.
    """
    op = "nl.while_loop"
    if not callable(body_fun):
        raise KernelUsageError(f"{op}: body_fun must be callable, got "
                               f"{type(body_fun).__name__}")
    ctx = _loop_context(op)
    cond = _condition(init, op, "initial condition")
    control = record_loop_control(ctx)  # move init into the loop's condition and test it
    iterations = 0
    while cond != 0:
        if iterations == MAX_WHILE_ITERATIONS:
            raise KernelUsageError(f"{op}: the condition is still nonzero after "
                                   f"{MAX_WHILE_ITERATIONS:,} iterations; the body must "
                                   "return 0 to stop")
        returned = body_fun(new_register(ctx, cond))
        if returned is None:
            raise KernelUsageError(f"{op}: body_fun must return the next condition (a "
                                   "VirtualRegister or an int), got None")
        cond = _condition(returned, op, "condition body_fun returned")
        after = record_loop_control(ctx)
        fence(ctx, control, after)
        control = after
        iterations += 1
    return None


__all__ = ["dynamic_range", "fori_loop", "while_loop"]
