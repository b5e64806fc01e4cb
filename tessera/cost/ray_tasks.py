"""Independent calls of one function run as Ray tasks, their results yielded to the caller.

`tessera.cost.batch` sends each missing shape's tuning here when its executor is RAY. The
tasks only compute and return (the parent process writes the cost cache), so the nodes of
a cluster need no shared disk, only the same Tessera installed. `ray` is imported here
lazily, by `tessera.cost.executor.import_ray`, and only when a Ray executor is used.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from tessera.cost.executor import LOCAL_ADDRESS, import_ray
from tessera.cost.fidelity import CostError


def run_tasks(fn: Callable[..., object], calls: Sequence[tuple], address: str,
              workers: int | None) -> Iterator[tuple[int, object]]:
    """Yield (index into `calls`, `fn(*calls[index])`) as each Ray task finishes, with at
    most `workers` tasks in flight (None: all). Ray is initialised at `address` unless this
    process already has a Ray session (then that one is used), and shut down at the end
    only if it was started here. A task's own exception is raised as itself (as the local
    pool does); Ray's failures (a node lost, a worker killed) as a one-line CostError."""
    ray = import_ray()
    with _session(ray, address, workers):
        remote = ray.remote(num_cpus=1)(fn)  # type: ignore[attr-defined]
        limit = workers or len(calls)
        queued = list(reversed(range(len(calls))))  # popped from the end: in order
        pending: dict[object, int] = {}
        while queued or pending:
            while queued and len(pending) < limit:
                index = queued.pop()
                pending[remote.remote(*calls[index])] = index
            ready, _ = ray.wait(list(pending), num_returns=1)  # type: ignore[attr-defined]
            index = pending.pop(ready[0])
            yield index, _result(ray, ready[0])


@contextlib.contextmanager
def _session(ray: object, address: str, workers: int | None) -> Iterator[None]:
    if ray.is_initialized():  # type: ignore[attr-defined]
        yield  # the caller's own session: theirs to shut down
        return
    _init(ray, address, workers)
    try:
        yield
    finally:
        ray.shutdown()  # type: ignore[attr-defined]


def _init(ray: object, address: str, workers: int | None) -> None:
    # Ray's INFO lines and the workers' output would break the CLI's one-line messages;
    # errors come back as exceptions anyway
    options: dict[str, object] = {"address": address, "logging_level": logging.WARNING,
                                  "log_to_driver": False}
    if address == LOCAL_ADDRESS:
        # a private instance: no dashboard (a port and seconds of start-up for nothing);
        # its CPUs are the workers asked for, else Ray counts the machine's
        options |= {"include_dashboard": False, "num_cpus": workers}
    try:
        ray.init(**options)  # type: ignore[attr-defined]
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        raise CostError(f"Ray address {address!r}: {_first_line(err)}") from None
    except SystemExit:
        # Ray exits the process when a GCS address never answers (after minutes);
        # `executor.probe` makes that rare, and here it is a message, not an exit
        raise CostError(f"Ray address {address!r}: no Ray cluster answered there") from None


def _result(ray: object, ref: object) -> object:
    errors = ray.exceptions  # type: ignore[attr-defined]
    try:
        return ray.get(ref)  # type: ignore[attr-defined]
    except errors.RayTaskError as err:
        if isinstance(err.cause, Exception) and not isinstance(err.cause, errors.RayError):
            raise err.cause from None  # what the local pool would raise
        raise CostError(f"a Ray task failed: {_first_line(err.cause)}") from None
    except errors.RayError as err:
        raise CostError(f"Ray: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
