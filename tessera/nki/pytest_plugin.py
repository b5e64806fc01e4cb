"""Run a third-party NKI test suite against Tessera, without edits: `pytest -p
tessera.nki.pytest_plugin tests/`.

Before any test module is collected, `import nki`, `import nki.language as nl`,
`import nki.isa as nisa`, `nki.collectives` and the Beta-1 paths (`from neuronxcc import
nki`, `neuronxcc.nki.language`, `.isa`, `.typing`, `.compiler`) are made to resolve to
Tessera's modules (`tessera.nki.compat.install(force=True)`: the run asked for Tessera, so
an installed real package is shadowed for its duration). The report header says so in one
line. The plugin is opt-in: it is not registered as an entry point, so pytest runs that do
not name it are unchanged.
"""

from __future__ import annotations

import builtins
import sys

import pytest

from tessera.nki import compat

HEADER = ("tessera: import nki / neuronxcc.nki resolve to Tessera's CPU kernel language "
          "(tessera.nki)")

# the sys.modules entries the install replaced (None: absent), restored when the run ends
_saved: dict[str, object] = {}


def _install() -> None:
    if _saved:
        return
    names = (*compat.MODULES, *compat.LEGACY_MODULES, "neuronxcc")
    _saved.update({name: sys.modules.get(name) for name in names})
    compat.install(force=True)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """Install the aliases before pytest imports the suite's conftest.py files (a vendor
    conftest imports `nki` at module level). Called for `-p` plugins only."""
    _install()


def pytest_configure(config: pytest.Config) -> None:
    """Install the aliases if the plugin was registered too late for the hook above
    (e.g. `pytest.main(plugins=[...])`); configure runs before collection."""
    _install()


def pytest_report_header(config: pytest.Config) -> str:
    return HEADER


def pytest_unconfigure(config: pytest.Config) -> None:
    # an in-process run (pytester, `python -m tessera.nki run` inside a longer session)
    # leaves sys.modules as it found it
    for name, module in _saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module  # type: ignore[assignment]
    if _saved and compat.is_ours(getattr(builtins, compat.BUILTIN, None)):
        delattr(builtins, compat.BUILTIN)  # the kernel tracer's `builtin` global
    _saved.clear()
