"""Name the collective a rank was in when a peer died or hung.

gloo turns a dead peer into `RuntimeError: ... Connection closed by peer [127.0.0.1]:21637`
and a hung one into `Timed out waiting 3000ms for recv operation` (after the process
group's timeout). Neither says which collective, over which ranks, nor which rank is to
blame. Inside `guard_collectives()` the `torch.distributed` collectives are wrapped so such a
failure is re-raised as `CollectiveError` (a `CommError`) with one line:

    rank 0: all_reduce over group ranks [0, 1, 2] failed after 0.04 s: peer died
    (Connection closed by peer [127.0.0.1]:21637.); rank 1 died

    with guard_collectives():
        for batch in loader:
            loss = step(batch)  # dist.all_reduce, FSDP's all-gathers, ...

To blame a rank, each guarded rank publishes `host:pid` in the default group's store; a
rank whose collective fails publishes that too and, for up to `grace_s`, watches its peers:
a peer whose process is gone (same host) "died"; one that reports its own failure is a
victim; one still alive and silent is "silent (hung or busy)". torch hooks do not help here:
`record_comm` only renames profiler events, `CommDebugMode` sees functional collectives and
op launches but not `Work.wait()`, where gloo raises.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch.distributed as dist
from torch.distributed import distributed_c10d as c10d

from tessera.parallel.errors import CommError

# every entry point of torch.distributed that moves data between ranks, but `isend` and
# `irecv`: P2POp and the pipelining schedules compare those by identity (`op is isend`), so a
# wrapper would break P2P ops built outside the guard; `batch_isend_irecv` covers them
COLLECTIVES = (
    "all_reduce", "all_reduce_coalesced", "all_gather", "all_gather_into_tensor",
    "all_gather_coalesced", "all_gather_object", "reduce_scatter", "reduce_scatter_tensor",
    "all_to_all", "all_to_all_single", "broadcast", "broadcast_object_list", "reduce",
    "gather", "gather_object", "scatter", "scatter_object_list", "send", "recv",
    "send_object_list", "recv_object_list", "batch_isend_irecv", "barrier",
    "monitored_barrier",
)

_KEY = "tessera/watchdog"
_DIED = re.compile(r"closed by peer|connection reset|broken pipe|ECONNRESET|EPIPE", re.I)
_TIMED_OUT = re.compile(r"timed out|timeout", re.I)
_PEER_ADDR = re.compile(r"peer \[([^\]]+)\]:(\d+)")
_MAX_LISTED = 16


@dataclass(frozen=True)
class PeerFailure:
    """What one rank saw when a collective failed under `guard_collectives`."""

    rank: int
    collective: str
    group: tuple[int, ...]
    elapsed_s: float
    cause: str  # "peer died", "peer timed out" or "failed" (anything else gloo raised)
    detail: str  # first line of the original error, without gloo's source location
    peer_address: str | None = None  # "host:port" of the closed connection, when shown
    dead: tuple[int, ...] = ()  # peers whose process is gone (checked on this host only)
    silent: tuple[int, ...] = ()  # peers alive that reported no failure: hung or busy
    async_op: bool = False  # failed in `Work.wait()`, after the call had returned

    def message(self) -> str:
        """The one-line description carried by `CollectiveError`."""
        when = "waited on" if self.async_op else "failed"
        text = (f"rank {self.rank}: {self.collective} over group ranks "
                f"{_ranks(self.group)} {when} after {self.elapsed_s:.2f} s: "
                f"{self.cause} ({self.detail})")
        if self.dead:
            text += f"; {_who(self.dead)} died"
        if self.silent:
            text += f"; {_who(self.silent)} silent (alive: hung or busy)"
        return text


class CollectiveError(CommError):
    """A guarded collective failed; `failure` says where and which peers look to blame."""

    def __init__(self, failure: PeerFailure) -> None:
        super().__init__(failure.message())
        self.failure = failure


@dataclass(frozen=True)
class _Call:
    name: str
    group: tuple[int, ...]
    started: float = field(compare=False)


@dataclass
class _Guard:
    """Process-wide state: the patches are global, so they are shared by nested guards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    depth: int = 0
    originals: dict[tuple[object, str], Callable] = field(default_factory=dict)
    settings: list[tuple[int | None, float]] = field(default_factory=list)
    announced: int | None = None  # id() of the default group this process announced to
    last_async: _Call | None = None
    local: threading.local = field(default_factory=threading.local)


