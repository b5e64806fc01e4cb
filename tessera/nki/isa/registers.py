"""Engine registers: VirtualRegister, register_alloc/move/load/store (NKI 2.28+ pages
"nki.isa.register_alloc", "register_load", "register_move", "register_store",
"VirtualRegister"), and the on-chip copies at a runtime offset tensor_copy_dynamic_src/dst
(implemented in `tessera.nki.isa.dynamic_copy`, exported here with the other 2.28/2.29
register-era names).

A register holds one 32-bit integer (each engine sequencer has 64 of them on NeuronCore
v2-v4). Kernels use registers for dynamic loop bounds (`nl.dynamic_range`, `nl.fori_loop`),
while-loop conditions (`while reg:`, `nl.while_loop`) and runtime offsets
(`tensor.ap(..., scalar_offset=reg)`: DMA descriptors over HBM, or a shift within each
partition of an SBUF/PSUM view read by compute instructions). On the CPU a register simply
holds its int. In a symbolic trace (no data) a value loaded from memory is unknown: anything
that needs it (a trip count, a while condition) raises an error naming the register.

Values: integer tiles are read and written by value (a narrower type is sign/zero-extended
on load and keeps the low bits on store); a float tile moves its raw bits, since a register
is an integer and the pages describe a 32-bit load, not a conversion.

Timing: the pages give no cycle counts for register instructions, and Tessera has no cost
model for the Sync engine's queue, so they are recorded on the Scalar engine (the hardware
DGE that consumes register DMA offsets is driven by the SyncE or ScalarE sequencer);
`tessera.sim.cost_rules` says what each is assumed to cost.
"""

from __future__ import annotations

import numpy as np

from tessera.nki.attrs import NO_ATTRS, RegisterMoveAttrs
from tessera.nki.buffers import Buffer
from tessera.nki.errors import BufferKindError, DTypeError, KernelUsageError, ShapeMismatchError
from tessera.nki.isa._common import record, tensor_arg
from tessera.nki.isa.dynamic_copy import tensor_copy_dynamic_dst, tensor_copy_dynamic_src
from tessera.nki.runtime import CoreContext, current, kernel_api, kernel_location, maybe_current
from tessera.nki.stream import Engine, Opcode
from tessera.nki.tensor import NkiTensor

REGISTER_ENGINE = Engine.SCALAR  # see the module docstring
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_PACKED_X4 = ("x4",)  # MX packed types (float8_e5m2_x4, ...) are refused by load and store


def _wrap32(value: int) -> int:
    """`value` as the signed 32-bit integer a register holds."""
    return (int(value) + 2**31) % 2**32 - 2**31


