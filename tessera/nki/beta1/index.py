"""Beta-1 affine indexing: `nl.arange`, `nl.mgrid`, index expressions and masks.

The Beta-1 pages ("nki.language.arange", "nki.language.mgrid", "NKI programming model":
tile indexing and masking) index tiles and tensors with integer expressions of iterators:
`nl.arange(128)[:, None]` is an iterator over 128 values placed on the partition axis,
`nl.arange(512)[None, :]` one on the free axis, `i_p, i_f = nl.mgrid[0:128, 0:512]` makes
one iterator per axis, and `i * 128 + i_p` shifts and scales one. A subscript names a tile
with one axis per iterator it uses, in the order the subscripts use them (the first is the
partition axis, "nki.language.load"); two subscripts built from different `nl.mgrid` or
`nl.arange` calls are independent axes, and an iterator no subscript uses is no axis.

Here an expression (`IndexExpr`) is an integer numpy array with one named axis per
iterator it depends on; arithmetic aligns operands by iterator, not by array position.
Comparisons make predicates (`Mask`, the same kind of array of booleans); `&` joins them
(the pages' only conjunction), `|` and `~` are accepted too. A mask applied to a tile that
was not indexed with its iterators falls back to positions: the iterator placed on the
partition axis covers axis 0, and so on ("nki.language" masking examples).

Indexing must be affine in every iterator (one stride per tile axis), as the compiler
requires; a non-affine expression (`i_f // 2`) is refused. The view is bounds-checked
where it is used, after any mask has cut it down: a masked-out element may name an index
out of range (the ragged last tile).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass

import numpy as np

from tessera.nki.errors import KernelUsageError

_INT = np.int64
_ids = itertools.count(1)


@dataclass(frozen=True)
class Iterator:
    """One iterator of the index space: its size and where it sits positionally (axis
    `position` of a `rank`-D placement) for masks applied to tiles it did not index."""

    id: int
    size: int
    position: int
    rank: int
    axis: int  # where it was placed (the mgrid axis, the arange's [:, None] slot)


def new_iter(size: int, position: int, rank: int, axis: int | None = None) -> Iterator:
    return Iterator(next(_ids), size, position, rank, position if axis is None else axis)


class _Named:
    """An array with one named axis per iterator (`iters`), broadcasting by name."""

    __slots__ = ("arr", "iters")
    __array_ufunc__ = None  # numpy scalars defer to these operators

    def __init__(self, arr: np.ndarray, iters: tuple[Iterator, ...]) -> None:
        self.arr = arr
        self.iters = iters

    def aligned(self, iters: tuple[Iterator, ...]) -> np.ndarray:
        """The array laid out over `iters` (a superset of this one's), size 1 elsewhere."""
        mine = [it.id for it in self.iters]
        order = [mine.index(it.id) for it in iters if it.id in mine]
        arr = self.arr.transpose(order) if order != list(range(len(mine))) else self.arr
        shape = [it.size if it.id in mine else 1 for it in iters]
        return arr.reshape(shape)

    # ---------------------------------------------------------------- positional face
    @property
    def values(self) -> np.ndarray:
        """The array by position: iterator placed on axis k covers axis k (size-1
        iterators may share a position with another)."""
        rank = max([it.rank for it in self.iters], default=0)
        by_pos: dict[int, Iterator] = {}
        for it in self.iters:
            held = by_pos.get(it.position)
            if held is not None and held.size > 1 and it.size > 1:
                raise KernelUsageError("two iterators of one expression sit on the same axis; "
                                       "index a tile with them instead of using positions")
            if held is None or it.size > 1:
                by_pos[it.position] = it
        layout = [it for it in self.iters if by_pos.get(it.position) is it]
        arr = self.aligned(tuple(layout))
        # iterators that share a position (size 1) are folded away
        arr = arr.reshape([it.size for it in layout])
        shape = [1] * rank
        dims = sorted(range(len(layout)), key=lambda k: layout[k].position)
        arr = arr.transpose(dims) if dims != list(range(len(layout))) else arr
        for k in dims:
            shape[layout[k].position] = layout[k].size
        return arr.reshape(shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _union(*parts: object) -> tuple[Iterator, ...]:
    seen: dict[int, Iterator] = {}
    for p in parts:
        for it in getattr(p, "iters", ()):
            seen.setdefault(it.id, it)
    return tuple(seen.values())


def _operand(other: object, iters: tuple[Iterator, ...]) -> np.ndarray | int | None:
    if isinstance(other, IndexExpr):
        return other.aligned(iters)
    if isinstance(other, bool):
        return None
    try:
        return operator.index(other)  # type: ignore[arg-type]
    except TypeError:
        return None


Linear = tuple[int, dict[int, int]]  # (constant, coefficient per iterator id)


def _lin_add(a: Linear | None, b: Linear | None, sign: int) -> Linear | None:
    if a is None or b is None:
        return None
    coefs = dict(a[1])
    for i, c in b[1].items():
        coefs[i] = coefs.get(i, 0) + sign * c
    return a[0] + sign * b[0], coefs


def _lin_scale(a: Linear | None, k: int) -> Linear | None:
    return None if a is None else (a[0] * k, {i: c * k for i, c in a[1].items()})


class IndexExpr(_Named):
    """An integer index expression of iterators (`i * 128 + i_p`). `lin` is its affine
    form (constant, coefficient per iterator), None when it is not affine (`i_f // 2`)."""

    __slots__ = ("lin",)

    def __init__(self, arr: np.ndarray, iters: tuple[Iterator, ...],
                 lin: Linear | None = None) -> None:
        super().__init__(arr, iters)
        self.lin = lin

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    def __getitem__(self, key: object) -> IndexExpr:
        # `[:, None]` / `[None, :]` place an iterator on an axis: a new axis each time
        keys = key if isinstance(key, tuple) else (key,)
        slots = [k for k in keys if k is not None]
        if (len(self.iters) != 1 or len(slots) != 1 or slots[0] != slice(None)
                or any(k is not None and k != slice(None) for k in keys)):
            raise KernelUsageError(f"bad subscript {key!r} on an index expression: place a "
                                   "1-D nl.arange on an axis with [:, None] or [None, :]")
        old = self.iters[0]
        it = new_iter(old.size, keys.index(slots[0]), len(keys))
        lin = None if self.lin is None else (self.lin[0], {it.id: self.lin[1].get(old.id, 0)})
        return IndexExpr(self.arr, (it,), lin)

    def __repr__(self) -> str:
        return f"IndexExpr(iterators={[it.size for it in self.iters]})"

    def _binary(self, other: object, fn: object, reflected: bool = False) -> IndexExpr:
        iters = _union(self, other)
        rhs = _operand(other, iters)
        if rhs is None:
            return NotImplemented  # type: ignore[return-value]
        lhs = self.aligned(iters)
        a, b = (rhs, lhs) if reflected else (lhs, rhs)
        out = np.asarray(fn(a, b), dtype=_INT)  # type: ignore[operator]
        return IndexExpr(np.broadcast_to(out, [it.size for it in iters]), iters,
                         self._linear(other, fn, reflected))

    def _linear(self, other: object, fn: object, reflected: bool) -> Linear | None:
        """The affine form of `self <fn> other` (None when it is not affine)."""
        mine = self.lin
        theirs: Linear | None
        if isinstance(other, IndexExpr):
            theirs = other.lin
        else:
            theirs = (operator.index(other), {})  # type: ignore[arg-type]
        if fn is operator.add:
            return _lin_add(mine, theirs, 1)
        if fn is operator.sub:
            return _lin_add(theirs, mine, -1) if reflected else _lin_add(mine, theirs, -1)
        if fn is operator.mul and mine is not None and theirs is not None:
            if not theirs[1]:
                return _lin_scale(mine, theirs[0])
            if not mine[1]:
                return _lin_scale(theirs, mine[0])
        return None

    def __add__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.add)

    def __radd__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.add, True)

    def __sub__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.sub)

    def __rsub__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.sub, True)

    def __mul__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.mul)

    def __rmul__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.mul, True)

    def __floordiv__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.floordiv)

    def __mod__(self, o: object) -> IndexExpr:
        return self._binary(o, operator.mod)

    def __neg__(self) -> IndexExpr:
        return IndexExpr(-self.arr, self.iters, _lin_scale(self.lin, -1))

    def _compare(self, other: object, fn: object) -> Mask:
        iters = _union(self, other)
        rhs = _operand(other, iters)
        if rhs is None:
            return NotImplemented  # type: ignore[return-value]
        lhs = self.aligned(iters)
        full = [it.size for it in iters]
        out = np.broadcast_to(fn(lhs, rhs), full)  # type: ignore[operator]
        # one comparison keeps its affine form `lhs - rhs <cmp> 0` (nisa.affine_select)
        diff = IndexExpr(np.broadcast_to(lhs - rhs, full), iters)
        return Mask(out, iters, (diff, fn.__name__))  # type: ignore[attr-defined]

    def __lt__(self, o: object) -> Mask:
        return self._compare(o, operator.lt)

    def __le__(self, o: object) -> Mask:
        return self._compare(o, operator.le)

    def __gt__(self, o: object) -> Mask:
        return self._compare(o, operator.gt)

    def __ge__(self, o: object) -> Mask:
        return self._compare(o, operator.ge)

    def __eq__(self, o: object) -> Mask:  # type: ignore[override]
        return self._compare(o, operator.eq)

    def __ne__(self, o: object) -> Mask:  # type: ignore[override]
        return self._compare(o, operator.ne)

    __hash__ = None  # type: ignore[assignment]


