"""Run a function on N local ranks, as torchrun would, with a deadline and no orphans.

    from tessera.parallel.launch import spawn
    results = spawn(train, world_size=4, timeout_s=60, args=(config,))

Each rank is a forked process with `OMP_NUM_THREADS=1` (two threads per process on two
cores ran 10-80x slower), `TMPDIR` in the run's own temp folder, and a gloo process group
made through a `file://` rendezvous in it with a timeout, so a peer that dies or hangs turns
into an error in the others instead of a hang. `fn(rank, world_size, *args)` runs with the
default group initialised; it is followed by a barrier (FSDP runs aborted at exit without
one) and `destroy_process_group()`. Its return value (picklable) comes back in rank order.
A rank that raises, dies or outlives the deadline fails the whole run with a
`ParallelError` naming the rank and its error; every other rank is then killed. `fn` runs
under `guard_collectives` (tessera.parallel.watchdog), so a survivor's error names the
collective it was in; after a first failure the others get 2 s to report, then the message
lists dead ranks, hung ones (no report) and their victims, root causes first.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import pickle
import queue
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tessera.parallel.errors import ParallelError

_OK, _FAILED = "ok", "failed"
# after a first failure, how long the other ranks get to report theirs (each rank's
# watchdog waits up to 1 s for its peers) before the silent ones are called hung
_GRACE_S = 2.0


def spawn(fn: Callable[..., object], world_size: int, *, timeout_s: float = 60.0,
          args: Sequence[object] = (), pg_timeout_s: float | None = None,
          workdir: Path | None = None) -> list[object]:
    """`fn(rank, world_size, *args)` on `world_size` forked ranks; their results in rank
    order. `pg_timeout_s` bounds each collective (default: the run's timeout)."""
    if world_size < 1:
        raise ParallelError(f"world_size {world_size}: give 1 or more ranks")
    ctx = mp.get_context("fork")
    reports: mp.Queue = ctx.Queue()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        init = f"file://{Path(tmp) / 'rendezvous'}"
        pg_timeout = pg_timeout_s if pg_timeout_s is not None else timeout_s
        procs = [ctx.Process(target=_rank_main, daemon=True,
                             args=(fn, r, world_size, tuple(args), init, pg_timeout, tmp,
                                   reports))
                 for r in range(world_size)]
        for p in procs:
            p.start()
        try:
            return _collect(procs, reports, world_size, timeout_s)
        finally:
            for p in procs:
                if p.is_alive():  # never leave a rank behind
                    p.kill()
                p.join(5)


def _collect(procs: list, reports: mp.Queue, world_size: int, timeout_s: float) -> list:
    results: dict[int, object] = {}
    failures: dict[int, str] = {}  # rank -> what went wrong, its own report or its death
    died: set[int] = set()
    deadline = time.monotonic() + timeout_s
    first_failure: float | None = None
    while len(results) + len(failures) < world_size:
        now = time.monotonic()
        if first_failure is not None and now > first_failure + _GRACE_S:
            break  # the rest stay silent: hung (or busy), named as such below
        if now > deadline:
            if failures:
                break
            missing = sorted(set(range(world_size)) - set(results))
            raise ParallelError(f"ranks {missing} did not finish within {timeout_s:g} s "
                                "(a hang or a dead peer); all ranks were stopped")
        try:
            rank, status, value = pickle.loads(reports.get(timeout=0.1))
        except queue.Empty:
            for r, p in enumerate(procs):
                if r not in results and r not in failures and not p.is_alive():
                    time.sleep(0.2)  # its report, if any, may still be in the pipe
                    if reports.empty():
                        failures[r] = f"rank {r} died (exit code {p.exitcode})"
                        died.add(r)
                        first_failure = first_failure or time.monotonic()
                    break
            continue
        if status == _FAILED:
            failures[rank] = f"rank {rank} failed: {value}"
            first_failure = first_failure or time.monotonic()
        else:
            results[rank] = value
    if failures:
        raise ParallelError(_summary(failures, died, set(results), world_size))
    return [results[r] for r in range(world_size)]


def _summary(failures: dict[int, str], died: set[int], done: set[int],
             world_size: int) -> str:
    """Root causes first: ranks that died, hung or raised, then collectives' victims."""
    silent = [r for r in range(world_size) if r not in failures and r not in done]
    hung = ([f"{'rank' if len(silent) == 1 else 'ranks'} "
             f"{silent[0] if len(silent) == 1 else silent} hung (no report {_GRACE_S:g} s "
             "after the first failure; killed)"] if silent else [])
    dead = [failures[r] for r in sorted(died)]
    failed = sorted((r for r in failures if r not in died),
                    key=lambda r: (": CollectiveError: " in failures[r], r))
    return "; ".join(dead + hung + [failures[r] for r in failed]) + "; all ranks were stopped"


def _rank_main(fn: Callable[..., object], rank: int, world_size: int, args: tuple,
               init: str, pg_timeout_s: float, tmp: str, reports: mp.Queue) -> None:
    os.environ.update(OMP_NUM_THREADS="1", TMPDIR=tmp, RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world_size))
    import torch
    import torch.distributed as dist

    from tessera.parallel.watchdog import guard_collectives

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=pg_timeout_s))
        with guard_collectives(rank):  # a failed collective names itself and the culprit
            value = fn(rank, world_size, *args)
            dist.barrier()
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        # the innermost line of the caller's code, not of torch or the watchdog; an async
        # collective's error went up through that line before the watchdog re-raised it
        tbs = [exc.__traceback__, getattr(exc.__cause__, "__traceback__", None)]
        frames = [f for tb in tbs for f in traceback.extract_tb(tb)
                  if "/torch/" not in f.filename
                  and not f.filename.endswith(("watchdog.py", "contextlib.py"))]
        where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        _report(reports, (rank, _FAILED, f"{type(exc).__name__}: {exc}{where}"))
        os._exit(1)
    _report(reports, (rank, _OK, value))
    os._exit(0)


def _report(reports: mp.Queue, item: tuple) -> None:
    # plain pickle bytes: torch's multiprocessing pickler would send tensors as shared-memory
    # handles that die with this process. os._exit skips the queue's feeder thread: flush it
    # first or the report is lost.
    reports.put(pickle.dumps(item))
    reports.close()
    reports.join_thread()
