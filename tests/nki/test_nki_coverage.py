"""The NKI coverage list (tessera/nki/reference_names.yaml) agrees with the code.

(a) every listed name exists where the list says; (b) every public name of a covered module
is listed, as a reference name or a Tessera extra (the rule: `coverage.public_names`);
(c) docs/nki_coverage.md is what `python -m tessera.nki.coverage` writes; (d) every refused
name raises a `KernelUsageError` naming itself, with the listed message, at the caller's
line, and no implemented or accepted name is a refusal placeholder.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tessera.nki import coverage
from tessera.nki.coverage import CoverageStatus, ModuleSection, ReferenceName
from tessera.nki.errors import KernelUsageError
from tessera.nki.refusals import Refused

REF = coverage.load()
SECTIONS = {s.module: s for s in REF.sections}


def _section(entry: ReferenceName) -> ModuleSection:
    return SECTIONS[entry.module]


def _by_status(*statuses: CoverageStatus) -> list[ReferenceName]:
    return [n for n in REF.names() if n.status in statuses]


def test_the_list_covers_every_module_of_the_brief() -> None:
    assert {"nki", "nki.isa", "nki.language", "nki.compiler", "nki.collectives",
            "nki.typing"} <= set(SECTIONS)
    listed = [n.qualname for n in REF.names()]
    assert len(listed) == len(set(listed)), "a name is listed twice"


@pytest.mark.parametrize("section", REF.sections, ids=lambda s: s.module)
def test_every_listed_name_exists(section: ModuleSection) -> None:
    target = coverage.resolve(section.target)
    missing = []
    for entry in section.names:
        try:
            # static lookup: reading a refused field would raise, which is (d)'s business
            inspect.getattr_static(target, entry.name)
        except AttributeError:
            missing.append(entry.name)
    assert not missing, f"listed but missing from {section.target}: {missing}"


@pytest.mark.parametrize("section", [s for s in REF.sections
                                     if inspect.ismodule(coverage.resolve(s.target))],
                         ids=lambda s: s.module)
def test_every_public_name_is_listed(section: ModuleSection) -> None:
    module = coverage.resolve(section.target)
    public = coverage.public_names(module)
    listed = {n.name for n in section.names}
    extras = {e.name for e in section.extras}
    assert not listed & extras, f"both listed and an extra: {sorted(listed & extras)}"
    assert not extras - public, f"stale extras of {section.module}: {sorted(extras - public)}"
    unlisted = public - listed - extras
    assert not unlisted, (f"public names of {section.target} missing from "
                          f"reference_names.yaml: {sorted(unlisted)}")


def test_public_name_rule_skips_submodules_private_names_and_future_imports() -> None:
    import tessera.nki as nki_pkg

    public = coverage.public_names(nki_pkg)
    assert "jit" in public
    assert not {"isa", "language", "annotations"} & public


def test_generated_doc_is_checked_in() -> None:
    expected = coverage.render(REF)
    actual = coverage.DOC_PATH.read_text() if coverage.DOC_PATH.exists() else ""
    assert actual == expected, ("docs/nki_coverage.md is stale: run "
                                "`python -m tessera.nki.coverage`")


def test_generator_writes_the_doc(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cov.md"
    assert coverage.main(["--out", str(out)]) == 0
    assert out.read_text() == coverage.render(REF)
    assert f"{len(REF.names())} names" in capsys.readouterr().out


@pytest.mark.parametrize("entry", _by_status(CoverageStatus.REFUSED),
                         ids=lambda n: n.qualname)
def test_refused_name_raises_naming_itself(entry: ReferenceName) -> None:
    target = coverage.resolve(_section(entry).target)
    with pytest.raises(KernelUsageError) as info:
        use = getattr(target, entry.name)  # a refused field raises on read
        use()  # a refused function, class or constant raises on call
    err = info.value
    assert err.detail == entry.error
    short = entry.error.split(":")[0]
    assert short.split(".")[-1] == entry.name, f"{entry.error!r} does not name {entry.name}"
    assert err.location is not None and err.location.startswith(__file__), err.location


@pytest.mark.parametrize("entry", _by_status(CoverageStatus.IMPLEMENTED,
                                             CoverageStatus.ACCEPTED_NOT_TIMED),
                         ids=lambda n: n.qualname)
def test_implemented_name_is_not_a_placeholder(entry: ReferenceName) -> None:
    value = inspect.getattr_static(coverage.resolve(_section(entry).target), entry.name)
    assert not isinstance(value, Refused), f"{entry.qualname} is listed {entry.status.value}"


def test_list_checks_reject_a_refusal_without_its_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {reference: x}\nmodules:\n  nki:\n    tessera: tessera.nki\n"
                   "    names:\n      - {name: jit, status: refused, reason: r}\n")
    with pytest.raises(ValueError, match="exactly the refused names carry an error"):
        coverage.load(bad)
