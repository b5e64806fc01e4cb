"""How a command ends on an error: one line naming the problem, and exit status 2.

A user's mistake never ends in a traceback. Tessera's own errors (a hardware rule a kernel
breaks, an unknown preset, a capacity overflow, ...) already say what is wrong and where, so
their message is printed as is. An exception raised by the user's own code (a kernel body,
`example_inputs()`, `reference()`) is reported at the user's line:

    error: raises.py:9 in boom: ZeroDivisionError: division by zero

An exception with no user frame is a bug in Tessera and keeps its traceback. `--debug` (on
`tessera` itself) or `TESSERA_DEBUG=1` prints the full traceback in every case.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from typer.exceptions import TyperException

from tessera.cost import CostError
from tessera.hw import HwError
from tessera.kernels.tune import TuneError
from tessera.models.config import ModelConfigError
from tessera.net import NetError
from tessera.nki.errors import NkiError
from tessera.nki.kernel_files import KernelFileError
from tessera.parallel.errors import ParallelError
from tessera.plan.errors import PlanError
from tessera.sim import SimError

USAGE_ERROR = 2  # bad arguments, bad input files, a kernel that breaks a rule
DEBUG_ENV = "TESSERA_DEBUG"
# errors whose message already names the problem (and, for kernels, the file:line)
TESSERA_ERRORS = (NkiError, HwError, SimError, NetError, CostError, KernelFileError, TuneError,
                  PlanError, ModelConfigError, ParallelError)



class CliUsageError(ValueError):
    """A command-line argument the user wrote that cannot be used (its message says how)."""


TESSERA_ERRORS = (*TESSERA_ERRORS, CliUsageError)
_PACKAGE = Path(__file__).resolve().parents[1]
_LIBRARY = tuple(Path(p).resolve() for p in {sysconfig.get_paths()[k] for k in
                                             ("stdlib", "platstdlib", "purelib", "platlib")})
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., object])


def set_debug(on: bool) -> None:
    """Print full tracebacks from now on (the `--debug` option)."""
    _state["debug"] = on


def debug_enabled() -> bool:
    """`--debug` was given, or TESSERA_DEBUG is set to something other than 0."""
    return _state["debug"] or os.environ.get(DEBUG_ENV, "0") not in ("", "0")


def fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr; return the Exit(2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


def _is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    return not any(path.is_relative_to(p) for p in (_PACKAGE, *_LIBRARY))


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the exception's traceback in the user's own code."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if _is_user_file(frame.filename):
            return frame
    return None


def describe(exc: BaseException) -> str | None:
    """The one-line message for `exc`, or None when it is a bug in Tessera."""
    if isinstance(exc, TESSERA_ERRORS):
        return str(exc)
    frame = user_frame(exc)
    if frame is None:
        return None
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}: {detail}"


def guard(command: F) -> F:
    """Wrap a CLI command so that any error ends in one line and exit status 2."""
    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except Exception as exc:  # noqa: BLE001 - every error is reported, none swallowed
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            message = describe(exc)
            if message is None:
                raise  # a bug in Tessera: keep the traceback
            raise fail(message) from None
    return run  # type: ignore[return-value]
