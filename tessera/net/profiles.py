"""Time profiles of routed schedules: each step as a few lines `latency + slope * V`.

Every flow's bytes are a fraction of the collective's size V, so once a schedule is routed a
step's time at any V is the upper envelope of a handful of lines (one per class of flows with
the same hop latency) and of its HBM line. A whole collective adds the fixed per-collective
overhead (runtime launch and final synchronisation) to the sum of its steps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StepProfile:
    """One step's time as a function of the collective size V (in bytes)."""

    count: int
    lines: tuple[tuple[float, float], ...]  # (latency_s, seconds per byte of V)
    base_latency_s: float  # message issue time of the busiest sender (the HBM line's latency)
    hbm_s_per_byte: float

    def time_s(self, n_bytes: float) -> float:
        """Time of all `count` repetitions of this step at size `n_bytes`."""
        t = self.base_latency_s + self.hbm_s_per_byte * n_bytes
        for lat, s in self.lines:  # a plain loop: this is on every costing's path
            line = lat + s * n_bytes
            if line > t:
                t = line
        return self.count * t


@dataclass(frozen=True, eq=False)
class CostProfile:
    """A whole schedule: fixed overhead, its steps, and each link's busy time per byte of V."""

    steps: tuple[StepProfile, ...]
    overhead_s: float
    # computes the busy array on first use (AUTO only needs it for the winner)
    busy_fn: Callable[[], np.ndarray] = field(repr=False)

    @functools.cached_property
    def link_busy_s_per_byte(self) -> np.ndarray:
        """Seconds each link is busy per byte of V over the whole schedule."""
        return self.busy_fn()

    @property
    def n_steps(self) -> int:
        """Algorithm steps, counting repetitions."""
        return sum(s.count for s in self.steps)

    def time_s(self, n_bytes: float) -> float:
        """Predicted time of the collective at size `n_bytes`."""
        total = self.overhead_s
        for step in self.steps:
            total += step.time_s(n_bytes)
        return total

    def busiest_link(self) -> tuple[int, float] | None:
        """(link id, busy seconds per byte of V) of the most loaded link; None if no link."""
        if self.link_busy_s_per_byte.size == 0:
            return None
        i = int(np.argmax(self.link_busy_s_per_byte))
        busy = float(self.link_busy_s_per_byte[i])
        return (i, busy) if busy > 0 else None


def envelope(lines: Iterable[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Lines (lat, slope) that attain max_i(lat_i + slope_i x) for some x >= 0.

    Steps have one line per hop-latency class (a few), so a plain walk along the envelope
    is faster than any vectorised hull.
    """
    cand = list(set(lines))
    cur = max(cand)  # the latest line, steepest among ties, is on top at x = 0
    hull = [cur]
    while True:
        best, best_x = None, math.inf
        for line in cand:
            if line[1] > cur[1]:  # only a steeper line can overtake the current one
                x = (cur[0] - line[0]) / (line[1] - cur[1])
                if x < best_x or (x == best_x and best is not None and line[1] > best[1]):
                    best, best_x = line, x
        if best is None:
            return tuple(hull)
        hull.append(best)
        cur = best
