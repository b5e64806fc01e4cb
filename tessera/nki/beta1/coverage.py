"""Coverage of the NKI Beta-1 API (`neuronxcc.nki`): its checked-in name list and the
Beta-1 section of docs/nki_coverage.md.

`reference_names.yaml` (next to this file) lists every public name of the Beta-1 API, per
module, with where it was read (`sources`: docs-repo path@commit or page) and its documented
signature. Unlike the Beta-2 list (tessera/nki/reference_names.yaml), only what the code
cannot say is declared: `accepted_not_timed` (with a reason) and caveats. The rest is read
from the code when the doc is rendered, so a front-end change shows up by re-running the
generator:

- a `tessera.nki.refusals.Refused` placeholder is **refused** (its reason and message);
- any other object is **implemented** (or accepted, not timed, where declared);
- a name the module lacks is **missing**, which tests/nki/beta1/test_beta1_coverage.py
  fails, as it fails a public name (`__all__`) the list does not hold.

`tessera.nki.coverage.render` appends `render_section(load())` to the Beta-2 doc;
`python -m tessera.nki.coverage` writes both.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import yaml

from tessera.nki.coverage import CoverageStatus, resolve
from tessera.nki.refusals import Refused

LIST_PATH = Path(__file__).with_name("reference_names.yaml")


@dataclass(frozen=True)
class Beta1Name:
    """One name of the Beta-1 API, as the list declares it."""

    module: str  # the Beta-1 module path, e.g. "neuronxcc.nki.language"
    name: str
    signature: str  # the documented parameters, paraphrased
    source: str  # where the name was read (the module's source unless the entry overrides it)
    accepted_reason: str = ""  # set: accepted, not timed (runs, no effect on the timing model)
    note: str = ""  # a caveat

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Beta1Extra:
    """A public name Tessera adds to a Beta-1 module beyond the reference."""

    name: str
    reason: str


@dataclass(frozen=True)
class Beta1Section:
    """The listed names of one Beta-1 module (or namespace) and the Tessera object holding them."""

    module: str
    target: str  # "tessera.nki.beta1.language" or "tessera.nki.beta1.compiler:sbuf"
    source: str  # a key of Beta1List.sources
    names: tuple[Beta1Name, ...]
    extras: tuple[Beta1Extra, ...]


@dataclass(frozen=True)
class Beta1List:
    """The whole checked-in Beta-1 list."""

    sources: tuple[tuple[str, str], ...]  # (source id, citation)
    sections: tuple[Beta1Section, ...]

    def names(self) -> tuple[Beta1Name, ...]:
        return tuple(n for s in self.sections for n in s.names)


@dataclass(frozen=True)
class Beta1Row:
    """A listed name with the status the code gives it (`status` None: missing)."""

    entry: Beta1Name
    status: CoverageStatus | None
    reason: str = ""  # accepted or refused: why
    error: str = ""  # refused: the KernelUsageError message


_ENTRY_KEYS = {"name", "signature", "source", "status", "reason", "note"}


def _entry(module: str, source: str, raw: dict) -> Beta1Name:
    qualname = f"{module}.{raw.get('name')}"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{qualname}: unknown field(s) {sorted(unknown)}")
    status = raw.get("status")
    if status is not None and status != CoverageStatus.ACCEPTED_NOT_TIMED.value:
        # implemented / refused are what the code says; declaring them would go stale
        raise ValueError(f"{qualname}: only accepted_not_timed is declared, got {status!r}")
    if (status is None) == bool(raw.get("reason")):
        raise ValueError(f"{qualname}: exactly the accepted_not_timed names carry a reason")
    if not raw.get("signature"):
        raise ValueError(f"{qualname}: a listed name needs its signature")
    return Beta1Name(module, str(raw["name"]), str(raw["signature"]),
                     str(raw.get("source", source)), str(raw.get("reason", "")),
                     str(raw.get("note", "")))


def load(path: Path = LIST_PATH) -> Beta1List:
    """Read and check the list (unknown fields, undeclarable statuses, a reason without
    `accepted_not_timed` and unknown source keys are errors)."""
    raw = yaml.safe_load(path.read_text())
    sources = {str(k): str(v) for k, v in raw["sources"].items()}
    sections = []
    for module, body in raw["modules"].items():
        if body["source"] not in sources:
            raise ValueError(f"{module}: source {body['source']!r} is not a key of sources")
        names = tuple(_entry(module, sources[body["source"]], e) for e in body["names"])
        extras = tuple(Beta1Extra(str(e["name"]), str(e["reason"]))
                       for e in body.get("extras", ()))
        sections.append(Beta1Section(module, body["tessera"], body["source"], names, extras))
    return Beta1List(tuple(sources.items()), tuple(sections))


def lookup(section: Beta1Section, name: str) -> object:
    """The object `name` is bound to in the section's target, read statically (a refused
    field must not raise here); AttributeError when the target or the name is missing."""
    try:
        target = resolve(section.target)
    except (ImportError, AttributeError) as err:
        raise AttributeError(f"{section.target}: {err}") from None
    return inspect.getattr_static(target, name)


def classify(section: Beta1Section, entry: Beta1Name) -> Beta1Row:
    """The status of one listed name, from the code."""
    try:
        value = lookup(section, entry.name)
    except AttributeError:
        return Beta1Row(entry, None)
    if isinstance(value, Refused):
        return Beta1Row(entry, CoverageStatus.REFUSED, value.reason, value.message)
    if entry.accepted_reason:
        return Beta1Row(entry, CoverageStatus.ACCEPTED_NOT_TIMED, entry.accepted_reason)
    return Beta1Row(entry, CoverageStatus.IMPLEMENTED)


def rows(section: Beta1Section) -> tuple[Beta1Row, ...]:
    return tuple(classify(section, n) for n in section.names)


_STATUS_TEXT = {CoverageStatus.IMPLEMENTED: "implemented",
                CoverageStatus.ACCEPTED_NOT_TIMED: "accepted, not timed",
                CoverageStatus.REFUSED: "**refused**", None: "**missing**"}
_SUMMARY_TEXT = {CoverageStatus.IMPLEMENTED: "implemented",
                 CoverageStatus.ACCEPTED_NOT_TIMED: "accepted (not timed)",
                 CoverageStatus.REFUSED: "refused", None: "missing"}
# summary columns: the three statuses, then missing (a test failure, shown so it is seen)
_COLUMNS = (*CoverageStatus, None)


def counts(section_rows: tuple[Beta1Row, ...]) -> dict[CoverageStatus | None, int]:
    """How many rows have each status (None: missing)."""
    return {s: sum(r.status is s for r in section_rows) for s in _COLUMNS}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(row: Beta1Row, module_source: str) -> str:
    e = row.entry
    if row.status is CoverageStatus.REFUSED:
        detail = f"{row.reason}. Error: `{row.error}`"
    elif row.status is None:
        detail = "not in the module yet"
    else:
        detail = row.reason or e.note
        if row.reason and e.note:
            detail = f"{row.reason}; {e.note}"
    if e.source != module_source:
        detail = f"{detail} (source: {e.source})" if detail else f"source: {e.source}"
    return (f"| `{e.name}` | {_STATUS_TEXT[row.status]} | `{_cell(e.signature)}` | "
            f"{_cell(detail)} |")


def summary_line(ref: Beta1List) -> str:
    """One line of totals, e.g. "Beta 1: 191 names: 150 implemented, ..."."""
    total = counts(tuple(r for s in ref.sections for r in rows(s)))
    parts = [f"{total[s]} {_SUMMARY_TEXT[s]}" for s in _COLUMNS if s is not None or total[None]]
    return f"Beta 1: {len(ref.names())} names: " + ", ".join(parts)


def render_section(ref: Beta1List) -> list[str]:
    """The Beta-1 section of docs/nki_coverage.md, as lines."""
    out = ["", "## Beta 1 (`neuronxcc.nki`)", "",
           "Generated from `tessera/nki/beta1/reference_names.yaml` by the same command. "
           "Every public name of the Beta-1 API (Neuron releases up to 2.26), with what "
           "the Beta-1 front end (`tessera/nki/beta1`, docs/nki_beta1.md) does with it. "
           "The statuses mean what they mean above; implemented and refused are read from "
           "the code, so the lines below change when the front end does.", "",
           f"{summary_line(ref)}.", "", "### Beta-1 sources", ""]
    out += [f"- `{key}`: {text}" for key, text in ref.sources]
    out += ["", "### Beta-1 summary", "",
            "| module | names | implemented | accepted, not timed | refused | missing |",
            "| --- | --- | --- | --- | --- | --- |"]
    all_rows: list[Beta1Row] = []
    for s in ref.sections:
        section_rows = rows(s)
        all_rows += section_rows
        c = counts(section_rows)
        out.append(f"| `{s.module}` | {len(s.names)} | "
                   + " | ".join(str(c[k]) for k in _COLUMNS) + " |")
    c = counts(tuple(all_rows))
    out.append(f"| all | {len(all_rows)} | " + " | ".join(str(c[k]) for k in _COLUMNS) + " |")
    sources = dict(ref.sources)
    for s in ref.sections:
        out += ["", f"### `{s.module}`", "",
                f"Tessera: `{s.target}`. Source: `{s.source}`.", "",
                "| name | status | signature | reason / error / note |",
                "| --- | --- | --- | --- |"]
        out += [_row(r, sources[s.source]) for r in rows(s)]
        if s.extras:
            out += ["", "Tessera additions (not in the Beta-1 reference):", ""]
            out += [f"- `{e.name}`: {e.reason}" for e in s.extras]
    return out