class VirtualRegister:
    """One 32-bit engine register, allocated with `nisa.register_alloc` (page
    "nki.isa.VirtualRegister").

    Its value lives on the device, so Python cannot use it as a number: `int(reg)`,
    `range(reg)`, indexing and `offset=` raise. It can bound `nl.dynamic_range` /
    `nl.fori_loop`, be the condition of `while reg:` / `nl.while_loop`, and be the
    `scalar_offset=` of a view (HBM for DMAs, SBUF/PSUM for compute instructions). `value`
    is its current int on the CPU (None: not known in a symbolic trace, or never written).
    """

    __slots__ = ("name", "_value", "_written", "_test")

    def __init__(self, name: str, value: int | None, written: bool) -> None:
        self.name = name
        self._value = value
        self._written = written
        self._test: tuple[CoreContext, int] | None = None  # last `while reg:` test recorded

    @property
    def value(self) -> int | None:
        """The register's int, or None when a symbolic trace cannot know it."""
        return self._value

    def set(self, value: int | None) -> None:
        """Write `value` (None: unknown, a symbolic load)."""
        self._value = None if value is None else _wrap32(value)
        self._written = True

    def known(self, op: str, use: str) -> int:
        """The value `op` needs for `use`, or an error naming the register."""
        if not self._written:
            raise KernelUsageError(f"{op}: register {self.name} is read ({use}) before any "
                                   "value was written to it (register_alloc() without x "
                                   "leaves it uninitialized)")
        if self._value is None:
            raise KernelUsageError(f"{op}: register {self.name} was loaded from memory, so a "
                                   f"symbolic trace does not know its value ({use}); trace "
                                   "with input values (symbolic=False) to run this loop")
        return self._value

    def __bool__(self) -> bool:
        """The test of `while reg:` (page "NKI Dynamic Loops"): true while nonzero. Each test
        records the loop's compare-and-branch; instructions between two tests of the same
        register form one iteration, fenced like a dynamic loop's iterations."""
        ctx = maybe_current()
        if ctx is None:
            raise KernelUsageError(f"register {self.name}: a register condition is tested "
                                   "on the device, inside a kernel")
        try:
            value = self.known("while", "as the loop condition")
        except KernelUsageError as err:
            raise err.with_location(str(kernel_location())) from None
        from tessera.nki.language_loops import fence  # the loop module builds on this one

        branch = record_loop_control(ctx)
        if self._test is not None and self._test[0] is ctx:
            fence(ctx, self._test[1], branch)
        self._test = (ctx, branch) if value else None
        return value != 0

    def dma_offset(self) -> int:
        """The value as a view's `scalar_offset=` (tessera.nki.indirect and
        tessera.nki.dynamic_views read it when the instruction runs; a symbolic trace records
        offsets as 0). The one place NKI reads a register as a number: Python code that would
        use it as a compile-time int gets an error."""
        ctx = maybe_current()
        if self._value is None and ctx is not None and ctx.run.symbolic:
            return 0
        return self.known("scalar_offset", "as a runtime offset")

    def __index__(self) -> int:
        raise self._not_a_number()

    def __int__(self) -> int:
        raise self._not_a_number()

    def __float__(self) -> float:
        raise self._not_a_number()

    def _not_a_number(self) -> KernelUsageError:
        return KernelUsageError(
            f"register {self.name} holds a device value, not a compile-time int: bound a "
            "loop with nl.dynamic_range / nl.fori_loop, test it with `while` / nl.while_loop, "
            "or pass it as scalar_offset= of tensor.ap(...)", location=str(kernel_location()))

    def __repr__(self) -> str:
        shown = "unknown" if self._value is None else str(self._value)
        return f"VirtualRegister({self.name}={shown if self._written else 'uninitialized'})"


def _refuse_arithmetic(self: VirtualRegister, *_: object) -> object:
    """Host-side arithmetic or ordering (`i * 128`, `if i < n:`) would bake a device value
    into the compiled program; the dynamic-loops page forbids it."""
    raise self._not_a_number()


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "floordiv", "rfloordiv", "mod",
              "rmod", "neg", "lt", "le", "gt", "ge"):
    setattr(VirtualRegister, f"__{_name}__", _refuse_arithmetic)


def new_register(ctx: CoreContext, value: int | None, written: bool = True) -> VirtualRegister:
    """A fresh register named for the trace (`reg0`, `reg1`, ...)."""
    return VirtualRegister(ctx.fresh_name("reg"), value, written)


def record_loop_control(ctx: CoreContext) -> int:
    """Record one dynamic-loop control step (the counter update and compare-and-branch, at
    entry and at the end of every iteration) as a register_move; its stream position."""
    inst = record(ctx, REGISTER_ENGINE, Opcode.REGISTER_MOVE, (), (),
                  RegisterMoveAttrs("loop"))
    return inst.index


def _register_arg(value: object, what: str, op: str) -> VirtualRegister:
    if not isinstance(value, VirtualRegister):
        raise KernelUsageError(f"{op}: {what} must be a VirtualRegister from "
                               f"nisa.register_alloc, got {type(value).__name__}")
    return value


