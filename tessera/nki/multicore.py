"""Running the cores of an LNC=2 launch: one at a time, synchronised by their barriers.

Each core's kernel body runs on a thread of its own (kernel code is ordinary Python that
may wait anywhere, so it needs its own stack), but only the core holding the *turn* runs.
A core keeps the turn until it waits at a `core_barrier` or in a `sendrecv` whose peer has
not sent yet, or ends; the turn then passes to the next core that can go on. So a launch
is deterministic whatever the OS does with threads, every barrier and sendrecv is honoured
(nothing after a barrier runs before both cores reached it; a sendrecv returns the peer's
tile), and when no core can go on the launch is deadlocked: that is reported at once,
naming the waiting core and the peer it waits for, instead of after a timeout.

The scheduler also owns the launch's `RaceTracker` (`tessera.nki.races`), which the
instruction recorder calls for every instruction and which starts a new phase each time a
barrier releases the cores.

The turn-taking itself is `TurnScheduler`, which the ranks of a multi-rank run share as
well (`tessera.nki.collectives_run.RankScheduler`: ranks take turns at their collectives).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from tessera.nki.errors import CoreDeadlockError
from tessera.nki.races import RaceTracker
from tessera.nki.stream import Instruction


class _Aborted(BaseException):
    """Ends a worker's thread once the launch has failed (another worker's error or a
    deadlock). A BaseException so that a kernel's own `except Exception` lets it pass."""


