"""Beta-1 direct allocation: `ncc.sbuf` / `ncc.psum` and their `alloc`, `mod_alloc`,
`auto_alloc` (neuronxcc.nki.compiler).

The pages ("nki.compiler.sbuf.alloc", "sbuf.mod_alloc", "psum.alloc", "psum.mod_alloc",
"auto_alloc"; "NKI Direct Allocation Developer Guide") let a kernel place each logical
block of a `(B..., P, F...)` tensor at a physical partition and byte address, passed as a
creation call's `buffer=`. Tessera checks every documented rule (one-line errors) but does
not place tiles by hand: its allocator places them, so two blocks given one address do not
alias here. Each use of a direct allocator lists that once in the profile's notes.

Rules checked (current release, per the pages):
- sbuf.alloc(func): func(idx, pdim_size, fdim_size_bytes) -> (start_partition, byte_addr);
  start_partition 0 when 64 < P <= 128, 0/64 when 32 < P <= 64, 0/32/64/96 when P <= 32;
  byte_addr from 0 up to the partition size less the compiler's 16 KiB (the tile must fit).
- sbuf.mod_alloc: base_partition 0; num_par_tiles / num_free_tiles empty or one positive
  int per block dimension; the tiles it cycles through must fit the partitions and bytes.
- psum.alloc(func): func(...) -> (bank_id, start_partition, byte_addr), both of the
  latter 0; a logical tile within one 2 KiB bank; bank_id a PSUM bank of the core.
- psum.mod_alloc: base_addr and base_partition 0; num_par_tiles / num_free_tiles empty or
  all ones; num_bank_tiles one positive int per block dimension; its banks exist.
- A kernel's SBUF tensors are all auto-allocated or all direct; likewise PSUM (per memory,
  as the auto_alloc pages say), unless `@ncc.force_auto_alloc` ignores direct allocation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from tessera.nki import dtypes as dt
from tessera.nki.buffers import Buffer
from tessera.nki.errors import KernelUsageError
from tessera.nki.runtime import add_note, current, maybe_current

COMPILER_RESERVED_BYTES = 16 * 1024  # per SBUF partition, "allocated for compiler usage"
FORCE_AUTO = "beta1_force_auto_alloc"  # KernelRun flag set by @ncc.force_auto_alloc
_KINDS = "beta1_allocation_kinds"  # KernelRun: Buffer -> "auto" / "direct" seen so far


def _ints(value: object, what: str, fn: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise KernelUsageError(f"{fn}: {what} must be a tuple of positive ints, got {value!r}")
    return tuple(value)


def _nonneg(value: object, what: str, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KernelUsageError(f"{fn}: {what} must be a non-negative int, got {value!r}")
    return value


def _per_block(value: tuple[int, ...], blocks: tuple[int, ...], what: str, fn: str) -> None:
    if value and len(value) != len(blocks):
        raise KernelUsageError(f"{fn}: {what}={value} must be empty or have one entry per "
                               f"block dimension ({len(blocks)} for blocks {list(blocks)})")


def _starts(pdim: int) -> tuple[int, ...]:
    return (0,) if pdim > 64 else (0, 64) if pdim > 32 else (0, 32, 64, 96)


class DirectAllocator:
    """A direct allocator passed as `buffer=`: `place` checks the tensor against the
    page's rules; `note` lists it in the profile's notes (placement is not modelled)."""

    buffer: ClassVar[Buffer]
    api: ClassVar[str]

    def place(self, blocks: tuple[int, ...], tile_shape: tuple[int, ...],
              dtype: object) -> None:
        raise NotImplementedError

    def note(self) -> None:
        """List this allocator once in the running kernel's profile notes."""
        add_note(f"ncc.{self.api}: direct allocation accepted, not modelled (tiles placed "
                 "by the automatic allocator; aliasing between blocks that share an address "
                 "is not reproduced)")


def _fdim_bytes(tile_shape: tuple[int, ...], dtype: object) -> int:
    return math.prod(tile_shape[1:]) * dt.to_dtype(dtype).itemsize


