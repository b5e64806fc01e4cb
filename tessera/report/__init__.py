"""Reports: the canonical JSON of a profile and the views derived from it.

    >>> from tessera import report, sim
    >>> p = sim.profile(kernel, *inputs, chip="trn1", symbolic=True)
    >>> report.write_chrome_trace(p, "trace.json")   # open in ui.perfetto.dev
    >>> report.write_timeline_png(p, "timeline.png")
    >>> report.write_profile_json(p, "profile.json")

A compiled model (`tessera.compile`) has its own reports, all three in one folder:

    >>> report.write_model_report(compiled, "reports/")  # profile.json, layers.png, trace.json

Every report records its schema, the tessera version and the hardware preset (plus any
what-if overrides). Times are stored in SI units and converted only here and in the CLI.
`timeline_png` imports matplotlib, so it is loaded only when a PNG is asked for; the model
reports import the compiler (and torch), so they are loaded on first use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.report.lanes import Lane, LaneKind, Piece, lanes
from tessera.report.profile_json import profile_report, write_profile_json
from tessera.report.trace_json import chrome_trace, write_chrome_trace

if TYPE_CHECKING:
    from tessera.compiler.reports.model_folder import write_model_report
    from tessera.compiler.reports.model_json import model_report, write_model_json
    from tessera.compiler.reports.model_png import write_model_png
    from tessera.compiler.reports.model_trace import model_chrome_trace, write_model_trace
    from tessera.report.timeline_png import write_timeline_png

# name -> module: loaded on first use (matplotlib costs ~0.5 s to import, torch ~2 s; only
# the users of a PNG or of a compiled model should pay them)
_LAZY = {
    "write_timeline_png": "tessera.report.timeline_png",
    "model_report": "tessera.compiler.reports.model_json",
    "write_model_json": "tessera.compiler.reports.model_json",
    "write_model_png": "tessera.compiler.reports.model_png",
    "model_chrome_trace": "tessera.compiler.reports.model_trace",
    "write_model_trace": "tessera.compiler.reports.model_trace",
    "write_model_report": "tessera.compiler.reports.model_folder",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tessera.report' has no attribute {name!r}")


__all__ = [
    "Lane",
    "LaneKind",
    "Piece",
    "chrome_trace",
    "lanes",
    "model_chrome_trace",
    "model_report",
    "profile_report",
    "write_chrome_trace",
    "write_model_json",
    "write_model_png",
    "write_model_report",
    "write_model_trace",
    "write_profile_json",
    "write_timeline_png",
]
