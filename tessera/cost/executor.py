"""Where `estimate_many` tunes the shapes the cost cache lacks: a `BatchExecutor`.

    >>> from tessera.cost.executor import BatchExecutor
    >>> BatchExecutor.local(workers=8)         # 8 forked processes here (the default)
    >>> BatchExecutor.ray("ray://head:10001")  # Ray tasks (pip install 'tessera[ray]')

A Ray address is `local` (start a private Ray instance on this machine), `auto` (the
cluster this machine is a node of), `ray://HOST:PORT` (Ray Client, from outside the
cluster) or `HOST:PORT` (the head's GCS, from a node). Ray is imported only when a Ray
executor is used, so the rest of Tessera never needs it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import Enum

from tessera.cost.fidelity import CostError

RAY_INSTALL_HINT = "pip install 'tessera[ray]'"
RAY_SCHEME = "ray://"
LOCAL_ADDRESS = "local"
# a refused or silent port should fail in seconds: Ray itself waits 30 s (Ray Client) or
# minutes (GCS) and then exits the process
PROBE_TIMEOUT_S = 5.0
_NAMED_ADDRESSES = (LOCAL_ADDRESS, "auto")


class ExecutorKind(Enum):
    """What runs the tuning of a batch's missing shapes."""

    LOCAL = "local"  # worker processes forked on this machine
    RAY = "ray"  # Ray tasks on a cluster (or on a private local Ray instance)


@dataclass(frozen=True)
class BatchExecutor:
    """An executor for `estimate_many` / `tune_missing`.

    `workers`: LOCAL: processes (default the machine's cores; 1 tunes in this process, one
    shape at a time); RAY: at most this many tasks in flight (default all of them: the
    cluster's free CPUs bound them), and the CPUs of a `local` Ray instance.
    `ray_address`: RAY only (see the module docstring).
    """

    kind: ExecutorKind = ExecutorKind.LOCAL
    workers: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise CostError(f"workers={self.workers}: give at least 1")
        if self.kind is ExecutorKind.LOCAL and self.ray_address is not None:
            raise CostError("a ray address is for a RAY executor, not a LOCAL one")
        if self.kind is ExecutorKind.RAY:
            if self.ray_address is None:
                raise CostError("a RAY executor needs an address: local, auto, "
                                "ray://HOST:PORT or HOST:PORT")
            host_port(self.ray_address)  # a malformed address fails here, before any work

    @classmethod
    def local(cls, workers: int | None = None) -> BatchExecutor:
        return cls(ExecutorKind.LOCAL, workers)

    @classmethod
    def ray(cls, address: str = LOCAL_ADDRESS, workers: int | None = None) -> BatchExecutor:
        return cls(ExecutorKind.RAY, workers, address.strip())

    def check(self) -> None:
        """Fail now, with one line, if this executor cannot run: Ray not installed, or
        nothing listening at the address. (A LOCAL executor always can.)"""
        if self.kind is not ExecutorKind.RAY:
            return
        import_ray()
        assert self.ray_address is not None
        probe(self.ray_address)


def resolve_executor(executor: BatchExecutor | None, workers: int | None) -> BatchExecutor:
    """The executor of a call that takes both the older `workers=` and `executor=`."""
    if executor is None:
        # callers have always been allowed workers=0 or less: it meant one process
        return BatchExecutor.local(None if workers is None else max(1, workers))
    if workers is not None:
        raise CostError("give workers= or executor=, not both (BatchExecutor has workers)")
    return executor


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT`; None for `local` and `auto`.
    A CostError for anything else."""
    if address in _NAMED_ADDRESSES:
        return None
    rest = address.removeprefix(RAY_SCHEME)
    host, sep, port = rest.rpartition(":")
    if sep and host and port.isdigit() and 0 < int(port) < 65536 and "/" not in rest:
        return host.strip("[]"), int(port)  # [::1]:10001 is an IPv6 host
    raise CostError(f"Ray address {address!r}: expected local, auto, ray://HOST:PORT or "
                    "HOST:PORT")


def probe(address: str) -> None:
    """A CostError unless something accepts TCP connections at `address` (when it names a
    host and port)."""
    target = host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__  # a timeout has no strerror
        raise CostError(f"Ray address {address!r}: cannot connect ({reason}); is the "
                        "cluster up and the port reachable from here?") from None


def import_ray() -> object:
    """The `ray` module, or a one-line CostError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CostError(f"the Ray executor needs the ray package: {RAY_INSTALL_HINT}"
                        ) from None
    return ray