def _check_sbuf_tile(fn: str, idx: tuple[int, ...], pdim: int, fbytes: int, start: object,
                     addr: object) -> None:
    limits = current().run.limits
    top = limits.sbuf_bytes_per_partition - COMPILER_RESERVED_BYTES
    if start not in _starts(pdim):
        raise KernelUsageError(f"{fn}: block {idx}: start_partition {start!r} is not allowed "
                               f"for a {pdim}-partition tile (one of {_starts(pdim)})")
    if isinstance(addr, bool) or not isinstance(addr, int) or addr < 0:
        raise KernelUsageError(f"{fn}: block {idx}: byte_addr {addr!r} must be a "
                               "non-negative int")
    if addr > top - fbytes:
        # the placement is not modelled (the automatic allocator places the tile, spilling
        # if it must), so an address past the usable range is noted, not refused
        add_note(f"{fn}: byte_addr {addr} puts a {fbytes}-byte tile past the {top} usable "
                 "bytes per partition; the tile is placed by the automatic allocator")


def _two_or_three(r: object, n: int, fn: str, idx: tuple[int, ...]) -> tuple[int, ...]:
    if not isinstance(r, tuple | list) or len(r) != n or any(
            isinstance(v, bool) or not isinstance(v, int) for v in r):
        raise KernelUsageError(f"{fn}: func{idx} must return a tuple of {n} ints, got {r!r}")
    return tuple(r)


@dataclass(frozen=True)
class SbufAlloc(DirectAllocator):
    """`ncc.sbuf.alloc(func)`: func(idx, pdim_size, fdim_size) -> (start_partition,
    byte_addr) for every logical block."""

    func: Callable[..., object]
    buffer: ClassVar[Buffer] = Buffer.SBUF
    api: ClassVar[str] = "sbuf.alloc"

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise KernelUsageError(f"ncc.sbuf.alloc: func must be callable, got {self.func!r}")

    def place(self, blocks: tuple[int, ...], tile_shape: tuple[int, ...],
              dtype: object) -> None:
        pdim, fbytes = tile_shape[0], _fdim_bytes(tile_shape, dtype)
        for idx in itertools.product(*(range(b) for b in blocks)):
            # by keyword, as the pages name them (kernels bind other arguments by partial)
            placed = self.func(idx=idx, pdim_size=pdim, fdim_size=fbytes)
            start, addr = _two_or_three(placed, 2, "ncc.sbuf.alloc", idx)
            _check_sbuf_tile("ncc.sbuf.alloc", idx, pdim, fbytes, start, addr)


@dataclass(frozen=True)
class SbufModAlloc(DirectAllocator):
    """`ncc.sbuf.mod_alloc(base_addr=, base_partition=0, num_par_tiles=(),
    num_free_tiles=())`: blocks cycle through a few physical tiles (multi-buffering)."""

    base_addr: int
    base_partition: int = 0
    num_par_tiles: tuple[int, ...] = ()
    num_free_tiles: tuple[int, ...] = ()
    buffer: ClassVar[Buffer] = Buffer.SBUF
    api: ClassVar[str] = "sbuf.mod_alloc"

    def __post_init__(self) -> None:
        fn = "ncc.sbuf.mod_alloc"
        _nonneg(self.base_addr, "base_addr", fn)
        if self.base_partition != 0:
            raise KernelUsageError(f"{fn}: base_partition={self.base_partition!r}; it must "
                                   "be 0 in the current release")
        object.__setattr__(self, "num_par_tiles", _ints(self.num_par_tiles,
                                                        "num_par_tiles", fn))
        object.__setattr__(self, "num_free_tiles", _ints(self.num_free_tiles,
                                                         "num_free_tiles", fn))

    def place(self, blocks: tuple[int, ...], tile_shape: tuple[int, ...],
              dtype: object) -> None:
        fn = "ncc.sbuf.mod_alloc"
        _per_block(self.num_par_tiles, blocks, "num_par_tiles", fn)
        _per_block(self.num_free_tiles, blocks, "num_free_tiles", fn)
        pdim, fbytes = tile_shape[0], _fdim_bytes(tile_shape, dtype)
        pmax = current().run.limits.pmax
        if math.prod(self.num_par_tiles) * pdim > pmax:
            raise KernelUsageError(f"{fn}: num_par_tiles={self.num_par_tiles} tiles of {pdim} "
                                   f"partitions exceed the {pmax} partitions")
        last = self.base_addr + (math.prod(self.num_free_tiles) - 1) * fbytes
        _check_sbuf_tile(fn, (), pdim, fbytes, 0, last)


