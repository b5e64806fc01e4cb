"""A kernel's timeline as a Chrome / Perfetto trace (the JSON "Trace Event Format").

Open the file at https://ui.perfetto.dev or chrome://tracing. Each NeuronCore is a process;
each engine queue, DMA engine and the sendrecv lane (see `tessera.report.lanes`) is a thread.
Every instruction is a complete event ("ph": "X") named by its opcode, with the opcode, its
source line, program index, stream position, bytes moved (a compute instruction: bytes
read and written on chip) and FLOPs (matmuls) in `args`; a DMA appears once per DMA engine
it used.
Timestamps and durations are microseconds (the format's unit) as floats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tessera.report.lanes import LaneKind, lanes
from tessera.report.meta import provenance
from tessera.sim import Profile, matmul_flops

SCHEMA = "tessera.chrome_trace/1"
_US_PER_S = 1e6
# Picosecond resolution: finer than any modelled latency, and keeps the file short.
_DIGITS = 6


def _us(seconds: float) -> float:
    return round(seconds * _US_PER_S, _DIGITS)


def _args(profile: Profile, pos: int, engine_lane: bool, critical: bool
          ) -> dict[str, object]:
    tl = profile.timeline
    inst = tl.stream.instructions[pos]
    loc = inst.location
    args: dict[str, object] = {"opcode": inst.opcode.value,
                               "source": f"{loc.file}:{loc.line}", "function": loc.function,
                               "index": inst.index, "position": pos}
    if engine_lane:
        args["end_with_latency_us"] = _us(float(tl.end_s[pos]))
        args["bytes"] = sum(ap.num_bytes for ap in (*inst.reads, *inst.writes))
        args["flops"] = matmul_flops(inst)
    else:
        plan = tl.dma_plans[pos]
        args["dma_engines"] = plan.engines
        args["bytes"] = plan.bytes_moved
        args["hbm_read_bytes"] = plan.hbm_read_bytes
        args["hbm_write_bytes"] = plan.hbm_write_bytes
    if critical:
        args["critical_path"] = True
    return args


def chrome_trace(profile: Profile, *, kernel: str | None = None,
                 overrides: Mapping[str, object] | None = None) -> dict[str, object]:
    """The trace as a JSON-ready dict: traceEvents, displayTimeUnit and otherData.

    `kernel` and `overrides` are recorded in otherData; DMA lanes are the engines the
    scheduler used (so they follow hardware overrides).
    """
    tl = profile.timeline
    stream, plans = tl.stream.instructions, tl.dma_plans
    critical = frozenset(tl.critical_path)
    rows = lanes(profile)
    events: list[dict[str, object]] = []
    tids: dict[int, int] = {}
    shared: dict[int, dict[str, object]] = {}
    for core in sorted({lane.core for lane in rows}):
        events.append({"ph": "M", "name": "process_name", "pid": core, "tid": 0,
                       "args": {"name": f"NeuronCore {core} ({profile.chip})"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": core, "tid": 0,
                       "args": {"sort_index": core}})
    for lane in rows:
        tid = tids[lane.core] = tids.get(lane.core, 0) + 1
        events.append({"ph": "M", "name": "thread_name", "pid": lane.core, "tid": tid,
                       "args": {"name": lane.label}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": lane.core, "tid": tid,
                       "args": {"sort_index": tid}})
        category = lane.resource.value
        for piece in lane.pieces:
            pos = piece.position
            inst = stream[pos]
            args = shared.get(pos)  # the pieces of one DMA share their args
            if args is None:
                args = _args(profile, pos, lane.kind is LaneKind.ENGINE, pos in critical)
                if pos in plans:
                    shared[pos] = args
            events.append({"name": inst.opcode.value, "cat": category, "ph": "X",
                           "pid": lane.core, "tid": tid, "ts": _us(piece.start_s),
                           "dur": _us(piece.duration_s), "args": args})
    other = provenance(profile, SCHEMA, kernel, overrides)
    other.update(total_s=profile.total_s, instructions=profile.instructions,
                 bound=profile.bound.value)
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}


def write_chrome_trace(profile: Profile, path: Path | str, *,
                       kernel: str | None = None,
                       overrides: Mapping[str, object] | None = None) -> Path:
    """Write `chrome_trace(...)` to `path` (compact JSON) and return the path."""
    path = Path(path)
    trace = chrome_trace(profile, kernel=kernel, overrides=overrides)
    # one C-encoded string: json.dump to a file encodes chunk by chunk in Python, ~10x slower
    path.write_text(json.dumps(trace, separators=(",", ":")))
    return path
