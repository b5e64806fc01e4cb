"""`neuronxcc.nki.compiler` (Beta 1, "ncc"): allocators, kernel decorators and directives.

From the Beta-1 pages ("nki.compiler", "nki.compiler.sbuf.*", "nki.compiler.psum.*"):

- `ncc.sbuf` / `ncc.psum`: `buffer=` values (automatic allocation, like `nl.sbuf`) that
  also hold `alloc(func)`, `mod_alloc(...)` and `auto_alloc()` (`tessera.nki.beta1.
  allocators`: rules checked, placement by Tessera's allocator, each use noted).
- `@ncc.enable_stack_allocator(log_level=50)` (must come with
  `@ncc.skip_middle_end_transformations`), `@ncc.skip_middle_end_transformations`,
  `@ncc.force_auto_alloc`: usable bare or called, above or below `@nki.jit`. They mark the
  kernel's function (`__tessera_notes__`: the notes its launches list; `__tessera_directives__`:
  the decorator names), and `apply_launch_directives(fn, run)` (called when a launch is
  prepared) checks them and lists the notes. None changes what the model does.
- `ncc.multi_buffer(factor=2)`: a `MultiBufferDirective` for a loop's `directives=`; the
  allocator here picks the number of copies, so it is noted, not modelled.
- `ncc.no_reorder()`: an `OperationOrderGuard`; `with ncc.no_reorder():` keeps the block's
  instructions in program order (the Beta-2 `nl.no_reorder`, modelled as edges).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tessera.nki.beta1.allocators import FORCE_AUTO, psum, sbuf
from tessera.nki.errors import KernelUsageError
from tessera.nki.launch import Kernel
from tessera.nki.runtime import KernelRun, add_note
from tessera.nki.scheduling import no_reorder as _no_reorder

NOTES = "__tessera_notes__"
DIRECTIVES = "__tessera_directives__"

_NOTE = {
    "enable_stack_allocator": "ncc.enable_stack_allocator: accepted, not modelled (tiles are "
                              "placed by Tessera's allocator, not a stack allocator)",
    "skip_middle_end_transformations": "ncc.skip_middle_end_transformations: accepted, not "
                                       "modelled (the kernel is traced as written; the timing "
                                       "model has no middle-end passes)",
    "force_auto_alloc": "ncc.force_auto_alloc: direct allocations are ignored (Tessera "
                        "places every tile automatically in any case)",
}


def _mark(func: object, name: str) -> object:
    """Record decorator `name` on the kernel's function; returns `func` itself."""
    target = func.fn if isinstance(func, Kernel) else func
    if not callable(target):
        raise KernelUsageError(f"ncc.{name} decorates a kernel function, got "
                               f"{type(func).__name__}")
    setattr(target, NOTES, tuple(dict.fromkeys((*getattr(target, NOTES, ()), _NOTE[name]))))
    setattr(target, DIRECTIVES, frozenset({*getattr(target, DIRECTIVES, ()), name}))
    return func


def _decorator(func: object, name: str) -> object:
    return (lambda f: _mark(f, name)) if func is None else _mark(func, name)


def enable_stack_allocator(func: Callable | None = None, log_level: int = 50) -> object:
    """`@ncc.enable_stack_allocator`: stack-allocate the kernel's SBUF and PSUM tensors
    (needs `@ncc.skip_middle_end_transformations`); noted, not modelled."""
    if isinstance(log_level, bool) or not isinstance(log_level, int):
        raise KernelUsageError(f"ncc.enable_stack_allocator: log_level must be an int, got "
                               f"{log_level!r}")
    return _decorator(func, "enable_stack_allocator")


def skip_middle_end_transformations(func: Callable | None = None) -> object:
    """`@ncc.skip_middle_end_transformations`: no middle-end passes; noted."""
    return _decorator(func, "skip_middle_end_transformations")


def force_auto_alloc(func: Callable | None = None) -> object:
    """`@ncc.force_auto_alloc`: ignore the kernel's direct allocations; noted."""
    return _decorator(func, "force_auto_alloc")


def apply_launch_directives(fn: object, run: KernelRun) -> None:
    """At a launch of kernel function `fn`: check its ncc decorators and list their notes
    in `run.notes` (each once)."""
    names = getattr(fn, DIRECTIVES, frozenset())
    if "enable_stack_allocator" in names and "skip_middle_end_transformations" not in names:
        raise KernelUsageError("ncc.enable_stack_allocator must be used together with "
                               "@ncc.skip_middle_end_transformations")
    if "force_auto_alloc" in names:
        setattr(run, FORCE_AUTO, True)
    for text in getattr(fn, NOTES, ()):
        if text not in run.notes:
            run.notes.append(text)


@dataclass(frozen=True)
class MultiBufferDirective:
    """`ncc.multi_buffer(factor)`: a loop directive asking for `factor` copies of the
    loop's tiles (multi-buffering)."""

    factor: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise KernelUsageError(f"ncc.multi_buffer: factor must be a positive int, got "
                                   f"{self.factor!r}")

    def note(self) -> None:
        """List the directive in the running kernel's notes (called where a loop takes it)."""
        add_note(f"ncc.multi_buffer(factor={self.factor}): accepted, not modelled (Tessera's "
                 "allocator decides how many copies of a loop's tiles exist)")


def multi_buffer(factor: int = 2) -> MultiBufferDirective:
    """`ncc.multi_buffer(factor=2)`: the multi-buffering loop directive."""
    return MultiBufferDirective(factor)


class OperationOrderGuard:
    """`ncc.no_reorder()`: `with` it, the block's instructions keep program order."""

    def __init__(self) -> None:
        self._block = None

    def __enter__(self) -> OperationOrderGuard:
        self._block = _no_reorder()
        self._block.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        block, self._block = self._block, None
        block.__exit__(*exc)  # type: ignore[union-attr]

    def note(self) -> None:
        """As a loop directive (not a `with` block) it is noted, not modelled."""
        add_note("ncc.no_reorder() as a loop directive: accepted, not modelled (use "
                 "`with ncc.no_reorder():` to keep a block in program order)")


def no_reorder() -> OperationOrderGuard:
    """`ncc.no_reorder()`: the operation-order guard (a context manager)."""
    return OperationOrderGuard()


def apply_loop_directives(directives: object) -> None:
    """A loop's `directives=` (one directive or a list): note each; anything else is an
    error naming it."""
    items = directives if isinstance(directives, list | tuple) else (directives,)
    for d in items:
        if not isinstance(d, MultiBufferDirective | OperationOrderGuard):
            raise KernelUsageError(f"directives=: {d!r} is not an ncc directive (use "
                                   "ncc.multi_buffer(n) or ncc.no_reorder())")
        d.note()


# the Beta-1 names (apply_launch_directives / apply_loop_directives are the launcher's
# and the loops' hooks, not API)
__all__ = ["MultiBufferDirective", "OperationOrderGuard", "enable_stack_allocator",
           "force_auto_alloc", "multi_buffer", "no_reorder", "psum", "sbuf",
           "skip_middle_end_transformations"]
