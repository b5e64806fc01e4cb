"""The lagged-stage driver the attention kernels share.

Items (query blocks, KV chunks) are generated lazily, `lookahead` ahead of their first
stage so their loads are issued early; stage `s` with lag `L` runs on the item generated
`lookahead + L` steps ago. Stages are called in the schedule's order each step, which fixes
the program order the engines see (they execute in program order, so the skew is what lets
one engine's work of item i overlap another's of item i+1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence


def run_lagged(items: Iterator[object], schedule: Sequence[tuple[Callable, int]],
               lookahead: int, call: Callable[[Callable, object], None]) -> None:
    """Drive `items` through `schedule` ((stage, lag), ...): `call(stage, item)` per step."""
    depth = max(lag for _, lag in schedule) + 1 + lookahead
    window: deque[object | None] = deque(maxlen=depth)
    while True:
        window.append(next(items, None))
        if len(window) == depth and all(w is None for w in window):
            break
        for stage, lag in schedule:
            pos = lookahead + lag
            if pos < len(window) and window[-1 - pos] is not None:
                call(stage, window[-1 - pos])
