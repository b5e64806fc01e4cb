"""Loads from files: a trace to replay, or a ShareGPT-format dataset.

Trace (`read_trace`): JSONL (one object per line) or CSV (a header row, then one row per
request; chosen by the `.csv` suffix). Fields, by name:
- `arrival_s` (or `timestamp`, as vLLM's self-timed traces call it): seconds from the
  start, >= 0;
- `input_tokens` (or `prompt_len`), `output_tokens` (or `output_len`): positive integers;
- optional `prefix_id` (integer >= 0) and `prefix_tokens`: the leading tokens shared with
  every other request of that id (for prefix caching).
Rows are replayed in arrival order. A bad row raises TraceError naming file:line:field.

ShareGPT (`read_sharegpt`), as `vllm bench serve --dataset-name sharegpt` reads it
[VDATA]: a JSON list of entries with `conversations` (at least two turns; the first
turn's `value` is the prompt, the second's the completion); entries are shuffled with
Python's `random.Random(seed)` (the order vLLM's `random.seed(seed); random.shuffle` gives)
and kept while prompt >= 4 tokens, completion >= 4 tokens (unless `output_len` fixes it),
prompt <= 1024 and prompt + completion <= 2048; too few are topped up by drawing kept ones
again. Without a tokenizer, a text's token count is estimated as ceil(characters / 4)
(about four characters per token for English BPE vocabularies such as Llama 3's); a turn
may carry its exact count as `num_tokens`, which is used instead.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

from tessera.plan.serve_types import ServeError, ServeLoad, ServeRequest, TraceError

CHARS_PER_TOKEN = 4.0
_ALIASES = {"arrival_s": ("arrival_s", "timestamp"),
            "input_tokens": ("input_tokens", "prompt_len"),
            "output_tokens": ("output_tokens", "output_len")}


def _rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, fields) of each data row."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TraceError(f"{path}: cannot read the trace ({e.strerror})") from None
    if path.suffix.lower() == ".csv":
        lines = text.splitlines()
        reader = csv.DictReader(lines)
        if not reader.fieldnames:
            raise TraceError(f"{path}:1: the CSV trace has no header row")
        for row in reader:
            if None in row:
                raise TraceError(f"{path}:{reader.line_num}: more values than header fields")
            if any(v is None for v in row.values()):
                raise TraceError(f"{path}:{reader.line_num}: fewer values than header fields")
            if any(v.strip() for v in row.values()):
                yield reader.line_num, dict(row)
        return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{path}:{line_no}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{path}:{line_no}: expected a JSON object, got "
                             f"{type(obj).__name__}")
        yield line_no, obj


def _field(row: dict[str, object], name: str, where: str,
           default: object = None) -> tuple[str, object]:
    """(the field's name as the row spells it, its value)."""
    for alias in _ALIASES.get(name, (name,)):
        if alias in row and row[alias] not in ("", None):
            return alias, row[alias]
    if default is not None:
        return name, default
    names = " or ".join(repr(a) for a in _ALIASES.get(name, (name,)))
    raise TraceError(f"{where}: field {names} is missing")


def _int(value: object, where: str, name: str, low: int) -> int:
    v: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        v = value
    elif isinstance(value, str):
        try:
            v = int(value.strip())
        except ValueError:
            v = None
    if v is None or v < low:
        bound = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise TraceError(f"{where}: field {name!r}: expected {bound}, got {value!r}")
    return v


def _seconds(value: object, where: str, name: str) -> float:
    v = math.nan
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            v = float(value)
        except ValueError:
            v = math.nan
    if not math.isfinite(v) or v < 0:
        raise TraceError(f"{where}: field {name!r}: expected seconds >= 0, got {value!r}")
    return v


def read_trace(path: str | Path, max_concurrency: int | None = None) -> ServeLoad:
    """The requests of a JSONL or CSV trace, in arrival order."""
    p = Path(path)
    reqs = []
    for line_no, row in _rows(p):
        where = f"{p}:{line_no}"
        key, v = _field(row, "arrival_s", where)
        arrival = _seconds(v, where, key)
        key, v = _field(row, "input_tokens", where)
        n_in = _int(v, where, key, 1)
        key, v = _field(row, "output_tokens", where)
        n_out = _int(v, where, key, 1)
        pid = _int(_field(row, "prefix_id", where, -1)[1], where, "prefix_id", -1)
        ptok = _int(_field(row, "prefix_tokens", where, 0)[1], where, "prefix_tokens", 0)
        if ptok > n_in:
            raise TraceError(f"{where}: field 'prefix_tokens': {ptok} is more than the "
                             f"{n_in} input tokens")
        if ptok and pid < 0:
            raise TraceError(f"{where}: field 'prefix_id': needed (>= 0) when prefix_tokens "
                             "is given")
        reqs.append(ServeRequest(arrival, n_in, n_out, pid, ptok))
    if not reqs:
        raise TraceError(f"{p}: the trace has no requests")
    reqs.sort(key=lambda r: r.arrival_s)  # stable: rows of one time keep their order
    return ServeLoad(tuple(reqs), max_concurrency, name=p.name)


def estimate_tokens(text: str) -> int:
    """Tokens of `text` without a tokenizer: ceil(characters / CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _turn_tokens(turn: object, where: str) -> int:
    if not isinstance(turn, dict):
        raise TraceError(f"{where}: expected an object with 'value', got {type(turn).__name__}")
    if "num_tokens" in turn:
        return _int(turn["num_tokens"], where, "num_tokens", 0)
    value = turn.get("value")
    if not isinstance(value, str):
        raise TraceError(f"{where}: field 'value': expected text, got {value!r}")
    return estimate_tokens(value)


def read_sharegpt(path: str | Path, num_prompts: int, output_len: int | None = None,
                  seed: int = 0) -> list[ServeRequest]:
    """`num_prompts` requests (all arriving at 0: re-time them with
    `serve_load.with_arrivals`) from a ShareGPT-format JSON file."""
    p = Path(path)
    if num_prompts < 1:
        raise ServeError(f"--num-prompts: {num_prompts} is not a positive integer")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise TraceError(f"{p}: cannot read the dataset ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise TraceError(f"{p}:{e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise TraceError(f"{p}: expected a JSON list of conversations")
    entries = [(i, e) for i, e in enumerate(data)
               if isinstance(e, dict) and isinstance(e.get("conversations"), list)
               and len(e["conversations"]) >= 2]
    random.Random(seed).shuffle(entries)
    kept: list[ServeRequest] = []
    for i, entry in entries:
        if len(kept) >= num_prompts:
            break
        turns = entry["conversations"]
        n_in = _turn_tokens(turns[0], f"{p}: entry {i} conversations[0]")
        n_out = (_turn_tokens(turns[1], f"{p}: entry {i} conversations[1]")
                 if output_len is None else output_len)
        short_out = output_len is None and n_out < 4
        if n_in < 4 or short_out or n_in > 1024 or n_in + n_out > 2048 or n_out < 1:
            continue
        kept.append(ServeRequest(0.0, n_in, n_out))
    if not kept:
        raise TraceError(f"{p}: no conversation passes vLLM's ShareGPT length filter")
    base = list(kept)
    rng = random.Random(seed)
    while len(kept) < num_prompts:  # vLLM oversamples with random.choice
        kept.append(rng.choice(base))
    return kept
