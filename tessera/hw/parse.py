"""Strict YAML -> frozen dataclass conversion, driven by the dataclass type hints.

The rules (see docs/hw.md):
- A spec is a YAML mapping with exactly the dataclass's fields: unknown or missing keys are
  errors that name the file and the dotted key path.
- `str` and enum fields are plain scalars; nested specs are nested mappings; fields marked
  `REF` take a preset name (or an inline mapping).
- Every other field (numbers, booleans, tuples) is an entry
  `{value: X, unit: U, source: S, status: published|derived|uncertain|unknown, note: N}`;
  `value` and `source` are required, `unit` converts to SI, `unknown` needs value null and a
  note, `uncertain` needs a note and `derived` a formula (`=`) in the source.
- A mapping field (e.g. peak FLOP/s per precision) maps each key to such an entry.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

from tessera.hw.errors import PresetError
from tessera.hw.sourced import FrozenMap, Provenance, Status
from tessera.hw.spec_base import INTERNAL, REF, Preset, Spec
from tessera.hw.units import unit_factor

ENTRY_KEYS = ("value", "unit", "source", "status", "note")
TOP_LEVEL_EXTRA = ("kind", "schema")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SourceRef:
    """One entry of the shared source table (`presets/_sources.yaml`)."""

    key: str
    title: str
    url: str

    def cite(self, detail: str) -> str:
        """Full citation text: title, URL and the section or figure referred to."""
        text = f"{self.title} <{self.url}>"
        return f"{text}, {detail}" if detail else text


Resolver = Callable[[tuple[str, ...], str, "Context", str], Preset]


@dataclass(frozen=True)
class Context:
    """What the parser needs besides the data: file name, source table, preset resolver."""

    file: str
    sources: Mapping[str, SourceRef]
    resolve: Resolver
    classes: Mapping[str, type[Preset]]

    def error(self, path: str, message: str) -> PresetError:
        """A PresetError located at `path` in this file."""
        return PresetError(self.file, path, message)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a spec class (cached: they never change)."""
    return get_type_hints(cls)


def strip_optional(hint: Any) -> tuple[Any, bool]:
    """(`X`, True) for `X | None`, else (hint, False)."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(hint)):
            return args[0], True
    return hint, False


def field_category(hint: Any, field: dataclasses.Field[Any]) -> str:
    """How a field is written in YAML: str, enum, str_tuple, spec, spec_tuple, ref, map, entry."""
    if field.metadata.get(REF):
        return "ref"
    base, _ = strip_optional(hint)
    origin = get_origin(base)
    if base is str:
        return "str"
    if isinstance(base, type) and issubclass(base, Enum):
        return "enum"
    if isinstance(base, type) and issubclass(base, Spec):
        return "spec"
    if origin is tuple:
        elem = get_args(base)[0]
        if elem is str:
            return "str_tuple"
        if isinstance(elem, type) and issubclass(elem, Spec):
            return "spec_tuple"
    if origin is FrozenMap:
        return "map"
    return "entry"


def yaml_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """Dataclass fields that are read from YAML."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get(INTERNAL)]


