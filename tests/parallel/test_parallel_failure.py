"""Failure handling: a rank that dies or hangs ends the run within the timeout, with errors
naming the rank and the collective, and leaves no process behind (spawn and torchrun).

Ranks record their pid in `tmp_path`, so the tests can check that every one of them is gone
afterwards, not only the launcher's direct children.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tessera.parallel.errors import CommError, ParallelError
from tessera.parallel.launch import spawn
from tessera.parallel.watchdog import (
    CollectiveError,
    current_collective,
    guard_collectives,
    parse_failure,
)

PG_TIMEOUT_S = 3.0  # each collective's deadline: how long a survivor waits for a hung peer
RUN_TIMEOUT_S = 20.0  # the whole spawn run's deadline
MARGIN_S = 5.0  # watchdog grace (1 s) + spawn's report grace (2 s) + start-up


# --- helpers --------------------------------------------------------------------------------

def _children() -> set[int]:
    """Pids whose parent is this process (zombies included: they were not reaped)."""
    me, found = str(os.getpid()), set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if any(line.split() == ["PPid:", me] for line in lines):
            found.add(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def no_orphans(tmp_path: Path) -> Iterator[Path]:
    """A folder for ranks' pid files; afterwards every rank and new child must be gone."""
    before = _children()
    pids = tmp_path / "pids"
    pids.mkdir()
    yield pids
    ranks = [int(f.read_text()) for f in pids.glob("*.pid")]
    assert ranks, "no rank recorded its pid"
    assert _wait_gone(ranks) == [], "ranks outlived the run"
    deadline = time.monotonic() + 5.0
    while (extra := _children() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra, f"child processes left behind: {sorted(extra)}"


def _record_pid(folder: Path, rank: int) -> None:
    (folder / f"rank{rank}.pid").write_text(str(os.getpid()))


# --- workers (module level: forked ranks run them) ------------------------------------------

def _die_mid_loop(rank: int, world: int, pids: Path, how: str) -> None:
    _record_pid(pids, rank)
    t = torch.ones(256)
    for step in range(1000):
        if rank == 1 and step == 5:
            if how == "exit":
                os._exit(1)
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(t)


def _hang_before_collective(rank: int, world: int, pids: Path) -> None:
    _record_pid(pids, rank)
    t = torch.ones(256)
    start = time.monotonic()
    try:
        for step in range(1000):
            if rank == 1 and step == 3:
                time.sleep(1000)
            start = time.monotonic()
            dist.all_reduce(t)
    except CommError as exc:
        f = exc.failure if isinstance(exc, CollectiveError) else None
        (pids.parent / f"rank{rank}.json").write_text(json.dumps({
            "elapsed": time.monotonic() - start, "message": str(exc),
            "collective": f and f.collective, "group": f and list(f.group),
            "cause": f and f.cause, "silent": f and list(f.silent)}))
        raise


def _async_from_dying_peer(rank: int, world: int, pids: Path) -> None:
    _record_pid(pids, rank)
    buf = torch.zeros(4)
    if rank == 1:
        os._exit(1)
    ops = [dist.P2POp(dist.irecv, buf, 1)]  # built inside the guard: P2POp checks `irecv`
    dist.batch_isend_irecv(ops)[0].wait()  # gloo raises in wait(), after the call returned


# --- spawn ----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_rank_dying_mid_step_fails_the_run_naming_it_and_the_collective(
        no_orphans: Path, how: str) -> None:
    start = time.monotonic()
    with pytest.raises(ParallelError) as info:
        spawn(_die_mid_loop, 3, timeout_s=RUN_TIMEOUT_S, pg_timeout_s=PG_TIMEOUT_S,
              args=(no_orphans, how))
    elapsed = time.monotonic() - start
    msg = str(info.value)
    assert elapsed < PG_TIMEOUT_S + MARGIN_S, msg
    code = 1 if how == "exit" else -signal.SIGKILL
    assert msg.startswith(f"rank 1 died (exit code {code})"), msg
    # the survivors' reports: the collective, its group, and rank 1 blamed
    assert "rank 0 failed: CollectiveError: rank 0: all_reduce over group ranks [0, 1, 2]" \
        in msg, msg
    assert "peer died" in msg and "; rank 1 died" in msg, msg
    assert "_die_mid_loop" not in msg and "test_parallel_failure.py" in msg  # the user's line


