"""The compiler's errors: one line naming the problem and where in the user's model."""

from __future__ import annotations


class CompileError(Exception):
    """A model the compiler cannot take: export failed, ops without a lowering, a user
    kernel of the wrong shape, bad arguments."""


class UnsupportedOpsError(CompileError):
    """Ops with no lowering (`fallback="error"`), each with the module path it came from."""

    def __init__(self, ops: list[tuple[str, str]]) -> None:
        self.ops = tuple(ops)
        listing = "; ".join(f"{op} (in {module or 'the top module'})" for op, module in ops)
        super().__init__(f"{len(ops)} op(s) have no lowering to the device: {listing}. "
                         "Pass fallback='host' to run them on the host (reported as host "
                         "ops with their own time), or give a kernel for them")
