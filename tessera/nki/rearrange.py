"""`NkiTensor.rearrange`: einops-style view patterns, as zero-copy strided views.

NKI kernels write `t.rearrange(('h0', ('h1', 'bs')), ('h0', 'bs', 'h1'), {'h1': H1})`: a
source pattern naming each dimension of the view (a tuple of names splits that dimension,
row-major, into named axes), a destination pattern ordering the named axes (a tuple of names
merges them into one dimension), and the sizes of split axes that cannot be inferred (at most
one unknown per split). Each pattern may also be written as an einops string,
`'h0 (h1 bs)'`, and both at once as `'h0 (h1 bs) -> h0 bs h1'`.

The result is a view of the same storage: splits always are; a merge is only possible where
the merged axes are laid out one inside the other, otherwise the call fails (no copy is made).
On-chip views keep their partition dimension: the destination must start with the source's
first entry unchanged.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from tessera.nki.errors import KernelUsageError

if TYPE_CHECKING:
    from tessera.nki.tensor import NkiTensor

Entry = str | tuple[str, ...]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def _fail(message: str) -> None:
    raise KernelUsageError(f"NkiTensor.rearrange: {message}")


def _parse_text(text: str) -> tuple[Entry, ...]:
    entries: list[Entry] = []
    group: list[str] | None = None
    for token in re.findall(r"\(|\)|[^\s()]+", text):
        if token == "(":
            if group is not None:
                _fail(f"nested parentheses in {text!r}")
            group = []
        elif token == ")":
            if group is None:
                _fail(f"unbalanced ')' in {text!r}")
            entries.append(tuple(group))
            group = None
        elif group is not None:
            group.append(token)
        else:
            entries.append(token)
    if group is not None:
        _fail(f"unbalanced '(' in {text!r}")
    return tuple(entries)


def _parse(pattern: object, side: str) -> tuple[Entry, ...]:
    if isinstance(pattern, str):
        entries = _parse_text(pattern)
    elif isinstance(pattern, tuple | list):
        entries = tuple(e if isinstance(e, str) else tuple(e) if isinstance(e, tuple | list)
                        else _fail(f"{side} entry {e!r} is not a name or a tuple of names")
                        for e in pattern)  # type: ignore[misc]
    else:
        _fail(f"the {side} pattern must be a tuple or a string, got {pattern!r}")
    for e in entries:
        for name in (e,) if isinstance(e, str) else e:
            if not isinstance(name, str) or not _NAME.match(name):
                _fail(f"{side} axis {name!r} is not an identifier")
        if isinstance(e, tuple) and not e:
            _fail(f"empty group () in the {side} pattern")
    return entries


def _names(entries: tuple[Entry, ...]) -> list[str]:
    return [n for e in entries for n in ((e,) if isinstance(e, str) else e)]


def _split_sizes(entries: tuple[Entry, ...], shape: tuple[int, ...],
                 sizes: dict[str, int]) -> dict[str, int]:
    """Every named axis's size (splits solved from the dimension size and `sizes`)."""
    out: dict[str, int] = {}
    for e, n in zip(entries, shape, strict=True):
        group = (e,) if isinstance(e, str) else e
        unknown = [a for a in group if a not in sizes]
        if isinstance(e, str):
            if e in sizes and sizes[e] != n:
                _fail(f"axis {e!r} has size {n}, not {sizes[e]}")
            out[e] = n
            continue
        known = math.prod(sizes[a] for a in group if a in sizes)
        if len(unknown) > 1:
            _fail(f"cannot infer the sizes of {unknown} in {e}; give all but one in "
                  "the sizes")
        if unknown:
            if known <= 0 or n % known:
                _fail(f"group {e} cannot split a dimension of {n} with sizes {known}")
            out[unknown[0]] = n // known
        elif known != n:
            _fail(f"group {e} has {known} elements but the dimension has {n}")
        for a in group:
            out.setdefault(a, sizes.get(a, 0))
    return out


def rearrange_view(t: NkiTensor, src: object, dst: object = None,
                   fixed_sizes: dict[str, int] | None = None) -> NkiTensor:
    """The view of `t` that the patterns describe (see module docstring)."""
    if isinstance(dst, dict) and fixed_sizes is None:  # t.rearrange('a (b c) -> ...', sizes)
        dst, fixed_sizes = None, dst
    if dst is None:
        if not isinstance(src, str) or "->" not in src:
            _fail("give a source and a destination pattern (or one 'src -> dst' string)")
        src, dst = src.split("->", 1)
    left, right = _parse(src, "source"), _parse(dst, "destination")
    sizes = dict(fixed_sizes or {})
    if any(type(v) is not int or v <= 0 for v in sizes.values()):
        _fail(f"sizes must be positive ints, got {sizes}")
    if len(left) != t.ndim:
        _fail(f"the source pattern names {len(left)} dimensions but the view is "
              f"{t.ndim}-D {list(t.shape)}")
    lnames, rnames = _names(left), _names(right)
    for names, side in ((lnames, "source"), (rnames, "destination")):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            _fail(f"axis {sorted(dup)} repeated in the {side} pattern")
    if set(lnames) != set(rnames):
        _fail(f"the patterns must name the same axes: source {lnames}, destination {rnames}")
    stray = set(sizes) - set(lnames)
    if stray:
        _fail(f"sizes given for axes not in the pattern: {sorted(stray)}")
    if t.storage.buffer.on_chip and left[0] != right[0]:
        _fail(f"on-chip tensor {t.name}: the partition dimension {left[0]!r} must stay the "
              f"first destination entry unchanged, got {right[0]!r}")
    size = _split_sizes(left, t.shape, sizes)
    stride: dict[str, int] = {}
    for e, s in zip(left, t.strides, strict=True):
        inner = s
        for a in reversed((e,) if isinstance(e, str) else e):
            stride[a] = inner
            inner *= size[a]
    shape: list[int] = []
    strides: list[int] = []
    for e in right:
        group = [a for a in ((e,) if isinstance(e, str) else e) if size[a] != 1]
        n = math.prod(size[a] for a in group)
        for outer, inner in zip(group, group[1:], strict=False):
            if stride[outer] != stride[inner] * size[inner]:
                _fail(f"merging {e} needs {outer!r} laid out around {inner!r}; this view "
                      "would need a copy")
        shape.append(n)
        strides.append(stride[group[-1]] if group else 0)
    return t._new(t.offset, tuple(shape), tuple(strides))  # noqa: SLF001 - same package