@dataclass(frozen=True)
class _Wait:
    """Where a core waits: its n-th core_barrier, or its n-th sendrecv (from `peer`)."""

    op: str
    number: int
    location: str
    peer: int = -1

    def __str__(self) -> str:
        return f"{self.op} #{self.number} at {self.location}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class TurnScheduler:
    """Turn-taking among workers that each run on a thread of their own: only the worker
    holding the turn runs; it gives the turn away when it waits (`_pass_turn`) or ends, to
    the next worker that `_can_go`; when none can, `_deadlock()` is the launch's error.
    The cores of an LNC=2 launch (`CoreScheduler`) and the ranks of a multi-rank run
    (`tessera.nki.collectives_run.RankScheduler`) are its two uses."""

    worker = "worker"  # what a worker is called in thread names

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._cond = threading.Condition()
        self._turn = 0  # worker 0 starts; the order only matters for determinism
        self._done = [False] * workers
        self._error: BaseException | None = None

    def run(self, body: Callable[[int], None]) -> None:
        """Run `body(worker)` for every worker, taking turns; re-raise the first error."""
        threads = [threading.Thread(target=self._worker_main, args=(w, body),
                                    name=f"nki-{self.worker}{w}", daemon=True)
                   for w in range(self.workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if self._error is not None:
            raise self._error

    def _worker_main(self, w: int, body: Callable[[int], None]) -> None:
        try:
            with self._cond:
                self._await_turn(w)
            body(w)
            with self._cond:
                self._ended(w)
                self._finish(w)
        except _Aborted:
            pass
        except BaseException as err:  # re-raised by run() on the launching thread
            with self._cond:
                if self._error is None:
                    self._error = self._failed(w, err)
                self._cond.notify_all()

    # hooks -------------------------------------------------------------------------
    def _can_go(self, w: int) -> bool:
        """Whether worker `w`, not done, can go on (not waiting, or its wait is over)."""
        raise NotImplementedError

    def _deadlock(self) -> BaseException:
        """The error when no worker can go on."""
        raise NotImplementedError

    def _ended(self, w: int) -> None:
        """Worker `w`'s body returned (called holding the lock, before the turn passes)."""

    def _failed(self, w: int, err: BaseException) -> BaseException:
        """The error to report for worker `w`'s `err` (the first one ends the launch)."""
        return err

    # turn-taking -------------------------------------------------------------------
    def _await_turn(self, w: int) -> None:
        while self._turn != w and self._error is None:
            self._cond.wait()
        if self._error is not None:
            raise _Aborted

    def _next(self, w: int) -> int | None:
        """The next worker after `w` (itself last) that can go on."""
        for step in range(1, self.workers + 1):
            c = (w + step) % self.workers
            if not self._done[c] and self._can_go(c):
                return c
        return None

    def _pass_turn(self, w: int) -> None:
        """`w` waits: give the turn away and wait for it back (or the launch's end)."""
        nxt = self._next(w)
        if nxt is None:
            self._error = self._deadlock()
            self._cond.notify_all()
            raise _Aborted
        self._turn = nxt
        self._cond.notify_all()
        self._await_turn(w)

    def _finish(self, w: int) -> None:
        self._done[w] = True
        if not all(self._done):
            nxt = self._next(w)
            if nxt is None:
                self._error = self._deadlock()
            else:
                self._turn = nxt
        self._cond.notify_all()


class CoreScheduler(TurnScheduler):
    """Turn-taking, barriers, sendrecv mail and deadlock detection for one launch."""

    worker = "core"

    def __init__(self, num_cores: int) -> None:
        super().__init__(num_cores)
        self.num_cores = num_cores
        self.races = RaceTracker()
        self._waits: list[_Wait | None] = [None] * num_cores
        self._barriers = [0] * num_cores  # barriers each core has passed
        self._sendrecvs = [0] * num_cores  # sendrecvs each core has issued
        # (sender, receiver, the sender's sendrecv number) -> tile (None when symbolic)
        self._mail: dict[tuple[int, int, int], object] = {}

    def _ended(self, core: int) -> None:
        # once every core is done the mail is empty: each sendrecv that returned consumed
        # one message and posted one
        self.races.settle(core)  # its last write has run
        if all(self._done[c] for c in range(self.num_cores) if c != core):
            self.races.finish()  # the last phase ends with the kernel

    # ------------------------------------------------------------------ instructions
    def instruction(self, core: int, inst: Instruction, reads: tuple[object, ...],
                    writes: tuple[object, ...]) -> None:
        """Called as each instruction is recorded (before it runs): race checks."""
        self.races.access(core, inst, reads, writes)

    def barrier(self, core: int, location: str) -> None:
        """core_barrier: return once every core has reached its barrier of this number."""
        with self._cond:
            self.races.settle(core)
            self._waits[core] = _Wait("core_barrier", self._barriers[core], location)
            if all(w is not None and w.op == "core_barrier" for w in self._waits):
                # the last one in releases everybody (a barrier number cannot differ: no
                # core passes barrier n before all cores reached it)
                for c in range(self.num_cores):
                    self._waits[c] = None
                    self._barriers[c] += 1
                self.races.new_phase()
                return
            self._pass_turn(core)

    def sendrecv(self, core: int, send_to: int, recv_from: int, tile: object,
                 location: str) -> object:
        """Post `tile` for `send_to` and return what `recv_from` sent: each core's n-th
        sendrecv pairs with the peer's n-th (the documented program-order pairing)."""
        with self._cond:
            self.races.settle(core)
            number = self._sendrecvs[core]
            self._sendrecvs[core] += 1
            self._mail[(core, send_to, number)] = tile
            key = (recv_from, core, number)
            if key not in self._mail:
                self._waits[core] = _Wait("sendrecv", number, location, recv_from)
                self._pass_turn(core)
                self._waits[core] = None
            return self._mail.pop(key)

    # ------------------------------------------------------------------ turn-taking
    def _can_go(self, core: int) -> bool:
        w = self._waits[core]
        if w is None:
            return True
        return w.op == "sendrecv" and (w.peer, core, w.number) in self._mail

    # ------------------------------------------------------------------ reports
    def _state(self, core: int) -> str:
        w = self._waits[core]
        if w is not None:
            return f"waits at {w}"
        return (f"finished the kernel after {_plural(self._barriers[core], 'core_barrier')} "
                f"and {_plural(self._sendrecvs[core], 'sendrecv')}")

    def _deadlock(self) -> CoreDeadlockError:
        """No core can go on: name a waiting core and the peer it waits for."""
        core = next(c for c in range(self.num_cores) if self._waits[c] is not None)
        w = self._waits[core]
        assert w is not None
        if w.op == "sendrecv":
            peer = w.peer
            waits_for = f"core {peer}'s sendrecv #{w.number}"
            state = (f"core {peer} {self._state(peer)}" if peer != core else
                     "this core sent that sendrecv to another core")
        else:
            peer = next(c for c in range(self.num_cores) if c != core and (
                self._waits[c] is None or self._waits[c].op != "core_barrier"))
            waits_for = f"core {peer}"
            state = f"core {peer} {self._state(peer)}"
        return CoreDeadlockError(
            f"LNC deadlock: core {core} waits at {w} for {waits_for}, but {state}, so it "
            f"never comes. Both cores must reach the same core_barriers and sendrecvs in the "
            f"same order (each core's n-th sendrecv pairs with the peer's n-th)", w.location)
