"""Make `import nki` resolve to Tessera's kernel language.

Kernel files written for the real NKI (`import nki`, `import nki.language as nl`,
`import nki.isa as nisa`) then run unchanged on the CPU. By default the real package wins
when it is importable; `force=True` installs Tessera's modules regardless.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# real module name -> tessera module providing it
MODULES: dict[str, str] = {
    "nki": "tessera.nki",
    "nki.language": "tessera.nki.language",
    "nki.isa": "tessera.nki.isa",
    "nki.isa.constants": "tessera.nki.isa.constants",
    "nki.typing": "tessera.nki.typing",
    "nki.compiler": "tessera.nki.compiler",
    "nki.collectives": "tessera.nki.collectives",
    "nki.dtype": "tessera.nki.dtype",
    "nki.tensor": "tessera.nki.tensor",
}


def _real_nki_available() -> bool:
    current = sys.modules.get("nki")
    if current is not None:
        return not getattr(current, "__name__", "").startswith("tessera")
    try:
        spec = importlib.util.find_spec("nki")
    except (ImportError, ValueError):
        return False
    # a bare folder named nki on sys.path (e.g. a tests/nki directory) is a namespace package
    # with no origin: that is not the real NKI
    return spec is not None and spec.origin is not None


def install(force: bool = False) -> bool:
    """Register Tessera's modules under the `nki` names.

    Returns True when Tessera's modules are now the ones `import nki` gives, False when a
    real `nki` package is importable and `force` is False (it is then left alone).
    """
    if not force and _real_nki_available():
        return False
    for public, ours in MODULES.items():
        sys.modules[public] = importlib.import_module(ours)
    return True


def uninstall() -> None:
    """Remove the `nki` aliases installed by `install` (real modules are left alone)."""
    for public in MODULES:
        mod = sys.modules.get(public)
        if mod is not None and mod.__name__.startswith("tessera"):
            del sys.modules[public]
