"""Reports: the canonical JSON of a profile and the views derived from it.

    >>> from tessera import report, sim
    >>> p = sim.profile(kernel, *inputs, chip="trn1", symbolic=True)
    >>> report.write_chrome_trace(p, "trace.json")   # open in ui.perfetto.dev
    >>> report.write_timeline_png(p, "timeline.png")
    >>> report.write_profile_json(p, "profile.json")

Every report records its schema, the tessera version and the hardware preset (plus any
what-if overrides). Times are stored in SI units and converted only here and in the CLI.
`timeline_png` imports matplotlib, so it is loaded only when a PNG is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.report.lanes import Lane, LaneKind, Piece, lanes
from tessera.report.profile_json import profile_report, write_profile_json
from tessera.report.trace_json import chrome_trace, write_chrome_trace

if TYPE_CHECKING:
    from tessera.report.timeline_png import write_timeline_png


def __getattr__(name: str) -> object:
    # matplotlib costs ~0.5 s to import; only PNG users should pay it
    if name == "write_timeline_png":
        from tessera.report.timeline_png import write_timeline_png

        return write_timeline_png
    raise AttributeError(f"module 'tessera.report' has no attribute {name!r}")


__all__ = [
    "Lane",
    "LaneKind",
    "Piece",
    "chrome_trace",
    "lanes",
    "profile_report",
    "write_chrome_trace",
    "write_profile_json",
    "write_timeline_png",
]