_STATE = _Guard()


@contextmanager
def guard_collectives(rank: int | None = None, *, grace_s: float = 1.0) -> Iterator[None]:
    """Re-raise collective failures inside the block as `CollectiveError`.

    `rank` names this process in messages (default: its rank in the default group).
    `grace_s` bounds the wait for peers' reports after a failure. Async collectives fail
    in `Work.wait()`, outside the wrapper: such an error leaving the block is re-raised
    naming the last async collective issued. Guards nest; the innermost settings apply.
    """
    _install(rank, grace_s)
    _announce()
    try:
        yield
    except RuntimeError as exc:
        last = _STATE.last_async
        if isinstance(exc, CollectiveError) or last is None or _cause(str(exc)) == "failed":
            raise
        raise CollectiveError(_diagnose(last, exc, async_op=True)) from exc
    finally:
        _uninstall()


def current_collective() -> tuple[str, tuple[int, ...], float] | None:
    """(name, group ranks, seconds in it) of the guarded collective this thread is in, if
    any; e.g. for a signal handler that dumps where a hung rank is."""
    call = getattr(_STATE.local, "call", None)
    if call is None:
        return None
    return call.name, call.group, time.monotonic() - call.started


def parse_failure(message: str) -> tuple[str, str, str | None]:
    """(cause, detail, peer address) from a gloo/NCCL error message."""
    first = next((line for line in message.splitlines() if line.strip()), "")
    detail = re.sub(r"^\[[^\]]*\]\s*", "", first.strip())  # gloo's "[file.cc:553] "
    detail = detail.split(" This is typically")[0][:200]
    addr = _PEER_ADDR.search(message)
    return _cause(message), detail, f"{addr.group(1)}:{addr.group(2)}" if addr else None


# --- patching -------------------------------------------------------------------------------

def _install(rank: int | None, grace_s: float) -> None:
    with _STATE.lock:
        _STATE.settings.append((rank, grace_s))
        _STATE.depth += 1
        if _STATE.depth > 1:
            return
        # code calls both `dist.all_reduce` and c10d-internal names: patch both modules,
        # with one wrapper per function so that `dist.X is c10d.X` still holds
        wrappers: dict[int, Callable] = {}
        for module in (dist, c10d):
            for name in COLLECTIVES:
                fn = getattr(module, name, None)
                if callable(fn) and not hasattr(fn, "__tessera_guarded__"):
                    _STATE.originals[(module, name)] = fn
                    setattr(module, name, wrappers.setdefault(id(fn), _wrap(name, fn)))


def _uninstall() -> None:
    with _STATE.lock:
        _STATE.settings.pop()
        _STATE.depth -= 1
        if _STATE.depth:
            return
        for (module, name), fn in _STATE.originals.items():
            if getattr(getattr(module, name, None), "__wrapped__", None) is fn:
                setattr(module, name, fn)  # leave alone what someone patched after us
        _STATE.originals.clear()
        _STATE.last_async = None


