"""What-if hardware: replace fields of a frozen spec by dotted path.

`with_overrides(chip, {"core.sbuf.bytes_per_partition": 262144})` returns a new spec (via
`dataclasses.replace`, all the way up the path); the overridden field's provenance becomes
status `overridden`, so reports show which numbers are not the published ones. Values may be
Python values or text as typed on a command line ("2.4 GHz", "true", "unknown").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar, get_args

from tessera.hw.checks import validate
from tessera.hw.errors import OverrideError, PresetError
from tessera.hw.parse import (
    Context,
    coerce,
    field_category,
    strip_optional,
    type_hints,
    yaml_fields,
)
from tessera.hw.sourced import Provenance, Status
from tessera.hw.spec_base import Preset, Spec
from tessera.hw.units import parse_quantity

S = TypeVar("S", bound=Spec)

_UNKNOWN_WORDS = ("unknown", "none", "null")


def _no_resolve(*_: Any) -> Preset:
    raise OverrideError("references cannot be overridden")


def _context(path: str) -> Context:
    return Context(file=f"<override {path}>", sources={}, resolve=_no_resolve, classes={})


def _convert(name: str, hint: Any, value: Any, full: str) -> Any:
    """Turn an override value (Python or command-line text) into the field's type."""
    base, optional = strip_optional(hint)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _UNKNOWN_WORDS:
            if not optional:
                raise OverrideError(f"{full}: this field must be known")
            return None
        if base is bool:
            if text.lower() not in ("true", "false"):
                raise OverrideError(f"{full}: expected true or false, got {value!r}")
            return text.lower() == "true"
        if base in (int, float):
            try:
                value = parse_quantity(name, text)
            except ValueError as exc:
                raise OverrideError(f"{full}: {exc}") from None
        elif base is not str:
            value = [parse_quantity(name, t) for t in text.split(",")]
    if value is None:
        if not optional:
            raise OverrideError(f"{full}: this field must be known")
        return None
    try:
        return coerce(base, value, 1, _context(full), "")
    except PresetError as exc:
        raise OverrideError(f"{full}: {exc.detail}") from None


def _apply(spec: Spec, parts: list[str], value: Any, full: str) -> Spec:
    head, rest = parts[0], parts[1:]
    fields = {f.name: f for f in yaml_fields(type(spec))}
    if head not in fields:
        raise OverrideError(
            f"{full}: {type(spec).__name__} has no field {head!r}; fields: {', '.join(fields)}"
        )
    f = fields[head]
    hint = type_hints(type(spec))[head]
    cat = field_category(hint, f)
    current = getattr(spec, head)
    sources = spec.sources
    prov = Provenance(f"override {full}={value!r}", Status.OVERRIDDEN)
    if cat in ("spec", "ref"):
        if not rest:
            names = ", ".join(current.field_names())
            raise OverrideError(f"{full}: is a group; name one of its fields: {names}")
        new: Any = _apply(current, rest, value, full)
    elif rest and cat != "map":
        raise OverrideError(f"{full}: {head!r} has no sub-fields")
    elif cat == "map":
        key_type, value_type = get_args(hint)
        if len(rest) != 1:
            keys = ", ".join(getattr(k, "value", k) for k in current)
            raise OverrideError(f"{full}: name one key of {head!r} (e.g. {head}.bf16); has {keys}")
        try:
            key = key_type(rest[0])
        except ValueError:
            raise OverrideError(f"{full}: {rest[0]!r} is not a valid key of {head!r}") from None
        converted = _convert(head, value_type, value, full)
        if converted is None:
            raise OverrideError(f"{full}: mapping entries cannot be unknown")
        new = current.replace(key, converted)
        sources = sources.replace(f"{head}.{getattr(key, 'value', key)}", prov)
    elif cat == "enum":
        enum_type: type[Enum] = strip_optional(hint)[0]
        try:
            new = enum_type(value)
        except ValueError:
            raise OverrideError(f"{full}: {value!r} is not one of "
                                f"{[m.value for m in enum_type]}") from None
    elif cat == "str":
        new = str(value)
    elif cat == "entry":
        new = _convert(head, hint, value, full)
        sources = sources.replace(head, prov)
    else:
        raise OverrideError(f"{full}: {cat} fields cannot be overridden")
    return dataclasses.replace(spec, **{head: new}, sources=sources)


def with_overrides(spec: S, overrides: Mapping[str, Any]) -> S:
    """A copy of `spec` with fields replaced by dotted path, checked for consistency.

    Raises OverrideError for a path that names no field or a value of the wrong type, and
    PresetError if the result is structurally impossible (e.g. PSUM banks x bank bytes no
    longer equals bytes per partition). Published-figure checks do not apply to what-if specs.
    """
    out: Spec = spec
    for path, value in overrides.items():
        parts = path.split(".")
        if not all(parts):
            raise OverrideError(f"{path!r}: empty path component")
        out = _apply(out, parts, value, path)
    label = getattr(spec, "name", type(spec).__name__)
    validate(out, f"<override of {label}>", published=False)
    return out  # type: ignore[return-value]
