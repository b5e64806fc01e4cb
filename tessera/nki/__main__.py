"""`python -m tessera.nki run [PYTEST_ARGS...]`: run a test suite written for NKI on Tessera.

The `nki` and `neuronxcc.nki` imports of the suite resolve to Tessera (the pytest plugin
`tessera.nki.pytest_plugin`), then pytest runs in this process with the given arguments;
the exit status is pytest's. Bad usage ends in one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: python -m tessera.nki run [PYTEST_ARGS...]

Run pytest with `import nki`, `import nki.language as nl`, `import nki.isa as nisa` and the
Beta-1 `neuronxcc.nki` paths resolving to Tessera's CPU kernel language, so a test suite
written for NKI runs unchanged. PYTEST_ARGS go to pytest as given (test paths, -k, -x, ...);
the same as `pytest -p tessera.nki.pytest_plugin PYTEST_ARGS...`.

commands:
  run        run pytest on PYTEST_ARGS
  -h, --help show this message
"""

PLUGIN = "tessera.nki.pytest_plugin"
USAGE_ERROR = 2


def _fail(message: str) -> int:
    print(f"python -m tessera.nki: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default sys.argv[1:]) and run; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return _fail("a command is required: run [PYTEST_ARGS...] (see -h)")
    command, rest = args[0], args[1:]
    if command in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if command != "run":
        return _fail(f"unknown command {command!r}: the command is run [PYTEST_ARGS...] "
                     "(see -h)")
    try:
        import pytest
    except ImportError:
        return _fail("pytest is not installed (pip install pytest)")
    return int(pytest.main(["-p", PLUGIN, *rest]))


if __name__ == "__main__":
    sys.exit(main())
