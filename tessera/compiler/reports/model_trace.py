"""A compiled model as a Chrome / Perfetto trace (the JSON "Trace Event Format").

Open the file at https://ui.perfetto.dev or chrome://tracing. The model's time is the sum of
its ops' times (docs/compiler.md), so the ops are laid out back to back in graph order from
0. One process, named by the chip, holds:

* `model`: every op, views included (they last 0 us);
* `layers`: one slice per run of consecutive ops of one layer (`ModelProfile.layer_of`)
  (`layers.3`), to see the layers at a glance;
* one lane per resource that bounds a library kernel (`tensor`, `vector`, `scalar`,
  `gpsimd`, `dma`, `hbm`, `latency`: fixed latencies dominate) and the lanes `copy`
  (copies and pointwise ops without a library kernel) and `host` (fallback ops): each
  op (not a view) appears there too, at the same time as on `model`.

Each op is a complete event ("ph": "X") named by its node, with its op, module, kernels,
bound, FLOPs and HBM bytes in `args`. Times are microseconds (the format's unit) as floats;
each event ends where the next starts (both are rounded from the running sum).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tessera.compiler.profile import TOP, ModelProfile
from tessera.compiler.reports.model_json import plain, provenance
from tessera.compiler.reports.model_ops import lane_order, op_group, op_lane

SCHEMA = "tessera.model_trace/1"
MODEL_LANE = "model"
LAYER_LANE = "layers"
_PID = 0
_US_PER_S = 1e6
_DIGITS = 6  # picoseconds, as the kernel trace


def _us(seconds: float) -> float:
    return round(seconds * _US_PER_S, _DIGITS)


def model_chrome_trace(profile: ModelProfile, *, model: str | None = None,
                inputs: Mapping[str, object] | None = None,
                settings: Mapping[str, object] | None = None) -> dict[str, object]:
    """The trace as a JSON-ready dict: traceEvents, displayTimeUnit and otherData (the
    provenance header of the JSON report, the total and the op count)."""
    ops = profile.ops
    lanes = lane_order({lane for op in ops if (lane := op_lane(op)) is not None})
    tids = {name: i for i, name in enumerate((MODEL_LANE, LAYER_LANE, *lanes), start=1)}
    events: list[dict[str, object]] = [
        {"ph": "M", "name": "process_name", "pid": _PID, "tid": 0,
         "args": {"name": profile.chip}},
        {"ph": "M", "name": "process_sort_index", "pid": _PID, "tid": 0,
         "args": {"sort_index": 0}}]
    for name, tid in tids.items():
        events.append({"ph": "M", "name": "thread_name", "pid": _PID, "tid": tid,
                       "args": {"name": name}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": _PID, "tid": tid,
                       "args": {"sort_index": tid}})
    clock = 0.0
    spans: list[tuple[str, float, float]] = []  # (layer, start us, end us)
    for op in ops:
        ts, end = _us(clock), _us(clock + op.time_s)
        clock += op.time_s
        group = op_group(op)
        args = {"op": op.op, "module": op.module, "kernels": list(op.kernels),
                "bound": op.bound, "flops": op.flops, "hbm_bytes": op.hbm_bytes,
                "priced_as": op.priced_as, "group": group}
        dur = round(end - ts, _DIGITS)
        base = {"name": op.node, "cat": group, "ph": "X", "pid": _PID, "ts": ts,
                "dur": dur, "args": args}
        events.append({**base, "tid": tids[MODEL_LANE]})
        lane = op_lane(op)
        if lane is not None:
            events.append({**base, "tid": tids[lane]})
        layer = profile.layer_of(op)
        if spans and spans[-1][0] == layer:
            spans[-1] = (layer, spans[-1][1], end)
        else:
            spans.append((layer, ts, end))
    for layer, ts, end in spans:
        events.append({"name": layer if layer != TOP else "top", "cat": "layer", "ph": "X",
                       "pid": _PID, "tid": tids[LAYER_LANE], "ts": ts,
                       "dur": round(end - ts, _DIGITS), "args": {"module": layer}})
    other = provenance(profile, model=model, inputs=inputs, settings=settings, schema=SCHEMA)
    other.update(total_s=profile.total_s, ops=len(ops))
    return plain({"traceEvents": events, "displayTimeUnit": "ns",  # type: ignore[return-value]
                  "otherData": other})


def write_model_trace(profile: ModelProfile, path: Path | str, *, model: str | None = None,
                      inputs: Mapping[str, object] | None = None,
                      settings: Mapping[str, object] | None = None) -> Path:
    """Write `model_chrome_trace(...)` to `path` (compact JSON) and return the path."""
    path = Path(path)
    trace = model_chrome_trace(profile, model=model, inputs=inputs, settings=settings)
    path.write_text(json.dumps(trace, separators=(",", ":"), allow_nan=False))
    return path
