"""Finding and loading presets: by name or alias from `presets/`, or from an explicit file."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tessera.hw.checks import validate
from tessera.hw.core_specs import CoreSpec
from tessera.hw.errors import PresetError, UnknownPresetError
from tessera.hw.parse import SCHEMA_VERSION, Context, SourceRef, parse_spec
from tessera.hw.spec_base import Preset
from tessera.hw.system_specs import ChipSpec, GpuSpec, InstanceSpec

# The chip every layer uses when none is named (kernels, profiles, cost estimates, tuning):
# the current Trainium generation, which the NKI 0.3+ language targets. The kernel language
# also honours the vendor's NEURON_PLATFORM_TARGET_OVERRIDE (`tessera.nki.default_chip`).
DEFAULT_CHIP = "trn2"

PRESET_DIR = Path(__file__).resolve().parent / "presets"
SOURCES_FILE = PRESET_DIR / "_sources.yaml"
KINDS: dict[str, type[Preset]] = {
    "core": CoreSpec,
    "chip": ChipSpec,
    "gpu": GpuSpec,
    "instance": InstanceSpec,
}


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # C parser when built
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)  # same for C and pure loaders


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file strictly; syntax errors become PresetError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PresetError(str(path), "", f"invalid YAML: {exc}") from None
    except OSError as exc:
        raise PresetError(str(path), "", f"cannot read: {exc.strerror}") from None


@dataclass(frozen=True)
class PresetInfo:
    """An entry of the catalogue index (what `list_presets` returns)."""

    kind: str
    name: str
    aliases: tuple[str, ...]
    path: Path


@functools.cache
def source_table() -> Mapping[str, SourceRef]:
    """The shared table of cited documents, keyed by short source keys such as 'A2'."""
    raw = read_yaml(SOURCES_FILE)
    file = str(SOURCES_FILE)
    if not isinstance(raw, Mapping) or set(raw) != {"sources"}:
        raise PresetError(file, "", "expected a single top-level key 'sources'")
    table = {}
    for key, entry in raw["sources"].items():
        if not isinstance(entry, Mapping) or set(entry) != {"title", "url"}:
            raise PresetError(file, f"sources.{key}", "an entry has exactly: title, url")
        table[str(key)] = SourceRef(str(key), str(entry["title"]), str(entry["url"]))
    return table


def normalise(name: str) -> str:
    """Lookup key of a preset name: case and surrounding space do not matter."""
    return name.strip().lower()


def _header(raw: Any, file: str) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise PresetError(file, "", "a preset file is a mapping")
    if raw.get("schema") != SCHEMA_VERSION:
        raise PresetError(file, "schema", f"expected schema: {SCHEMA_VERSION}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise PresetError(file, "kind", f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    name = raw.get("name")
    aliases = raw.get("aliases", [])
    if not isinstance(name, str) or not isinstance(aliases, list):
        raise PresetError(file, "name", "name must be text and aliases a list")
    return kind, name, tuple(str(a) for a in aliases)


@functools.cache
def _index() -> dict[str, dict[str, PresetInfo]]:
    """kind -> lookup key (name or alias) -> PresetInfo, for the built-in presets."""
    index: dict[str, dict[str, PresetInfo]] = {kind: {} for kind in KINDS}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        kind, name, aliases = _header(read_yaml(path), str(path))
        info = PresetInfo(kind, name, aliases, path)
        for key in (name, *aliases):
            other = index[kind].get(normalise(key))
            if other is not None:
                raise PresetError(str(path), "name", f"{key!r} is also used by {other.path.name}")
            index[kind][normalise(key)] = info
    return index


def list_presets(kind: str | None = None) -> list[PresetInfo]:
    """All built-in presets (of one kind, if given), ordered by kind then name."""
    kinds = [kind] if kind else list(KINDS)
    out = []
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown preset kind {k!r}; one of: {', '.join(KINDS)}")
        out.extend({info.name: info for info in _index()[k].values()}.values())
    return sorted(out, key=lambda i: (list(KINDS).index(i.kind), i.name))


def preset_names(kind: str) -> list[str]:
    """Canonical names of the built-in presets of `kind`."""
    return [info.name for info in list_presets(kind)]


def find(name: str, kinds: tuple[str, ...]) -> PresetInfo:
    """The preset called `name` (or with that alias) among `kinds`; UnknownPresetError if none."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown preset kind {k!r}; one of: {', '.join(KINDS)}")
    hits = [_index()[k][normalise(name)] for k in kinds if normalise(name) in _index()[k]]
    if len(hits) == 1:
        return hits[0]
    available = sorted(n for k in kinds for n in preset_names(k))
    label = " or ".join(kinds) if len(kinds) < len(KINDS) else "hardware"
    if not hits:
        raise UnknownPresetError(label, name, available)
    raise UnknownPresetError(label, f"{name} (ambiguous: {[h.kind for h in hits]})", available)


def _resolve(kinds: tuple[str, ...], name: str, ctx: Context, path: str) -> Preset:
    try:
        info = find(name, kinds)
    except UnknownPresetError as exc:
        raise ctx.error(path, str(exc)) from None
    return _load_builtin(info.kind, info.name)


def _build(raw: Any, file: str) -> Preset:
    kind, _, _ = _header(raw, file)
    ctx = Context(file=file, sources=source_table(), resolve=_resolve, classes=KINDS)
    spec = parse_spec(KINDS[kind], raw, ctx, top=True)
    validate(spec, file)
    # `origin` is bookkeeping (where the facts were read), not a fact with a source.
    return dataclasses.replace(spec, origin=file)


@functools.cache
def _load_builtin(kind: str, name: str) -> Preset:
    info = _index()[kind][normalise(name)]
    return _build(read_yaml(info.path), str(info.path))


def load_preset(name: str, kind: str | None = None) -> Preset:
    """Load a built-in preset by name or alias, of any kind or of `kind`."""
    info = find(name, (kind,) if kind else tuple(KINDS))
    return _load_builtin(info.kind, info.name)


def load_core(name: str) -> CoreSpec:
    """A NeuronCore preset: 'nc-v2' (trn1/inf2), 'nc-v3' (trn2), 'nc-v4' (trn3), or an alias."""
    return load_preset(name, "core")  # type: ignore[return-value]


def load_chip(name: str) -> ChipSpec:
    """A Neuron chip preset: 'trn1', 'inf2', 'trn2', 'trn3' (or an alias)."""
    return load_preset(name, "chip")  # type: ignore[return-value]


def load_gpu(name: str) -> GpuSpec:
    """A GPU preset: 'a100-40gb', 'a100-80gb', 'h100-sxm' (or an alias)."""
    return load_preset(name, "gpu")  # type: ignore[return-value]


def load_instance(name: str) -> InstanceSpec:
    """An instance preset such as 'trn1.32xlarge', 'trn2-ultraserver' or 'p5.48xlarge'."""
    return load_preset(name, "instance")  # type: ignore[return-value]


def load_file(path: str | Path) -> Preset:
    """Load a preset from an explicit YAML file (what-if hardware).

    The file follows the built-in format; references such as `core: nc-v2` resolve against
    the built-in catalogue, or may be written inline as a mapping.
    """
    p = Path(path)
    return _build(read_yaml(p), str(p))