class Mask(_Named):
    """A predicate over iterators (`i_p < n`, `(a) & (b)`)."""

    __slots__ = ("affine",)

    def __init__(self, arr: np.ndarray, iters: tuple[Iterator, ...],
                 affine: tuple[IndexExpr, str] | None = None) -> None:
        super().__init__(np.asarray(arr, dtype=np.bool_), iters)
        # a single comparison: (lhs - rhs, "lt"/"le"/"gt"/"ge"/"eq"/"ne")
        self.affine = affine

    def _join(self, other: object, fn: object) -> Mask:
        if isinstance(other, Mask):
            iters = _union(self, other)
            out = fn(self.aligned(iters), other.aligned(iters))  # type: ignore[operator]
            return Mask(np.broadcast_to(out, [it.size for it in iters]), iters)
        if isinstance(other, bool | np.bool_):
            return Mask(fn(self.arr, bool(other)), self.iters)  # type: ignore[operator]
        return NotImplemented  # type: ignore[return-value]

    def __and__(self, o: object) -> Mask:
        return self._join(o, np.logical_and)

    __rand__ = __and__

    def __or__(self, o: object) -> Mask:
        return self._join(o, np.logical_or)

    __ror__ = __or__

    def __invert__(self) -> Mask:
        return Mask(~self.arr, self.iters)

    def __bool__(self) -> bool:
        raise KernelUsageError("a mask is a predicate over the index space, not a Python "
                               "bool: pass it as mask=..., join predicates with &")

    def over(self, layout: tuple[int | None, ...]) -> np.ndarray | None:
        """The predicate laid out over a tile whose axes are the iterators `layout` (ids;
        None for an axis no iterator names), or None when it uses another iterator."""
        ids = [it.id for it in self.iters]
        if any(i not in layout for i in ids):
            return None
        shape = [1] * len(layout)
        for axis, i in enumerate(layout):
            if i in ids:
                shape[axis] = self.iters[ids.index(i)].size
        order = sorted(range(len(ids)), key=lambda k: layout.index(ids[k]))
        return self.arr.transpose(order).reshape(shape)

    def __repr__(self) -> str:
        return f"Mask(iterators={[it.size for it in self.iters]}, true={int(self.arr.sum())})"


