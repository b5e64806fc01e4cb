"""Beta-1 kernels and their SPMD launch grids.

The Beta-1 pages ("SPMD programming model", "nki.language.program_id", "num_programs",
"program_ndim", "nki.language.nc", "nki.language.spmd_dim") launch a kernel over an N-D
grid, `kernel[4, 2](a)`: every instance runs the same body and tells itself apart with
`nl.program_id(axis)`; all instances write the launch's `shared_hbm` output. Without core
annotations the grid runs on one NeuronCore, one instance after another. `nl.nc(n)` as a
grid dimension spreads it over n physical cores (instance k of that dimension on core k),
and `nl.spmd_dim(nl.nc(2), 2)` makes a dimension of 4 whose outer factor picks the core:
each core runs its instances in order.

Here the instances of a core are traced in grid order into that core's stream, each
starting after the previous one ends (a runtime edge from every engine's last instruction
of one instance to every engine's first of the next), and the k-th `shared_hbm` tensor of
every instance is one tensor.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass

from tessera.nki import runtime as _runtime
from tessera.nki.beta1.compiler import apply_launch_directives
from tessera.nki.errors import KernelUsageError
from tessera.nki.launch import Kernel
from tessera.nki.runtime import CoreContext, KernelRun, maybe_current


@dataclass(frozen=True)
class nc:  # noqa: N801 - NKI's spelling
    """`nl.nc(n)`: a launch-grid dimension of n instances, one per physical NeuronCore;
    `nl.nc(2) * 2` is `nl.spmd_dim(nl.nc(2), 2)` and `2 * nl.nc(2)` is
    `nl.spmd_dim(2, nl.nc(2))` (the pages' shorthand)."""

    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise KernelUsageError(f"nl.nc({self.size!r}): the core count must be a positive "
                                   "int")

    def __mul__(self, other: object) -> spmd_dim:
        return spmd_dim(self, other)

    def __rmul__(self, other: object) -> spmd_dim:
        return spmd_dim(other, self)


@dataclass(frozen=True)
class spmd_dim:  # noqa: N801 - NKI's spelling
    """`nl.spmd_dim(*factors)`: one grid dimension of the factors' product; an `nl.nc(n)`
    factor spreads it over n cores (row-major: the first factor varies slowest)."""

    factors: tuple[object, ...]

    def __init__(self, *factors: object) -> None:
        if not factors:
            raise KernelUsageError("nl.spmd_dim needs at least one factor")
        for f in factors:
            if not isinstance(f, nc) and not _is_size(f):
                raise KernelUsageError(f"nl.spmd_dim factor {f!r}: use ints and nl.nc(n)")
        object.__setattr__(self, "factors", tuple(factors))

    @property
    def size(self) -> int:
        return math.prod(f.size if isinstance(f, nc) else int(f) for f in self.factors)


def _is_size(x: object) -> bool:
    try:
        return operator.index(x) >= 1 and not isinstance(x, bool)  # type: ignore[arg-type]
    except TypeError:
        return False


@dataclass(frozen=True)
class Grid:
    """A launch grid: per dimension its size and how its index maps to a core."""

    dims: tuple[object, ...]  # ints, nc or spmd_dim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(d.size if isinstance(d, nc | spmd_dim) else int(d) for d in self.dims)

    @property
    def cores(self) -> int:
        n = 1
        for d in self.dims:
            for f in (d.factors if isinstance(d, spmd_dim) else (d,)):
                if isinstance(f, nc):
                    n *= f.size
        return n

    def core_of(self, index: tuple[int, ...]) -> int:
        """The physical core (of `cores`) instance `index` runs on."""
        core = 0
        for d, i in zip(self.dims, index, strict=True):
            factors = d.factors if isinstance(d, spmd_dim) else (d,)
            sizes = [f.size if isinstance(f, nc) else int(f) for f in factors]
            digits = []
            for s in reversed(sizes):
                digits.append(i % s)
                i //= s
            digits.reverse()
            for f, digit in zip(factors, digits, strict=True):
                if isinstance(f, nc):
                    core = core * f.size + digit
        return core

    def instances(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*[range(n) for n in self.shape]))


def make_grid(key: object) -> Grid:
    """The grid of `kernel[key]`."""
    dims = key if isinstance(key, tuple) else (key,)
    if not dims:
        raise KernelUsageError("kernel[()]: a launch grid needs at least one dimension")
    for d in dims:
        if not isinstance(d, nc | spmd_dim) and not _is_size(d):
            raise KernelUsageError(f"kernel[{key!r}]: each grid dimension is a positive int, "
                                   "nl.nc(n) or nl.spmd_dim(...)")
    return Grid(tuple(d if isinstance(d, nc | spmd_dim) else operator.index(d) for d in dims))


