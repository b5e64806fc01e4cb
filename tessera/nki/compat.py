"""Make `import nki` (and the older `neuronxcc.nki`) resolve to Tessera's kernel language.

Kernel files written for the real NKI (`import nki`, `import nki.language as nl`,
`import nki.isa as nisa`) or for its Beta-1 layout (`from neuronxcc import nki`,
`import neuronxcc.nki.language as nl`) then run unchanged on the CPU. By default a real
package wins when it is importable; `force=True` installs Tessera's modules regardless.
A whole test suite can be run this way without edits: `pytest -p tessera.nki.pytest_plugin`
or `python -m tessera.nki run` (both force the install).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import sys
import types

# real module name -> tessera module providing it
MODULES: dict[str, str] = {
    "nki": "tessera.nki",
    "nki.language": "tessera.nki.language",
    "nki.isa": "tessera.nki.isa",
    "nki.isa.constants": "tessera.nki.isa.constants",
    "nki.typing": "tessera.nki.typing",
    "nki.compiler": "tessera.nki.compiler",
    "nki.collectives": "tessera.nki.collectives",
    "nki.lnc": "tessera.nki.lnc",
    "nki.dtype": "tessera.nki.dtype",
    "nki.tensor": "tessera.nki.ntensor",
}

# the Beta-1 package path (neuronx-cc's `neuronxcc.nki`): the Beta-1 front end
LEGACY_MODULES: dict[str, str] = {
    "neuronxcc.nki": "tessera.nki.beta1.top",
    "neuronxcc.nki.language": "tessera.nki.beta1.language",
    "neuronxcc.nki.isa": "tessera.nki.beta1.isa",
    "neuronxcc.nki.typing": "tessera.nki.beta1.typing",
    "neuronxcc.nki.compiler": "tessera.nki.beta1.compiler",
}

BUILTIN = "builtin"  # the global the vendor's kernel tracer gives kernel code
# set on the stand-in `neuronxcc` package so that uninstall() knows it is ours
_MARK = "__tessera_alias__"


def is_ours(module: object) -> bool:
    """True for Tessera's modules and the stand-ins compat installs."""
    return getattr(module, "__name__", "").startswith("tessera") or \
        bool(getattr(module, _MARK, False))


def _real_available(top: str) -> bool:
    current = sys.modules.get(top)
    if current is not None:
        return not is_ours(current)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    # a bare folder of that name on sys.path (e.g. a tests/nki directory) is a namespace
    # package with no origin: that is not the real package
    return spec is not None and spec.origin is not None


def _real_nki_available() -> bool:
    return _real_available("nki")


def _install_legacy() -> None:
    package = sys.modules.get("neuronxcc")
    if package is None or not is_ours(package):
        package = types.ModuleType("neuronxcc", "Tessera's stand-in for neuronx-cc: only "
                                   "its `nki` package (tessera.nki) is provided")
        setattr(package, _MARK, True)
        package.__path__ = []  # a package, so `import neuronxcc.nki` looks in sys.modules
        sys.modules["neuronxcc"] = package
    package.nki = importlib.import_module("tessera.nki.beta1.top")  # type: ignore[attr-defined]
    for public, ours in LEGACY_MODULES.items():
        sys.modules[public] = importlib.import_module(ours)


def install(force: bool = False) -> bool:
    """Register Tessera's modules under the `nki` names, and under `neuronxcc.nki` too.

    Each family is left alone when a real package of its top-level name (`nki`,
    `neuronxcc`) is importable and `force` is False. Returns True when Tessera's modules
    are now the ones `import nki` gives, False when the real `nki` was kept.
    """
    if force or not _real_available("neuronxcc"):
        _install_legacy()
    if not force and _real_nki_available():
        return False
    for public, ours in MODULES.items():
        sys.modules[public] = importlib.import_module(ours)
    if not hasattr(builtins, BUILTIN):  # the tracer's global for kernel code (kernel_builtin)
        setattr(builtins, BUILTIN, importlib.import_module("tessera.nki.kernel_builtin"))
    return True


def installed() -> bool:
    """True when `import nki` currently gives Tessera's module."""
    current = sys.modules.get("nki")
    return current is not None and is_ours(current)


def uninstall() -> None:
    """Remove the aliases installed by `install` (real modules are left alone)."""
    for public in (*MODULES, *LEGACY_MODULES, "neuronxcc"):
        mod = sys.modules.get(public)
        if mod is not None and is_ours(mod):
            del sys.modules[public]
    if is_ours(getattr(builtins, BUILTIN, None)):
        delattr(builtins, BUILTIN)