def _wrap(name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def guarded(*args: object, **kwargs: object) -> object:
        local = _STATE.local
        if getattr(local, "call", None) is not None:  # all_gather_object calls all_gather
            return fn(*args, **kwargs)
        _announce()
        local.call = _Call(name, (), time.monotonic())
        try:
            out = fn(*args, **kwargs)
        except RuntimeError as exc:
            if isinstance(exc, CollectiveError):
                raise
            call = replace(local.call, group=_group_of(name, fn, args, kwargs))
            raise CollectiveError(_diagnose(call, exc, async_op=False)) from exc
        finally:
            started, local.call = local.call.started, None
        if out is not None and name not in ("recv",):  # a Work (or list): wait() comes later
            _STATE.last_async = _Call(name, _group_of(name, fn, args, kwargs), started)
        return out

    guarded.__tessera_guarded__ = True
    return guarded


def _group_of(name: str, fn: Callable, args: tuple, kwargs: dict) -> tuple[int, ...]:
    """Global ranks taking part: the group's, or this rank and the peer for p2p."""
    try:
        me = dist.get_rank()
        if name == "batch_isend_irecv":
            ops = args[0] if args else kwargs.get("p2p_op_list", ())
            return tuple(sorted({me, *(int(op.peer) for op in ops)}))
        bound = _signature(fn).bind_partial(*args, **kwargs).arguments
        group = bound.get("group")
        if name in ("send", "recv", "send_object_list", "recv_object_list"):
            peer = bound.get("dst", bound.get("src"))
            local = bound.get("group_dst", bound.get("group_src"))
            if peer is None and local is not None:
                peer = dist.get_global_rank(group or dist.group.WORLD, local)
            if peer is not None:
                return tuple(sorted({me, int(peer)}))
        return tuple(dist.get_process_group_ranks(group or dist.group.WORLD))
    except Exception:  # the group is already unusable: name the collective anyway
        return ()


@functools.cache
def _signature(fn: Callable) -> object:
    import inspect

    return inspect.signature(fn)


# --- blaming peers --------------------------------------------------------------------------

def _diagnose(call: _Call, exc: BaseException, *, async_op: bool) -> PeerFailure:
    rank, grace_s = _STATE.settings[-1] if _STATE.settings else (None, 1.0)
    if rank is None:
        rank = dist.get_rank() if dist.is_initialized() else -1
    elapsed = time.monotonic() - call.started
    cause, detail, addr = parse_failure(str(exc))
    dead, silent = _peers(rank, call.group, grace_s) if cause != "failed" else ((), ())
    return PeerFailure(rank, call.name, call.group, elapsed, cause, detail, addr, dead, silent,
                       async_op)


def _cause(message: str) -> str:
    if _DIED.search(message):
        return "peer died"
    return "peer timed out" if _TIMED_OUT.search(message) else "failed"


def _store() -> object | None:
    try:
        return c10d._get_default_store() if dist.is_initialized() else None
    except Exception:  # no default group, or a store that is already gone
        return None


def _announce() -> None:
    """Publish this process's host:pid once per default group, for peers to check."""
    world = dist.group.WORLD if dist.is_initialized() else None
    if world is None or _STATE.announced == id(world):
        return
    store = _store()
    if store is None:
        return
    try:
        store.set(f"{_KEY}/pid/{dist.get_rank()}", f"{socket.gethostname()}:{os.getpid()}")
        _STATE.announced = id(world)
    except Exception:  # best effort: without it, messages just blame nobody
        pass


def _peers(rank: int, group: tuple[int, ...], grace_s: float
           ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(dead, silent) peers of `group`, watched for up to `grace_s`."""
    store = _store()
    others = [r for r in group if r != rank]
    if store is None or not others:
        return (), ()
    try:
        store.set(f"{_KEY}/failed/{rank}", "1")
        host = socket.gethostname()
        deadline = time.monotonic() + grace_s
        while True:
            failed = {r for r in others if store.check([f"{_KEY}/failed/{r}"])}
            dead = {r for r in others if r not in failed and _gone(store, r, host)}
            if len(failed) + len(dead) == len(others) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    except Exception:  # the store died with its host rank: no blame rather than a hang
        return (), ()
    return tuple(sorted(dead)), tuple(r for r in others if r not in failed and r not in dead)


def _gone(store: object, rank: int, host: str) -> bool:
    key = f"{_KEY}/pid/{rank}"
    if not store.check([key]):
        return False
    peer_host, _, pid = store.get(key).decode().rpartition(":")
    if peer_host != host:
        return False  # another machine: only its own failure report can clear it
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir():  # Linux: a zombie (dead, not yet reaped) counts as gone
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _ranks(group: tuple[int, ...]) -> str:
    if len(group) <= _MAX_LISTED:
        return str(list(group))
    return f"[{', '.join(map(str, group[:_MAX_LISTED]))}, ... ({len(group)} ranks)]"


def _who(ranks: tuple[int, ...]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {list(ranks)}"