class Beta1Kernel(Kernel):
    """A `neuronxcc.nki.jit` kernel: `kernel[g0, g1, ...]` launches an SPMD grid."""

    write_back = True  # output arrays passed as arguments receive the kernel's writes

    def __init__(self, fn: object, grid: Grid | None = None, mode: str = "auto",
                 **kwargs: object) -> None:
        self.grid = grid or Grid((1,))
        self.mode = mode
        super().__init__(fn, self.grid.cores, **kwargs)  # type: ignore[arg-type]

    def __getitem__(self, key: object) -> Beta1Kernel:
        return Beta1Kernel(self.fn, make_grid(key), self.mode,
                           compile_config=self.compile_config, schedule=self.schedule)

    def __call__(self, *args: object, **kwargs: object) -> object:
        if maybe_current() is not None:
            # a kernel called from inside a running kernel (the samples' `mode="trace"`
            # helpers) is a sub-function: its instructions join the caller's stream
            return self.fn(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def with_schedule(self, pairs: object, kind: object = None) -> Beta1Kernel:
        plain = super().with_schedule(pairs, kind)  # type: ignore[arg-type]
        return Beta1Kernel(self.fn, self.grid, self.mode, compile_config=self.compile_config,
                           schedule=plain.schedule)

    def __repr__(self) -> str:
        return f"neuronxcc.nki.jit({self.fn.__qualname__}){list(self.grid.shape)}"

    def prepare(self, run: KernelRun) -> None:
        apply_launch_directives(self.fn, run)  # the ncc decorators' checks and notes
        run.beta1 = True
        run.grid_instances = math.prod(self.grid.shape)
        run.grid_shape = self.grid.shape

    def run_core(self, ctx: CoreContext, args: tuple, kwargs: dict) -> object:
        result = None
        starts: list[int] = []
        with _runtime.lock_beta1():
            for index in self.grid.instances():
                if self.grid.core_of(index) != ctx.core_id:
                    continue
                ctx.grid_index = index
                ctx.shared_count = 0  # the k-th shared_hbm tensor of each instance is one
                starts.append(len(ctx.stream))
                out = self.fn(*args, **kwargs)
                if result is None:
                    result = out
        ctx.edges += _serial_edges(ctx, starts)
        return result


def _serial_edges(ctx: CoreContext, starts: list[int]) -> list[tuple[int, int, str]]:
    """Runtime edges making each instance start after the previous one ends."""
    bounds = [*starts, len(ctx.stream)]
    edges: list[tuple[int, int, str]] = []
    for k in range(1, len(starts)):
        prev = range(bounds[k - 1], bounds[k])
        nxt = range(bounds[k], bounds[k + 1])
        last: dict[object, int] = {}
        for i in prev:
            last[ctx.stream[i].engine] = i
        first: dict[object, int] = {}
        for i in nxt:
            first.setdefault(ctx.stream[i].engine, i)
        edges += [(c, p, "runtime") for c in first.values() for p in last.values()]
    return edges


# --------------------------------------------------------------------- nl grid queries
def program_id(axis: int) -> int:
    """`nl.program_id(axis)`: this instance's index along grid axis `axis`."""
    ctx = maybe_current()
    if ctx is None:
        raise KernelUsageError("nl.program_id must be called inside a kernel")
    index = ctx.grid_index or (0,)
    try:
        a = operator.index(axis)
    except TypeError:
        raise KernelUsageError(f"nl.program_id({axis!r}): the axis is an int") from None
    if not -len(index) <= a < len(index):
        raise KernelUsageError(f"nl.program_id({axis}): the launch grid has {len(index)} "
                               "axis/axes")
    return index[a]


def _grid_shape() -> tuple[int, ...]:
    ctx = maybe_current()
    if ctx is None:
        raise KernelUsageError("nl.num_programs / nl.program_ndim must be called inside a "
                               "kernel")
    return getattr(ctx.run, "grid_shape", (1,))


def num_programs(axes: object = None) -> int:
    """`nl.num_programs(axes=None)`: instances along `axes` (an int or a tuple), or in the
    whole grid."""
    shape = _grid_shape()
    if axes is None:
        return math.prod(shape)
    picked = axes if isinstance(axes, tuple | list) else (axes,)
    try:
        return math.prod(shape[operator.index(a)] for a in picked)
    except (IndexError, TypeError):
        raise KernelUsageError(f"nl.num_programs({axes!r}): the launch grid has "
                               f"{len(shape)} axis/axes") from None


def program_ndim() -> int:
    """`nl.program_ndim()`: the number of launch-grid axes."""
    return len(_grid_shape())
