"""Beta-1 affine indexing: `nl.arange`, `nl.mgrid`, index expressions and masks.

The Beta-1 pages ("nki.language.arange", "nki.language.mgrid", "NKI programming model":
tile indexing and masking) index tiles and tensors with integer expressions over a
broadcast index space: `nl.arange(128)[:, None]` varies along axis 0 of a 2-D space,
`nl.arange(512)[None, :]` along axis 1, and `i * 128 + i_p` shifts and scales one.
Here an expression is a broadcasting numpy integer array (`IndexExpr`) and a mask is a
broadcasting boolean array (`Mask`) over the same space: comparisons of expressions make
predicates, `&` joins them (the pages' only conjunction), `|` and `~` are accepted too.

Indexing a tensor with expressions gives the strided view whose element at index-space
position `(a0, a1, ...)` is the tensor element the expressions name there. The access must
be affine in every index-space axis (one stride per axis), as the compiler requires; a
non-affine expression (`i_f // 2`) is refused. The view is bounds-checked where it is used,
after any mask has cut it down: a masked-out element may name an index out of range.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from tessera.nki.errors import KernelUsageError, OutOfBoundsError
from tessera.nki.indexing import DynSlice

_INT = np.int64


class IndexExpr:
    """An affine integer index over the broadcast index space (`nl.arange(n)[:, None]`,
    `i * 128 + i_p`): a broadcasting numpy array with arithmetic and comparisons."""

    __slots__ = ("values",)
    __array_ufunc__ = None  # numpy scalars defer to these operators

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=_INT)

    # ---------------------------------------------------------------- shape
    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim

    def __len__(self) -> int:
        return self.values.shape[0] if self.values.ndim else 1

    def __getitem__(self, key: object) -> IndexExpr:
        # `[:, None]` / `[None, :]` place a 1-D range on an axis of the index space
        try:
            return IndexExpr(self.values[key])
        except (IndexError, TypeError) as err:
            raise KernelUsageError(f"bad subscript {key!r} on an index expression of shape "
                                   f"{self.shape}: {err}") from None

    def __repr__(self) -> str:
        return f"IndexExpr(shape={self.shape})"

    # ---------------------------------------------------------------- arithmetic
    def _binary(self, other: object, fn: object, reflected: bool = False) -> IndexExpr:
        rhs = _operand(other)
        if rhs is None:
            return NotImplemented  # type: ignore[return-value]
        a, b = (rhs, self.values) if reflected else (self.values, rhs)
        return IndexExpr(fn(a, b))  # type: ignore[operator]

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
        return IndexExpr(-self.values)

    # ---------------------------------------------------------------- predicates
    def _compare(self, other: object, fn: object) -> Mask:
        rhs = _operand(other)
        if rhs is None:
            return NotImplemented  # type: ignore[return-value]
        # one comparison keeps its affine form `lhs - rhs <cmp> 0` (nisa.affine_select)
        return Mask(fn(self.values, rhs), (self.values - rhs, fn.__name__))  # type: ignore

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


def _operand(other: object) -> np.ndarray | int | None:
    if isinstance(other, IndexExpr):
        return other.values
    if isinstance(other, bool):
        return None
    try:
        return operator.index(other)  # type: ignore[arg-type]
    except TypeError:
        return None


class Mask:
    """A predicate over the index space (`i_p < n`, `(a) & (b)`): a broadcasting bool array."""

    __slots__ = ("values", "affine")
    __array_ufunc__ = None

    def __init__(self, values: np.ndarray,
                 affine: tuple[np.ndarray, str] | None = None) -> None:
        self.values = np.asarray(values, dtype=np.bool_)
        # a single comparison: (lhs - rhs as an int array, "lt"/"le"/"gt"/"ge"/"eq"/"ne")
        self.affine = affine

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def _join(self, other: object, fn: object) -> Mask:
        if isinstance(other, Mask):
            return Mask(fn(self.values, other.values))  # type: ignore[operator]
        if isinstance(other, bool | np.bool_):
            return Mask(fn(self.values, bool(other)))  # type: ignore[operator]
        return NotImplemented  # type: ignore[return-value]

    def __and__(self, o: object) -> Mask:
        return self._join(o, np.logical_and)

    __rand__ = __and__

    def __or__(self, o: object) -> Mask:
        return self._join(o, np.logical_or)

    __ror__ = __or__

    def __invert__(self) -> Mask:
        return Mask(~self.values)

    def __bool__(self) -> bool:
        raise KernelUsageError("a mask is a predicate over the index space, not a Python "
                               "bool: pass it as mask=..., join predicates with &")

    def __repr__(self) -> str:
        return f"Mask(shape={self.shape}, true={int(self.values.sum())})"


def arange(*args: int) -> IndexExpr:
    """`nl.arange([start,] stop[, step])`: a 1-D index range; place it on an axis of the
    index space with `[:, None]` (partition) or `[None, :]` (free)."""
    try:
        values = np.arange(*[operator.index(a) for a in args], dtype=_INT)
    except TypeError:
        raise KernelUsageError(f"nl.arange{args!r}: the bounds must be ints") from None
    return IndexExpr(values)


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
    """`nl.mgrid[0:128, 0:512]`: one dense index expression per axis (numpy's mgrid)."""

    def __getitem__(self, key: object) -> MgridResult:
        keys = key if isinstance(key, tuple) else (key,)
        ranges = []
        for k in keys:
            if not isinstance(k, slice) or k.stop is None:
                raise KernelUsageError(f"nl.mgrid[{key!r}]: each axis is a slice start:stop"
                                       "[:step]")
            ranges.append(np.arange(k.start or 0, k.stop, k.step or 1, dtype=_INT))
        n = len(ranges)
        exprs = []
        for axis, r in enumerate(ranges):
            shape = [1] * n
            shape[axis] = r.size
            full = [len(q) for q in ranges]
            exprs.append(IndexExpr(np.broadcast_to(r.reshape(shape), full)))
        return MgridResult(tuple(exprs))

    def __repr__(self) -> str:
        return "nl.mgrid"


mgrid = _Mgrid()


# --------------------------------------------------------------------- views from keys
def is_expr_key(key: object) -> bool:
    """True when a subscript uses Beta-1 index expressions."""
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, IndexExpr) for k in keys)