def test_a_hung_rank_times_out_the_others_who_name_the_collective(
        no_orphans: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ParallelError) as info:
        spawn(_hang_before_collective, 3, timeout_s=RUN_TIMEOUT_S, pg_timeout_s=PG_TIMEOUT_S,
              args=(no_orphans,))
    elapsed = time.monotonic() - start
    msg = str(info.value)
    assert elapsed < PG_TIMEOUT_S + MARGIN_S, msg
    assert msg.startswith("rank 1 hung (no report"), msg
    for rank in (0, 2):
        seen = json.loads((no_orphans.parent / f"rank{rank}.json").read_text())
        assert seen["collective"] == "all_reduce" and seen["group"] == [0, 1, 2], seen
        assert seen["cause"] == "peer timed out" and seen["silent"] == [1], seen
        # within the process-group timeout (plus the 1 s wait for peers' reports)
        assert PG_TIMEOUT_S - 0.5 < seen["elapsed"] < PG_TIMEOUT_S + 2.0, seen
        assert f"rank {rank}: all_reduce over group ranks [0, 1, 2]" in seen["message"]
        assert f"rank {rank} failed: CollectiveError" in msg, msg


def test_an_async_collective_failing_in_wait_is_named_at_the_guard(no_orphans: Path) -> None:
    with pytest.raises(ParallelError) as info:
        spawn(_async_from_dying_peer, 2, timeout_s=RUN_TIMEOUT_S, pg_timeout_s=PG_TIMEOUT_S,
              args=(no_orphans,))
    msg = str(info.value)
    assert msg.startswith("rank 1 died"), msg
    assert "rank 0: batch_isend_irecv over group ranks [0, 1] waited on after" in msg, msg
    assert "test_parallel_failure.py" in msg, msg  # the .wait() line, not the watchdog's


# --- the watchdog on its own ----------------------------------------------------------------

def test_gloo_messages_are_parsed_into_cause_detail_and_peer() -> None:
    died = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection "
            "closed by peer [127.0.0.1]:21637. This is typically caused by a remote worker "
            "crashing. Check the logs of the remote worker before reporting an error.")
    assert parse_failure(died) == ("peer died", "Connection closed by peer [127.0.0.1]:21637.",
                                   "127.0.0.1:21637")
    hung = ("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out "
            "waiting 3000ms for recv operation to complete\nmore")
    assert parse_failure(hung) == ("peer timed out",
                                   "Timed out waiting 3000ms for recv operation to complete",
                                   None)
    assert parse_failure("Tensors must be contiguous")[0] == "failed"


def test_the_guard_patches_only_inside_its_block_and_nests() -> None:
    original = dist.all_reduce
    with guard_collectives(0):
        wrapped = dist.all_reduce
        assert wrapped is not original and wrapped.__wrapped__ is original
        assert dist.distributed_c10d.all_reduce is wrapped  # one wrapper: identity holds
        assert dist.isend is dist.distributed_c10d.isend  # P2POp compares it by identity
        assert not hasattr(dist.isend, "__tessera_guarded__")
        with guard_collectives(0):
            assert dist.all_reduce is wrapped
        assert dist.all_reduce is wrapped
        assert current_collective() is None
    assert dist.all_reduce is original


# --- torchrun -------------------------------------------------------------------------------

TORCHRUN_SCRIPT = """
    import os, sys, torch, torch.distributed as dist
    from tessera.parallel.watchdog import guard_collectives

    rank = int(os.environ["RANK"])
    open(os.path.join(sys.argv[1], f"rank{rank}.pid"), "w").write(str(os.getpid()))
    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=3))
    t = torch.ones(64)
    with guard_collectives():
        for step in range(1000):
            if rank == 1 and step == 5:
                os._exit(3)  # sys.exit may abort in the gloo group's destructor
            dist.all_reduce(t)
"""


def test_torchrun_tears_the_job_down_when_a_rank_exits(no_orphans: Path,
                                                      tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "--max-restarts", "0", str(script), str(no_orphans)]
    # its own session: the launcher leads a process group whose id is its pid
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode != 0
    assert "exitcode  : 3" in stderr and "rank      : 1 (local_rank: 1)" in stderr, \
        stderr[-3000:]
    with pytest.raises(ProcessLookupError):  # nothing is left in the launcher's group
        os.killpg(proc.pid, 0)
