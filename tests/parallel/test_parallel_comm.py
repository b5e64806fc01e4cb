"""Real collectives over torch.distributed (gloo, fork, file:// rendezvous) against numpy.

Every run has a deadline: workers are joined with a timeout and killed if still alive, so a
hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tessera.net import CollectiveModel, CollectiveOp
from tessera.parallel import CommError
from tessera.parallel.comm import Communicator

JOIN_TIMEOUT_S = 30.0


def _inputs(rank: int, n: int) -> np.ndarray:
    """Rank r's input: 4 elements per rank (so RS/A2A split evenly), distinct per rank."""
    return (np.arange(4 * n, dtype=np.float32) * (rank + 1) + 10 * rank)


def _run(world: int, tmp_path: Path, body: Callable[[int, int, str, mp.Queue], None],
         expected: int | None = None) -> dict[int, object]:
    """Run `body` on `world` forked ranks; collect (rank, value) reports until `expected`
    ranks (default: all) have reported or the deadline passes, then reap every worker."""
    ctx = mp.get_context("fork")
    results: mp.Queue = ctx.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=body, args=(r, world, init, results)) for r in range(world)]
    for p in procs:
        p.start()
    out: dict[int, object] = {}
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    try:
        while len(out) < (expected or world) and time.monotonic() < deadline:
            try:
                rank, value = results.get(timeout=0.2)
                out[rank] = value
            except queue.Empty:
                if all(not p.is_alive() for p in procs) and results.empty():
                    break
    finally:
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()) if expected is None else 0.5)
            if p.is_alive():  # never leave a worker behind
                p.kill()
                p.join(5)
    return out


def _all_ops(rank: int, world: int, init: str, results: mp.Queue) -> None:
    try:
        model = CollectiveModel.for_instance("trn1.32xlarge", world)
        with Communicator(rank, world, init, backend="gloo", timeout_s=20, model=model) as comm:
            x = torch.from_numpy(_inputs(rank, world))
            got = {
                "all_reduce": comm.all_reduce(x.clone()).numpy(),
                "all_gather": comm.all_gather(x.clone()).numpy(),
                "reduce_scatter": comm.reduce_scatter(x.clone()).numpy(),
                "all_to_all": comm.all_to_all(x.clone()).numpy(),
                "broadcast": comm.broadcast(x.clone(), src=world - 1).numpy(),
                "permute": comm.permute(x.clone()).numpy(),
            }
            if rank == 0:
                comm.send(x.clone(), 1)
            elif rank == 1:
                got["recv"] = comm.recv(torch.empty_like(x), 0).numpy()
            pair = comm.new_group([0, 1])
            if rank in (0, 1):
                got["pair_all_reduce"] = comm.all_reduce(x.clone(), group=pair).numpy()
            comm.barrier()
            got["predicted"] = [(r.op, r.predicted_time_s) for r in comm.records]
        results.put((rank, got))
    except BaseException as exc:  # report, so the parent fails with the reason
        results.put((rank, exc))


@pytest.mark.parametrize("world", [2, 4])
def test_collectives_equal_the_numpy_reduction(world: int, tmp_path: Path) -> None:
    out = _run(world, tmp_path, _all_ops)
    assert sorted(out) == list(range(world)), out
    inputs = [_inputs(r, world) for r in range(world)]
    total = np.sum(inputs, axis=0)
    for rank in range(world):
        got = out[rank]
        assert not isinstance(got, BaseException), got
        np.testing.assert_allclose(got["all_reduce"], total)
        np.testing.assert_allclose(got["all_gather"], np.concatenate(inputs))
        np.testing.assert_allclose(got["reduce_scatter"], np.split(total, world)[rank])
        np.testing.assert_allclose(got["all_to_all"],
                                   np.concatenate([np.split(i, world)[rank] for i in inputs]))
        np.testing.assert_allclose(got["broadcast"], inputs[world - 1])
        np.testing.assert_allclose(got["permute"], inputs[(rank - 1) % world])
        if rank == 1:
            np.testing.assert_allclose(got["recv"], inputs[0])
        if rank in (0, 1):
            np.testing.assert_allclose(got["pair_all_reduce"], inputs[0] + inputs[1])
        ops = [op for op, _ in got["predicted"]]
        assert CollectiveOp.ALL_REDUCE in ops and CollectiveOp.PERMUTE in ops
        assert all(t is not None and t > 0 for _, t in got["predicted"])


def _one_rank_dies(rank: int, world: int, init: str, results: mp.Queue) -> None:
    try:
        comm = Communicator(rank, world, init, backend="gloo", timeout_s=5)
        if rank == 1:
            os._exit(3)  # dies without a word
        start = time.monotonic()
        try:
            comm.all_reduce(torch.ones(4))
            results.put((rank, "no error"))
        except CommError as exc:
            results.put((rank, (str(exc), time.monotonic() - start)))
    except BaseException as exc:
        results.put((rank, exc))


def test_a_dead_rank_makes_the_others_fail_clearly(tmp_path: Path) -> None:
    out = _run(3, tmp_path, _one_rank_dies)
    assert sorted(out) == [0, 2], out
    for rank in (0, 2):
        message, elapsed = out[rank]
        assert "all_reduce on rank" in message and "did not answer" in message
        assert elapsed < 5 + 2


def _one_rank_hangs(rank: int, world: int, init: str, results: mp.Queue) -> None:
    try:
        comm = Communicator(rank, world, init, backend="gloo", timeout_s=2)
        if rank == 1:
            time.sleep(8)  # alive but never joins the collective
            os._exit(0)
        start = time.monotonic()
        try:
            comm.all_gather(torch.ones(2))
            results.put((rank, "no error"))
        except CommError as exc:
            results.put((rank, (str(exc), time.monotonic() - start)))
    except BaseException as exc:
        results.put((rank, exc))


def test_a_hung_rank_times_out_instead_of_hanging(tmp_path: Path) -> None:
    out = _run(2, tmp_path, _one_rank_hangs, expected=1)
    message, elapsed = out[0]
    assert "all_gather" in message
    assert 1.5 < elapsed < 6


def test_communicator_rejects_a_model_of_another_size(tmp_path: Path) -> None:
    model = CollectiveModel.for_instance("trn1.32xlarge", 4)
    with pytest.raises(CommError, match="places 4 ranks"):
        Communicator(0, 2, f"file://{tmp_path / 'r'}", model=model)
