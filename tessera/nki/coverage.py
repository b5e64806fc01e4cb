"""Coverage of the NKI API reference: the checked-in name list and docs/nki_coverage.md.

`reference_names.yaml` (next to this file) is the one list of the names of the vendor's NKI
API reference (where each came from is in its `sources`), each with what Tessera does:

- `implemented`: the name exists and does what its page says (a `note` records a caveat);
- `accepted_not_timed`: it runs and gives the documented values where it has any, but it
  has no effect on the timing model (a hint, an annotation, a print); `reason` says which;
- `refused`: a placeholder that raises `KernelUsageError` at the kernel's file:line when
  used; `reason` says why and `error` is the message users get.

Each module section also lists `extras`: public names Tessera adds beyond the reference.
`public_names` states the rule for what counts as a module's public name; the test
tests/nki/test_nki_coverage.py checks the list against the code both ways and that this
module's rendering is what docs/nki_coverage.md holds.

`python -m tessera.nki.coverage [--out PATH]` writes docs/nki_coverage.md, whose last
section covers the Beta-1 API (`neuronxcc.nki`) from its own list
(`tessera.nki.beta1.coverage`, tessera/nki/beta1/reference_names.yaml).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from tessera.nki.beta1.coverage import Beta1List

LIST_PATH = Path(__file__).with_name("reference_names.yaml")
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "nki_coverage.md"


class CoverageStatus(Enum):
    """What Tessera does with one documented name."""

    IMPLEMENTED = "implemented"
    ACCEPTED_NOT_TIMED = "accepted_not_timed"
    REFUSED = "refused"


class NameSource(Enum):
    """Where a listed name is documented."""

    REFERENCE = "reference"  # the current API reference pages and their stubs
    EARLIER = "earlier"  # an earlier release of the reference (Beta 1, NKI 0.2-0.5)
    LIBRARY = "library"  # used by the vendor's kernel library, not on a reference page


@dataclass(frozen=True)
class ReferenceName:
    """One documented name and what Tessera does with it."""

    module: str  # the vendor's module (or class) path, e.g. "nki.isa"
    name: str
    status: CoverageStatus
    source: NameSource = NameSource.REFERENCE
    reason: str = ""  # why it is accepted-not-timed or refused
    error: str = ""  # refused: the message of the KernelUsageError
    note: str = ""  # a caveat of an implemented name

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ExtraName:
    """A public name Tessera adds to a module beyond the reference."""

    module: str
    name: str
    reason: str


@dataclass(frozen=True)
class ModuleSection:
    """The listed names of one vendor module (or class namespace) and its Tessera target."""

    module: str
    target: str  # "tessera.nki.language" or "tessera.nki.language:tile_size"
    names: tuple[ReferenceName, ...]
    extras: tuple[ExtraName, ...]


@dataclass(frozen=True)
class ReferenceList:
    """The whole checked-in list."""

    sources: tuple[tuple[str, str], ...]  # (source id, where its names came from)
    sections: tuple[ModuleSection, ...]

    def names(self) -> tuple[ReferenceName, ...]:
        return tuple(n for s in self.sections for n in s.names)


def _entry(module: str, raw: dict) -> ReferenceName:
    status = CoverageStatus(raw["status"])
    entry = ReferenceName(module, str(raw["name"]), status,
                          NameSource(raw.get("source", NameSource.REFERENCE.value)),
                          raw.get("reason", ""), raw.get("error", ""), raw.get("note", ""))
    if status is not CoverageStatus.IMPLEMENTED and not entry.reason:
        raise ValueError(f"{entry.qualname}: a {status.value} name needs a reason")
    if (status is CoverageStatus.REFUSED) != bool(entry.error):
        raise ValueError(f"{entry.qualname}: exactly the refused names carry an error")
    return entry


def load(path: Path = LIST_PATH) -> ReferenceList:
    """Read and check the list (unknown statuses/sources and missing reasons are errors)."""
    raw = yaml.safe_load(path.read_text())
    sections = []
    for module, body in raw["modules"].items():
        names = tuple(_entry(module, e) for e in body["names"])
        extras = tuple(ExtraName(module, str(e["name"]), e["reason"])
                       for e in body.get("extras", ()))
        sections.append(ModuleSection(module, body["tessera"], names, extras))
    sources = tuple((str(k), str(v)) for k, v in raw["sources"].items())
    return ReferenceList(sources, tuple(sections))


def resolve(target: str) -> object:
    """The Tessera object a section covers: a module, or `module:attribute`."""
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def public_names(module: object) -> set[str]:
    """The public names of a module, by this rule: every name bound in the module's
    namespace that does not start with "_", except submodules (and other module objects,
    such as `np`) and the `from __future__ import annotations` marker. Everything else,
    re-exported helpers included, is public: helpers a module needs but does not offer are
    imported under a private name (`from x import y as _y`)."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not inspect.ismodule(value)
            and type(value).__module__ != "__future__"}