def _check_keys(
    raw: Any, allowed: list[str], ctx: Context, path: str, extra: tuple[str, ...] = ()
) -> None:
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"expected a mapping, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in allowed and k not in extra]
    if unknown:
        where = _join(path, str(unknown[0]))
        raise ctx.error(where, f"unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    missing = [k for k in allowed if k not in raw]
    if missing:
        raise ctx.error(_join(path, missing[0]), f"missing key {missing[0]!r}")


def _number(value: Any, ctx: Context, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (YAML reads 1e9 as text; write 1.0e+9)" if isinstance(value, str) else ""
        raise ctx.error(path, f"expected a number, got {value!r}{hint}")
    return value


def coerce(hint: Any, value: Any, factor: float, ctx: Context, path: str) -> Any:
    """Convert a YAML value (times the unit factor) to the field's Python type, strictly."""
    base, _ = strip_optional(hint)
    if base is bool:
        if not isinstance(value, bool) or factor != 1:
            raise ctx.error(path, f"expected true or false, got {value!r}")
        return value
    if base is int:
        scaled = _number(value, ctx, path) * factor
        if abs(scaled - round(scaled)) > 1e-6 * max(1.0, abs(scaled)):
            raise ctx.error(path, f"expected a whole number, got {scaled!r}")
        return int(round(scaled))
    if base is float:
        return float(_number(value, ctx, path) * factor)
    if get_origin(base) is tuple:
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {value!r}")
        elem = get_args(base)[0]
        return tuple(coerce(elem, v, factor, ctx, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(base):
        # A small plain record inside an entry value (e.g. a partition start rule).
        names = [f.name for f in dataclasses.fields(base)]
        _check_keys(value, names, ctx, path)
        hints = type_hints(base)
        return base(**{n: coerce(hints[n], value[n], 1, ctx, _join(path, n)) for n in names})
    raise ctx.error(path, f"unsupported field type {base!r}")  # a bug in the spec classes


def parse_entry(name: str, hint: Any, raw: Any, ctx: Context, path: str) -> tuple[Any, Provenance]:
    """Parse one `{value, unit, source, status, note}` entry into (value, provenance)."""
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"expected an entry {{value: ..., source: ...}}, got {raw!r}")
    unknown = [k for k in raw if k not in ENTRY_KEYS]
    if unknown:
        raise ctx.error(
            _join(path, str(unknown[0])),
            f"unknown key {unknown[0]!r}; an entry takes: {', '.join(ENTRY_KEYS)}",
        )
    for required in ("value", "source"):
        if required not in raw:
            raise ctx.error(_join(path, required), f"missing key {required!r}")
    try:
        status = Status(raw.get("status", "published"))
    except ValueError:
        raise ctx.error(_join(path, "status"), f"unknown status {raw['status']!r}") from None
    if status is Status.OVERRIDDEN:
        raise ctx.error(_join(path, "status"), "'overridden' is set by with_overrides only")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ctx.error(_join(path, "note"), "note must be text")
    source = expand_source(raw["source"], ctx, _join(path, "source"))
    cited = str(raw["source"]).strip()
    if status in (Status.UNKNOWN, Status.UNCERTAIN) and not note.strip():
        raise ctx.error(_join(path, "note"), f"a {status.value} value needs a note saying why")
    if status is Status.DERIVED and "=" not in source:
        raise ctx.error(_join(path, "source"), "a derived value needs its formula ('=') in source")
    value = raw["value"]
    _, optional = strip_optional(hint)
    if value is None:
        if status is not Status.UNKNOWN:
            raise ctx.error(_join(path, "value"), "value is null: mark it status: unknown")
        if not optional:
            raise ctx.error(_join(path, "value"), "this field must be known (cannot be null)")
        return None, Provenance(source, status, note, cited)
    if status is Status.UNKNOWN:
        raise ctx.error(_join(path, "value"), "an unknown value must be null")
    factor = 1.0
    if "unit" in raw:
        try:
            factor = unit_factor(name, str(raw["unit"]))
        except ValueError as exc:
            raise ctx.error(_join(path, "unit"), str(exc)) from None
    prov = Provenance(source, status, note, cited)
    return coerce(hint, value, factor, ctx, _join(path, "value")), prov


def expand_source(raw: Any, ctx: Context, path: str) -> str:
    """'[KEY] detail' -> full citation from the source table; other text is kept as is."""
    if not isinstance(raw, str) or not raw.strip():
        raise ctx.error(path, "source must be non-empty text")
    text = raw.strip()
    if text.startswith("["):
        key, sep, detail = text[1:].partition("]")
        if not sep:
            raise ctx.error(path, f"unclosed source key in {text!r}")
        ref = ctx.sources.get(key)
        if ref is None:
            raise ctx.error(path, f"unknown source key [{key}]; see presets/_sources.yaml")
        return ref.cite(detail.strip())
    return text


def _parse_map(name: str, hint: Any, raw: Any, ctx: Context, path: str, prov: dict) -> FrozenMap:
    key_type, value_type = get_args(strip_optional(hint)[0])
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"expected a mapping of entries, got {raw!r}")
    out = {}
    for key, entry in raw.items():
        kpath = _join(path, str(key))
        try:
            k = key_type(key)
        except ValueError:
            allowed = ", ".join(m.value for m in key_type) if issubclass(key_type, Enum) else ""
            raise ctx.error(kpath, f"unknown key {key!r}; allowed keys: {allowed}") from None
        value, p = parse_entry(name, value_type, entry, ctx, kpath)
        if value is None:
            raise ctx.error(kpath, "leave unpublished keys out of a mapping instead of null")
        out[k] = value
        prov[f"{name}.{getattr(k, 'value', k)}"] = p
    return FrozenMap(out)


def parse_spec(cls: type[Spec], raw: Any, ctx: Context, path: str = "", top: bool = False) -> Any:
    """Build `cls` from a YAML mapping, strictly; raises PresetError naming file and key."""
    fields = yaml_fields(cls)
    _check_keys(raw, [f.name for f in fields], ctx, path, TOP_LEVEL_EXTRA if top else ())
    hints = type_hints(cls)
    kwargs: dict[str, Any] = {}
    prov: dict[str, Provenance] = {}
    for f in fields:
        fpath = _join(path, f.name)
        value = raw[f.name]
        hint = hints[f.name]
        cat = field_category(hint, f)
        if cat == "str":
            if not isinstance(value, str):
                raise ctx.error(fpath, f"expected text, got {value!r}")
            kwargs[f.name] = value
        elif cat == "enum":
            enum_type = strip_optional(hint)[0]
            try:
                kwargs[f.name] = enum_type(value)
            except ValueError:
                allowed = ", ".join(m.value for m in enum_type)
                raise ctx.error(fpath, f"unknown value {value!r}; one of: {allowed}") from None
        elif cat == "str_tuple":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ctx.error(fpath, "expected a list of text")
            kwargs[f.name] = tuple(value)
        elif cat == "spec":
            kwargs[f.name] = parse_spec(strip_optional(hint)[0], value, ctx, fpath)
        elif cat == "spec_tuple":
            elem = get_args(hint)[0]
            if not isinstance(value, list):
                raise ctx.error(fpath, "expected a list")
            kwargs[f.name] = tuple(
                parse_spec(elem, v, ctx, f"{fpath}[{i}]") for i, v in enumerate(value)
            )
        elif cat == "ref":
            kwargs[f.name] = _parse_ref(f.metadata[REF], value, ctx, fpath)
        elif cat == "map":
            kwargs[f.name] = _parse_map(f.name, hint, value, ctx, fpath, prov)
        else:
            kwargs[f.name], prov[f.name] = parse_entry(f.name, hint, value, ctx, fpath)
    return cls(**kwargs, sources=FrozenMap(prov))


def _parse_ref(kinds: tuple[str, ...], value: Any, ctx: Context, path: str) -> Preset:
    if isinstance(value, str):
        return ctx.resolve(kinds, value, ctx, path)
    if isinstance(value, Mapping):
        # Inline what-if definition: needs its own `kind` when more than one kind fits.
        kind = value.get("kind", kinds[0] if len(kinds) == 1 else None)
        if kind not in kinds:
            raise ctx.error(_join(path, "kind"), f"inline preset needs kind: one of {kinds}")
        return parse_spec(ctx.classes[kind], value, ctx, path, top=True)
    raise ctx.error(path, f"expected a {' or '.join(kinds)} preset name, got {value!r}")
