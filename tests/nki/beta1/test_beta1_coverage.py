"""The Beta-1 name list (tessera/nki/beta1/reference_names.yaml) agrees with the code.

The checks of tests/nki/test_nki_coverage.py, on the Beta-1 list and modules: (a) every
listed name exists where the list says; (b) every name of a Beta-1 module's `__all__`
(submodules aside) is listed or a Tessera extra, and every listed name is in `__all__`;
(c) docs/nki_coverage.md holds the rendering of this list; (d) every refused name raises a
`KernelUsageError` naming itself at the caller's line, and no declared accepted name is a
refusal placeholder. The modules are imported as `tessera.nki.beta1.*`, so nothing here
touches `sys.modules["neuronxcc"]`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tessera.nki import coverage
from tessera.nki.beta1 import coverage as b1
from tessera.nki.coverage import CoverageStatus
from tessera.nki.errors import KernelUsageError
from tessera.nki.refusals import Refused

REF = b1.load()
ROWS = [(s, r) for s in REF.sections for r in b1.rows(s)]


def _ids(pair: tuple[b1.Beta1Section, b1.Beta1Row]) -> str:
    return pair[1].entry.qualname


def test_the_list_covers_every_beta1_module() -> None:
    assert [s.module for s in REF.sections] == [
        "neuronxcc.nki", "neuronxcc.nki.language", "neuronxcc.nki.isa", "neuronxcc.nki.typing",
        "neuronxcc.nki.compiler", "neuronxcc.nki.compiler.sbuf", "neuronxcc.nki.compiler.psum"]
    listed = [n.qualname for n in REF.names()]
    assert len(listed) == len(set(listed)), "a name is listed twice"


@pytest.mark.parametrize("section", REF.sections, ids=lambda s: s.module)
def test_every_listed_name_exists(section: b1.Beta1Section) -> None:
    missing = [r.entry.name for r in b1.rows(section) if r.status is None]
    assert not missing, f"listed but missing from {section.target}: {missing}"


@pytest.mark.parametrize("section", REF.sections, ids=lambda s: s.module)
def test_all_of_each_module_is_the_list(section: b1.Beta1Section) -> None:
    try:
        target = coverage.resolve(section.target)
    except (ImportError, AttributeError):
        pytest.fail(f"{section.target} does not exist")
    exported = getattr(target, "__all__", None)
    if exported is None:  # a namespace object (ncc.sbuf): its names are checked above
        assert not inspect.ismodule(target), f"{section.target} has no __all__"
        return
    unbound = [n for n in exported if not hasattr(target, n)]
    assert not unbound, f"{section.target}.__all__ names unbound {unbound}"
    public = {n for n in exported if not inspect.ismodule(getattr(target, n))}
    listed = {n.name for n in section.names}
    extras = {e.name for e in section.extras}
    assert not listed & extras, f"both listed and an extra: {sorted(listed & extras)}"
    assert not extras - public, f"stale extras of {section.module}: {sorted(extras - public)}"
    assert not listed - public, f"listed, not in {section.target}.__all__: " \
        f"{sorted(listed - public)}"
    assert not public - listed - extras, (f"{section.target}.__all__ names missing from "
                                          f"the Beta-1 list: {sorted(public - listed - extras)}")


def test_generated_doc_is_checked_in() -> None:
    expected = coverage.render(coverage.load(), REF)
    actual = coverage.DOC_PATH.read_text() if coverage.DOC_PATH.exists() else ""
    assert "\n".join(b1.render_section(REF)) in actual, (
        "the Beta-1 section of docs/nki_coverage.md is stale: run "
        "`python -m tessera.nki.coverage`")
    assert actual == expected


def test_generator_prints_the_beta1_summary(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert coverage.main(["--out", str(tmp_path / "cov.md")]) == 0
    line = b1.summary_line(REF)
    assert line.startswith(f"Beta 1: {len(REF.names())} names: ")
    assert line in capsys.readouterr().out
    assert f"{line}." in (tmp_path / "cov.md").read_text()


@pytest.mark.parametrize("pair", [p for p in ROWS if p[1].status is CoverageStatus.REFUSED],
                         ids=_ids)
def test_refused_name_raises_naming_itself(pair: tuple[b1.Beta1Section, b1.Beta1Row]) -> None:
    section, row = pair
    target = coverage.resolve(section.target)
    with pytest.raises(KernelUsageError) as info:
        use = getattr(target, row.entry.name)  # a refused field raises on read
        use()  # a refused function, class or constant raises on call
    err = info.value
    assert err.detail == row.error
    short = row.error.split(":")[0]
    assert short.split(".")[-1] == row.entry.name, f"{row.error!r} does not name it"
    assert err.location is not None and err.location.startswith(__file__), err.location


def test_declared_accepted_names_are_not_refusals() -> None:
    wrong = [r.entry.qualname for _, r in ROWS
             if r.entry.accepted_reason and r.status is not CoverageStatus.ACCEPTED_NOT_TIMED]
    assert not wrong, f"listed accepted_not_timed but refused or missing: {wrong}"
    for section, row in ROWS:
        if row.status in (CoverageStatus.IMPLEMENTED, CoverageStatus.ACCEPTED_NOT_TIMED):
            assert not isinstance(b1.lookup(section, row.entry.name), Refused)


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: jit, signature: 'jit()', status: implemented}", "only accepted_not_timed"),
    ("{name: jit, signature: 'jit()', status: accepted_not_timed}", "carry a reason"),
    ("{name: jit, signature: 'jit()', reason: r}", "carry a reason"),
    ("{name: jit}", "needs its signature"),
    ("{name: jit, signature: 'jit()', error: e}", "unknown field"),
])
def test_list_checks_reject_bad_entries(tmp_path: Path, entry: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {nki: x}\nmodules:\n  neuronxcc.nki:\n"
                   "    tessera: tessera.nki.beta1.top\n    source: nki\n"
                   f"    names:\n      - {entry}\n")
    with pytest.raises(ValueError, match=message):
        b1.load(bad)


def test_a_missing_name_renders_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("sources: {nki: x}\nmodules:\n  neuronxcc.nki:\n"
                    "    tessera: tessera.nki.beta1.top\n    source: nki\n    names:\n"
                    "      - {name: jit, signature: 'jit()'}\n"
                    "      - {name: no_such_name, signature: 'f()', source: 'a page'}\n")
    ref = b1.load(path)
    statuses = [r.status for r in b1.rows(ref.sections[0])]
    assert statuses == [CoverageStatus.IMPLEMENTED, None]
    text = "\n".join(b1.render_section(ref))
    assert "| `no_such_name` | **missing** | `f()` | not in the module yet (source: a page) |" \
        in text
    assert b1.summary_line(ref) == "Beta 1: 2 names: 1 implemented, 0 accepted (not timed), " \
        "0 refused, 1 missing"