@dataclass(frozen=True)
class PsumAlloc(DirectAllocator):
    """`ncc.psum.alloc(func)`: func(idx, pdim_size, fdim_size) -> (bank_id,
    start_partition, byte_addr) for every logical block."""

    func: Callable[..., object]
    buffer: ClassVar[Buffer] = Buffer.PSUM
    api: ClassVar[str] = "psum.alloc"

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise KernelUsageError(f"ncc.psum.alloc: func must be callable, got {self.func!r}")

    def place(self, blocks: tuple[int, ...], tile_shape: tuple[int, ...],
              dtype: object) -> None:
        fn = "ncc.psum.alloc"
        pdim, fbytes = tile_shape[0], _fdim_bytes(tile_shape, dtype)
        banks = _check_bank_tile(fn, fbytes)
        for idx in itertools.product(*(range(b) for b in blocks)):
            placed = self.func(idx=idx, pdim_size=pdim, fdim_size=fbytes)
            bank, start, addr = _two_or_three(placed, 3, fn, idx)
            if start != 0 or addr != 0:
                raise KernelUsageError(f"{fn}: block {idx}: start_partition and byte_addr "
                                       f"must both be 0 in the current release, got "
                                       f"({start}, {addr})")
            if not 0 <= bank < banks:
                raise KernelUsageError(f"{fn}: block {idx}: bank_id {bank} is not one of the "
                                       f"{banks} PSUM banks")


def _check_bank_tile(fn: str, fbytes: int) -> int:
    """The number of PSUM banks, after checking that one tile fits a bank."""
    limits = current().run.limits
    if fbytes > limits.psum_bank_bytes:
        raise KernelUsageError(f"{fn}: a logical tile of {fbytes} bytes per partition exceeds "
                               f"one PSUM bank ({limits.psum_bank_bytes} bytes)")
    return limits.psum_bytes_per_partition // limits.psum_bank_bytes


@dataclass(frozen=True)
class PsumModAlloc(DirectAllocator):
    """`ncc.psum.mod_alloc(base_bank=, base_addr=0, base_partition=0, num_bank_tiles=(),
    num_par_tiles=(), num_free_tiles=())`: blocks cycle through PSUM banks."""

    base_bank: int
    base_addr: int = 0
    base_partition: int = 0
    num_bank_tiles: tuple[int, ...] = ()
    num_par_tiles: tuple[int, ...] = ()
    num_free_tiles: tuple[int, ...] = ()
    buffer: ClassVar[Buffer] = Buffer.PSUM
    api: ClassVar[str] = "psum.mod_alloc"

    def __post_init__(self) -> None:
        fn = "ncc.psum.mod_alloc"
        _nonneg(self.base_bank, "base_bank", fn)
        for name in ("base_addr", "base_partition"):
            if getattr(self, name) != 0:
                raise KernelUsageError(f"{fn}: {name}={getattr(self, name)!r}; it must be 0 "
                                       "in the current release")
        for name in ("num_bank_tiles", "num_par_tiles", "num_free_tiles"):
            object.__setattr__(self, name, _ints(getattr(self, name), name, fn))
        for name in ("num_par_tiles", "num_free_tiles"):
            if any(v != 1 for v in getattr(self, name)):
                raise KernelUsageError(f"{fn}: {name}={getattr(self, name)}; it must be () "
                                       "or all ones in the current release")

    def place(self, blocks: tuple[int, ...], tile_shape: tuple[int, ...],
              dtype: object) -> None:
        fn = "ncc.psum.mod_alloc"
        for name in ("num_bank_tiles", "num_par_tiles", "num_free_tiles"):
            _per_block(getattr(self, name), blocks, name, fn)
        banks = _check_bank_tile(fn, _fdim_bytes(tile_shape, dtype))
        if self.base_bank + math.prod(self.num_bank_tiles) > banks:
            raise KernelUsageError(f"{fn}: base_bank={self.base_bank} with num_bank_tiles="
                                   f"{self.num_bank_tiles} needs banks past the {banks} PSUM "
                                   "banks")