_STATUS_TEXT = {CoverageStatus.IMPLEMENTED: "implemented",
                CoverageStatus.ACCEPTED_NOT_TIMED: "accepted, not timed",
                CoverageStatus.REFUSED: "**refused**"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(n: ReferenceName) -> str:
    detail = n.note if n.status is CoverageStatus.IMPLEMENTED else n.reason
    if n.status is CoverageStatus.REFUSED:
        detail = f"{n.reason}. Error: `{n.error}`"
    source = "" if n.source is NameSource.REFERENCE else n.source.value
    return f"| `{n.name}` | {_STATUS_TEXT[n.status]} | {source} | {_cell(detail)} |"


def _counts(names: tuple[ReferenceName, ...]) -> list[int]:
    return [sum(n.status is s for n in names) for s in CoverageStatus]


def render(ref: ReferenceList, beta1: Beta1List | None = None) -> str:
    """docs/nki_coverage.md for `ref` (deterministic: the test compares it byte for byte),
    followed by the Beta-1 section for `beta1` (default: the checked-in Beta-1 list,
    tessera/nki/beta1/reference_names.yaml; see `tessera.nki.beta1.coverage`)."""
    # imported here: the Beta-1 module builds on this one
    from tessera.nki.beta1 import coverage as beta1_coverage

    out = ["# NKI API coverage", "",
           "Generated by `python -m tessera.nki.coverage` from "
           "`tessera/nki/reference_names.yaml`; do not edit by hand "
           "(`tests/nki/test_nki_coverage.py` fails when the two differ).", "",
           "Every name of the vendor's NKI API reference, with what Tessera does with it:", "",
           "- **implemented**: the name exists and does what its page documents;",
           "- **accepted, not timed**: it runs and gives the documented values where it has "
           "any, but it has no effect on the timing model (a hint, an annotation, a print);",
           "- **refused**: using it raises `KernelUsageError` at the kernel's file:line with "
           "the message shown, so a kernel that only imports it still loads.", "",
           "A source other than the current reference is marked in the source column.", "",
           "## Sources", ""]
    out += [f"- `{key}`: {text}" for key, text in ref.sources]
    out += ["", "## Summary", "",
            "| module | names | implemented | accepted, not timed | refused |",
            "| --- | --- | --- | --- | --- |"]
    for s in ref.sections:
        counts = _counts(s.names)
        out.append(f"| `{s.module}` | {len(s.names)} | " + " | ".join(map(str, counts)) + " |")
    total = _counts(ref.names())
    out.append(f"| all | {len(ref.names())} | " + " | ".join(map(str, total)) + " |")
    for s in ref.sections:
        out += ["", f"## `{s.module}`", "", f"Tessera: `{s.target}`.", "",
                "| name | status | source | reason / error |", "| --- | --- | --- | --- |"]
        out += [_row(n) for n in s.names]
        if s.extras:
            out += ["", "Tessera additions (not in the reference):", ""]
            out += [f"- `{e.name}`: {e.reason}" for e in s.extras]
    out += beta1_coverage.render_section(beta1 or beta1_coverage.load())
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/nki_coverage.md (or `--out PATH`) from the checked-in lists."""
    from tessera.nki.beta1 import coverage as beta1_coverage

    parser = argparse.ArgumentParser(prog="python -m tessera.nki.coverage",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC_PATH, help="where to write")
    args = parser.parse_args(argv)
    text = render(load())
    args.out.write_text(text)
    names = load().names()
    counts = dict(zip((s.value for s in CoverageStatus), _counts(names), strict=True))
    print(f"wrote {args.out}: {len(names)} names, {counts}")
    print(beta1_coverage.summary_line(beta1_coverage.load()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
