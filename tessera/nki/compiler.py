"""`nki.compiler`: compiler hints. They change nothing on the CPU, so each is a no-op."""

from __future__ import annotations

from collections.abc import Callable


def _identity_decorator(fn: Callable | None = None, **_: object) -> object:
    if fn is None:
        return lambda f: f
    return fn


skip_middle_end_transformations = _identity_decorator
enable_stack_allocator = _identity_decorator
no_reorder = _identity_decorator
multi_buffer = _identity_decorator