def _int32_constant(value: object, what: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise KernelUsageError(f"{op}: {what} must be a compile-time int constant, got "
                               f"{type(value).__name__}")
    if not INT32_MIN <= int(value) <= INT32_MAX:
        raise KernelUsageError(f"{op}: {what} {int(value)} does not fit a 32-bit register "
                               f"({INT32_MIN}..{INT32_MAX})")
    return int(value)


def _scalar_tile(t: object, what: str, op: str) -> NkiTensor:
    """A one-element tile in HBM or SBUF of a non-packed dtype of at most 32 bits."""
    t = tensor_arg(t, what, op)
    if t.size != 1 or t.ndim > 2:
        raise ShapeMismatchError(f"{op}: {what} {t.name}{list(t.shape)} must hold exactly one "
                                 "element (shape [1] or [1, 1])")
    if t.buffer is Buffer.PSUM:
        raise BufferKindError(f"{op}: {what} {t.name} is in psum; registers load from and "
                              "store to HBM or SBUF")
    if t.dtype.name.endswith(_PACKED_X4) or t.dtype.itemsize > 4:
        raise DTypeError(f"{op}: {what} {t.name} is {t.dtype.name}; registers move one "
                         "scalar of at most 32 bits (packed MX x4 types are not allowed)")
    return t


# ---------------------------------------------------------------------- instructions
@kernel_api
def register_alloc(x: object = None) -> VirtualRegister:
    """A new virtual register, set to the int constant `x` (one register move) or, with
    x=None, uninitialized (no instruction; reading it before a write is an error)."""
    op = "register_alloc"
    ctx = current()
    if x is None:
        return new_register(ctx, None, written=False)
    value = _int32_constant(x, "x", op)
    reg = new_register(ctx, value)
    record(ctx, REGISTER_ENGINE, Opcode.REGISTER_ALLOC, (), (), RegisterMoveAttrs("imm"))
    return reg


@kernel_api
def register_move(dst: object, imm: object = None, src: object = None) -> None:
    """dst <- a compile-time int constant `imm`, or another register (`src=` or a register
    as the second argument, the 2.29 page's form). Touches no memory."""
    op = "register_move"
    ctx = current()
    reg = _register_arg(dst, "dst", op)
    if (imm is None) == (src is None):
        raise KernelUsageError(f"{op}: give exactly one source: an int constant (imm) or a "
                               "register (src)")
    source = imm if src is None else src
    if isinstance(source, VirtualRegister):
        if not source._written:
            source.known(op, "as the source")  # raises: moving an uninitialized register
        record(ctx, REGISTER_ENGINE, Opcode.REGISTER_MOVE, (), (),
               RegisterMoveAttrs("register"))
        reg.set(source.value)
        return
    value = _int32_constant(source, "imm", op)
    record(ctx, REGISTER_ENGINE, Opcode.REGISTER_MOVE, (), (), RegisterMoveAttrs("imm"))
    reg.set(value)


@kernel_api
def register_load(dst: object, src: object) -> None:
    """dst <- the single value of `src` (a [1] or [1, 1] tile in HBM or SBUF, read when the
    instruction runs). Integer tiles give their value, float tiles their raw bits."""
    op = "register_load"
    ctx = current()
    reg = _register_arg(dst, "dst", op)
    tile = _scalar_tile(src, "src", op)
    record(ctx, REGISTER_ENGINE, Opcode.REGISTER_LOAD, (tile,), (), NO_ATTRS)
    if ctx.run.symbolic:
        reg.set(None)
        return
    raw = tile.numpy().reshape(-1)[:1]
    if tile.dtype.is_int:
        reg.set(int(raw[0]))
    else:  # a float's bits, zero-extended from its width
        reg.set(int(raw.view(np.dtype(f"u{raw.dtype.itemsize}"))[0]))


@kernel_api
def register_store(dst: object, src: object) -> None:
    """dst (a [1] or [1, 1] tile in HBM or SBUF) <- the register `src`: an integer tile gets
    the value (low bits for narrower types), a float tile the register's low bits."""
    op = "register_store"
    ctx = current()
    tile = _scalar_tile(dst, "dst", op)
    reg = _register_arg(src, "src", op)
    if not reg._written:
        reg.known(op, "as the value to store")
    record(ctx, REGISTER_ENGINE, Opcode.REGISTER_STORE, (), (tile,), NO_ATTRS)
    if ctx.run.symbolic or reg.value is None:
        return
    storage = np.dtype(tile.dtype.storage)
    bits = np.array([reg.value & (2**32 - 1)], dtype=np.uint64)
    unsigned = bits.astype(np.dtype(f"u{storage.itemsize}"))  # keeps the low bits
    tile.write_raw(unsigned.view(storage).reshape(tile.shape))


__all__ = ["VirtualRegister", "register_alloc", "register_load", "register_move", "register_store",
           "tensor_copy_dynamic_dst", "tensor_copy_dynamic_src"]
