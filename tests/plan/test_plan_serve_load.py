"""Serving simulation, loads: arrivals as `vllm bench serve` spaces them, the random
dataset's lengths, trace replay from JSONL and CSV with one-line errors naming
file:line:field, and ShareGPT files read with vLLM's filter."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from tessera.plan.serve_load import (
    arrival_times_s,
    closed_loop_load,
    random_lengths,
    random_load,
    with_arrivals,
)
from tessera.plan.serve_trace import estimate_tokens, read_sharegpt, read_trace
from tessera.plan.serve_types import ServeError, ServeLoad, ServeRequest, TraceError


def test_serve_arrivals_end_at_n_over_rate_and_follow_burstiness() -> None:
    t = arrival_times_s(2000, rate_per_s=10.0, seed=1)
    assert t[-1] == pytest.approx(200.0)  # vLLM rescales to exactly n / rate
    assert (np.diff(t) >= 0).all()
    cv = {b: np.std(np.diff(arrival_times_s(5000, 10.0, b, seed=2)))
          / np.mean(np.diff(arrival_times_s(5000, 10.0, b, seed=2))) for b in (0.25, 1.0, 4.0)}
    assert cv[0.25] > cv[1.0] > cv[4.0]  # gamma shape b: CV = 1 / sqrt(b)
    assert cv[1.0] == pytest.approx(1.0, abs=0.05)
    assert (arrival_times_s(5, math.inf) == 0).all()
    assert arrival_times_s(4, 2.0, math.inf) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    with pytest.raises(ServeError, match="--burstiness"):
        arrival_times_s(3, 1.0, 0.0)


def test_serve_random_lengths_follow_range_ratio() -> None:
    ins, outs = random_lengths(5000, 1000, 100, range_ratio=0.2, seed=3)
    assert ins.min() >= 800 and ins.max() <= 1200 and outs.min() >= 80 and outs.max() <= 120
    assert ins.mean() == pytest.approx(1000, rel=0.02)
    fixed_in, fixed_out = random_lengths(10, 64, 8)
    assert set(fixed_in) == {64} and set(fixed_out) == {8}
    with pytest.raises(ServeError, match="--random-range-ratio: 1.0"):
        random_lengths(10, 64, 8, range_ratio=1.0)


def test_serve_random_load_prefix_and_closed_loop() -> None:
    load = random_load(50, 100, 10, prefix_len=64, rate_per_s=5.0)
    assert {r.input_tokens for r in load.requests} == {164}
    assert {(r.prefix_id, r.prefix_tokens) for r in load.requests} == {(0, 64)}
    closed = closed_loop_load(10, 3, 100, 10)
    assert closed.max_concurrency == 3 and {r.arrival_s for r in closed.requests} == {0.0}
    again = with_arrivals(closed.requests, rate_per_s=2.0, seed=1)
    assert again.requests[-1].arrival_s == pytest.approx(5.0)


def test_serve_trace_jsonl_and_csv_replay(tmp_path: Path) -> None:
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"arrival_s": 0.5, "input_tokens": 100, "output_tokens": 20}\n\n'
                  '{"timestamp": 0.1, "prompt_len": 50, "output_len": 5, '
                  '"prefix_id": 2, "prefix_tokens": 32}\n')
    load = read_trace(jl)
    assert [r.arrival_s for r in load.requests] == [0.1, 0.5]  # sorted by arrival
    assert load.requests[0] == ServeRequest(0.1, 50, 5, 2, 32)
    cs = tmp_path / "t.csv"
    cs.write_text("arrival_s,input_tokens,output_tokens\n0,10,2\n1.5,20,3\n")
    assert read_trace(cs, max_concurrency=4) == ServeLoad(
        (ServeRequest(0.0, 10, 2), ServeRequest(1.5, 20, 3)), 4, name="t.csv")


@pytest.mark.parametrize(("suffix", "text", "message"), [
    (".csv", "arrival_s,input_tokens,output_tokens\n0,10,2\n1,abc,3\n",
     r"t\.csv:3: field 'input_tokens': expected a positive integer, got 'abc'"),
    (".csv", "arrival_s,input_tokens,output_tokens\n0,10\n",
     r"t\.csv:2: fewer values than header fields"),
    (".csv", "arrival_s,input_tokens\n0,10\n", r"t\.csv:2: field 'output_tokens' or "
                                               r"'output_len' is missing"),
    (".jsonl", '{"arrival_s": 0, "input_tokens": 5, "output_tokens": 1}\n{"arrival_s": -1, '
               '"input_tokens": 5, "output_tokens": 1}\n',
     r"t\.jsonl:2: field 'arrival_s': expected seconds >= 0, got -1"),
    (".jsonl", '{"timestamp": "soon", "input_tokens": 5, "output_tokens": 1}\n',
     r"t\.jsonl:1: field 'timestamp': expected seconds >= 0, got 'soon'"),
    (".jsonl", '{"arrival_s": 0, "input_tokens": 5, "output_tokens": 0}\n',
     r"t\.jsonl:1: field 'output_tokens': expected a positive integer, got 0"),
    (".jsonl", '{"arrival_s": 0, "input_tokens": 5.5, "output_tokens": 1}\n',
     r"t\.jsonl:1: field 'input_tokens': expected a positive integer, got 5\.5"),
    (".jsonl", '{"arrival_s": 0, "input_tokens": 5, "output_tokens": 1, '
               '"prefix_tokens": 9, "prefix_id": 1}\n',
     r"t\.jsonl:1: field 'prefix_tokens': 9 is more than the 5 input tokens"),
    (".jsonl", "[1, 2]\n", r"t\.jsonl:1: expected a JSON object, got list"),
    (".jsonl", "{oops\n", r"t\.jsonl:1: not JSON"),
    (".jsonl", "\n", r"t\.jsonl: the trace has no requests"),
])
def test_serve_bad_trace_rows_name_file_line_field(tmp_path: Path, suffix: str, text: str,
                                                   message: str) -> None:
    path = tmp_path / f"t{suffix}"
    path.write_text(text)
    with pytest.raises(TraceError, match=message) as err:
        read_trace(path)
    assert "\n" not in str(err.value)


def _sharegpt(tmp_path: Path) -> Path:
    convs = [
        {"id": "a", "conversations": [{"from": "human", "value": "x" * 40},
                                      {"from": "gpt", "value": "y" * 400}]},
        {"id": "b", "conversations": [{"from": "human", "value": "hi"},
                                      {"from": "gpt", "value": "y" * 40}]},  # prompt < 4
        {"id": "c", "conversations": [{"from": "human", "value": "q"}]},  # one turn
        {"id": "d", "conversations": [{"from": "human", "value": "z", "num_tokens": 900},
                                      {"from": "gpt", "value": "w", "num_tokens": 700}]},
        {"id": "e", "conversations": [{"from": "human", "value": "z" * 80},
                                      {"from": "gpt", "value": "w" * 16}]},
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(convs))
    return path


def test_serve_sharegpt_applies_vllm_filter_and_token_estimate(tmp_path: Path) -> None:
    path = _sharegpt(tmp_path)
    reqs = read_sharegpt(path, 3, seed=0)
    kept = {(r.input_tokens, r.output_tokens) for r in reqs}
    # a: 40 chars -> 10 tokens, 400 -> 100; d: exact counts (900 + 700 <= 2048); e: 20, 4
    assert kept == {(10, 100), (900, 700), (20, 4)}
    order = [0, 1, 3, 4]  # entries with two turns, shuffled as vLLM's random.seed(seed);
    random.Random(0).shuffle(order)  # random.shuffle(data) does
    firsts = [i for i in order if i in (0, 3, 4)]
    expect = {0: (10, 100), 3: (900, 700), 4: (20, 4)}
    assert [(r.input_tokens, r.output_tokens) for r in reqs] == [expect[i] for i in firsts]
    assert len(read_sharegpt(path, 7)) == 7  # topped up by drawing kept ones again
    fixed = read_sharegpt(path, 3, output_len=2)
    assert {r.output_tokens for r in fixed} == {2}
    assert estimate_tokens("abcde") == 2


def test_serve_sharegpt_errors_name_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"conversations": [{"value": "abcdefgh"}, {"value": 3}]}]')
    with pytest.raises(TraceError, match=r"bad\.json: entry 0 conversations\[1\]: field "
                                         r"'value': expected text, got 3"):
        read_sharegpt(bad, 1)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"conversations": [\n}')
    with pytest.raises(TraceError, match=r"broken\.json:2: not JSON"):
        read_sharegpt(broken, 1)