def _item_array(k: object, size: int, dim: int, position: int, rank: int) -> np.ndarray:
    """One subscript item as an index array of the index space (ints are scalars; a slice
    or nl.ds is a range on the index-space axis of its position among the non-int items)."""
    if isinstance(k, IndexExpr):
        return k.values
    if isinstance(k, DynSlice | slice):
        if isinstance(k, DynSlice):
            r = np.arange(k.start, k.start + k.size, dtype=_INT)
        else:
            r = np.arange(*k.indices(size), dtype=_INT)
        shape = [1] * rank
        shape[position] = r.size
        return r.reshape(shape)
    try:
        return np.asarray(operator.index(k), dtype=_INT)  # type: ignore[arg-type]
    except TypeError:
        raise KernelUsageError(f"unsupported index {k!r} in dimension {dim}: use ints, "
                               "slices, nl.ds or nl.arange/nl.mgrid expressions") from None


def affine_view(shape: tuple[int, ...], strides: tuple[int, ...], offset: int,
                key: object, name: str) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(offset, shape, strides) of the view `key` names over a tensor, in elements."""
    keys = list(key) if isinstance(key, tuple) else [key]
    if Ellipsis in keys:
        at = keys.index(Ellipsis)
        keys[at:at + 1] = [slice(None)] * (len(shape) - len(keys) + 1)
    if len(keys) > len(shape):
        raise OutOfBoundsError(f"too many indices ({len(keys)}) for {name}{list(shape)}")
    keys += [slice(None)] * (len(shape) - len(keys))
    ranged = [k for k in keys if isinstance(k, slice | DynSlice)]
    rank = max([len(ranged)] + [k.ndim for k in keys if isinstance(k, IndexExpr)])
    arrays = []
    position = 0
    for dim, k in enumerate(keys):
        arrays.append(_item_array(k, shape[dim], dim, position, rank))
        if isinstance(k, slice | DynSlice):
            position += 1
    try:
        space = np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError:
        raise KernelUsageError(f"index expressions of shapes {[a.shape for a in arrays]} on "
                               f"{name} do not broadcast to one index space") from None
    addr = np.zeros(space, dtype=_INT)
    for a, stride in zip(arrays, strides, strict=True):
        addr = addr + a * stride
    base = int(addr.reshape(-1)[0]) if addr.size else 0
    out_strides = []
    for axis, n in enumerate(space):
        if n > 1:
            step = [0] * len(space)
            step[axis] = 1
            out_strides.append(int(addr[tuple(step)]) - base)
        else:
            out_strides.append(0)
    if addr.size:
        grid = np.full(space, base, dtype=_INT)
        for axis, s in enumerate(out_strides):
            if space[axis] > 1:
                idx = np.arange(space[axis], dtype=_INT).reshape(
                    [space[axis] if a == axis else 1 for a in range(len(space))])
                grid = grid + idx * s
        if not np.array_equal(grid, addr):
            raise KernelUsageError(f"index into {name}: the expressions are not affine along "
                                   "each axis of the index space (one stride per axis, e.g. "
                                   "i * 128 + i_p); split the access")
    return offset + base, tuple(int(n) for n in space), tuple(out_strides)