def arange(*args: int) -> IndexExpr:
    """`nl.arange([start,] stop[, step])`: a 1-D iterator; place it on an axis of the
    index space with `[:, None]` (partition) or `[None, :]` (free)."""
    try:
        values = np.arange(*[operator.index(a) for a in args], dtype=_INT)
    except TypeError:
        raise KernelUsageError(f"nl.arange{args!r}: the bounds must be ints") from None
    it = new_iter(values.size, 0, 1)
    step = int(values[1] - values[0]) if values.size > 1 else 1
    start = int(values[0]) if values.size else 0
    return IndexExpr(values, (it,), (start, {it.id: step}))


@dataclass(frozen=True)
class MgridResult:
    """What `nl.mgrid[...]` returns: the per-axis expressions, also reachable as `.p` (axis
    0, the partition axis) and `.x`, `.y`, `.z` (the free axes), and unpackable."""

    exprs: tuple[IndexExpr, ...]

    def __iter__(self):  # noqa: ANN204 - `i_p, i_f = nl.mgrid[...]`
        return iter(self.exprs)

    def __len__(self) -> int:
        return len(self.exprs)

    def __getitem__(self, k: int) -> IndexExpr:
        return self.exprs[k]

    def _axis(self, k: int, name: str) -> IndexExpr:
        if k >= len(self.exprs):
            raise KernelUsageError(f"nl.mgrid with {len(self.exprs)} axes has no .{name}")
        return self.exprs[k]

    @property
    def p(self) -> IndexExpr:
        return self._axis(0, "p")

    @property
    def x(self) -> IndexExpr:
        return self._axis(1, "x")

    @property
    def y(self) -> IndexExpr:
        return self._axis(2, "y")

    @property
    def z(self) -> IndexExpr:
        return self._axis(3, "z")


class _Mgrid:
    """`nl.mgrid[0:128, 0:512]`: one iterator per axis."""

    def __getitem__(self, key: object) -> MgridResult:
        keys = key if isinstance(key, tuple) else (key,)
        ranges = []
        for k in keys:
            if not isinstance(k, slice) or k.stop is None:
                raise KernelUsageError(f"nl.mgrid[{key!r}]: each axis is a slice start:stop"
                                       "[:step]")
            ranges.append(np.arange(k.start or 0, k.stop, k.step or 1, dtype=_INT))
        # positions for masks: size-1 axes take no position of their own (an mgrid axis of
        # size 1 the kernel does not index with is no axis of its tiles)
        exprs, position = [], 0
        rank = max(1, sum(r.size > 1 for r in ranges))
        for axis, r in enumerate(ranges):
            it = new_iter(r.size, position, max(rank, position + 1), axis)
            step = int(r[1] - r[0]) if r.size > 1 else 1
            exprs.append(IndexExpr(r, (it,), (int(r[0]) if r.size else 0, {it.id: step})))
            position += r.size > 1
        return MgridResult(tuple(exprs))

    def __repr__(self) -> str:
        return "nl.mgrid"


mgrid = _Mgrid()
