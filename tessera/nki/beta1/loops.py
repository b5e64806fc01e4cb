"""Beta-1 loop iterators: `nl.affine_range`, `nl.sequential_range`, `nl.static_range`.

The Beta-1 pages ("nki.language.affine_range", "sequential_range", "static_range") give
each iterator `(start, stop=None, step=1, *, directives=None)`: an affine range promises
independent iterations (associative reductions such as `psum += ...` allowed), a
sequential one carries a dependency, a static one is unrolled at trace time; a plain
Python `range` in a kernel is treated as a sequential range. Tracing runs every one in
order, which is a valid execution of all three. `directives=` takes the `ncc` loop
directives (`ncc.multi_buffer(n)`, `ncc.no_reorder()`), checked and listed in the
profile notes (`tessera.nki.beta1.compiler.apply_loop_directives`).
"""

from __future__ import annotations

from tessera.nki.beta1.compiler import apply_loop_directives


def _range(args: tuple, directives: object) -> range:
    if directives is not None:
        apply_loop_directives(directives)
    return range(*args)


def affine_range(*args: int, directives: object = None, **kwargs: object) -> range:
    """Loop with independent iterations (runs in order here)."""
    return _range(args, directives)


def sequential_range(*args: int, directives: object = None, **kwargs: object) -> range:
    """Loop with a carried dependency (runs in order)."""
    return _range(args, directives)


def static_range(*args: int, directives: object = None, **kwargs: object) -> range:
    """Loop unrolled at trace time (runs in order)."""
    return _range(args, directives)