@dataclass(frozen=True)
class AutoAlloc:
    """`ncc.sbuf.auto_alloc()` / `ncc.psum.auto_alloc()`: the compiler places the tensor
    (the same as `buffer=nl.sbuf` / `nl.psum`; modelled exactly)."""

    buffer: Buffer


@dataclass(frozen=True)
class _Memory:
    """`ncc.sbuf` / `ncc.psum`: usable as `buffer=` itself (auto allocation) and holding
    the memory's allocator constructors."""

    buffer: Buffer

    def auto_alloc(self) -> AutoAlloc:
        """The automatic-allocation marker (what `buffer=nl.<memory>` means)."""
        return AutoAlloc(self.buffer)

    def alloc(self, func: Callable[..., object]) -> DirectAllocator:
        """Place every logical block where `func` says (see the module docstring)."""
        return SbufAlloc(func) if self.buffer is Buffer.SBUF else PsumAlloc(func)

    def mod_alloc(self, *args: object, **kwargs: object) -> DirectAllocator:
        """Modulo placement of the logical blocks (keyword arguments only; see the module
        docstring)."""
        fn = f"ncc.{self.buffer.value}.mod_alloc"
        if args:
            raise KernelUsageError(f"{fn} takes keyword arguments only (base_addr=..., ...)")
        kind = SbufModAlloc if self.buffer is Buffer.SBUF else PsumModAlloc
        try:
            return kind(**kwargs)  # type: ignore[arg-type]
        except TypeError as err:
            raise KernelUsageError(f"{fn}: {err}") from None


sbuf = _Memory(Buffer.SBUF)
psum = _Memory(Buffer.PSUM)


def use_buffer(buffer: object, blocks: tuple[int, ...] = (),
               tile_shape: tuple[int, ...] = (), dtype: object = None) -> object:
    """The Buffer a creation call's `buffer=` names. A direct allocator is checked against
    the tensor (block dims, tile shape, dtype) and noted; auto and direct allocation of one
    memory may not be mixed in a kernel (unless `@ncc.force_auto_alloc`)."""
    kind = getattr(buffer, "buffer", buffer)
    ctx = maybe_current()
    if ctx is None or kind not in (Buffer.SBUF, Buffer.PSUM):
        return kind
    direct = isinstance(buffer, DirectAllocator)
    if direct and not getattr(ctx.run, FORCE_AUTO, False):
        if tile_shape and dtype is not None:
            buffer.place(tuple(blocks), tuple(tile_shape), dtype)  # type: ignore[union-attr]
        buffer.note()  # type: ignore[union-attr]
    seen = getattr(ctx.run, _KINDS, None)
    if seen is None:
        seen = {}
        setattr(ctx.run, _KINDS, seen)
    way = "direct" if direct and not getattr(ctx.run, FORCE_AUTO, False) else "auto"
    if seen.setdefault(kind, way) != way:
        raise KernelUsageError(f"{kind.value.upper()} tensors of one kernel must all use automatic "
                               "allocation (nl.sbuf / ncc.*.auto_alloc()) or all direct "
                               "allocation (ncc.*.alloc / mod_alloc), not both")
    return kind


__all__ = ["AutoAlloc", "DirectAllocator", "PsumAlloc", "PsumModAlloc", "SbufAlloc",
           "SbufModAlloc", "psum", "sbuf", "use_buffer"]
