"""Phase events: each phase's start and end with wall-clock times and the job's traceparent (the worker's spans)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kiln_driver.progress import Events, valid_traceparent

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_phase_is_ended_by_the_next_and_done_ends_the_last() -> None:
    out = io.StringIO()
    events = Events(out)
    events.traceparent = TRACEPARENT
    events.phase("loading", "l")
    events.phase("compiling", "c")
    events.phase("done", "d")
    events.finish()  # nothing is running any more: no second end
    got = _events(out)
    assert [(e["event"], e["phase"]) for e in got] == [
        ("phase", "loading"),
        ("phase_end", "loading"),
        ("phase", "compiling"),
        ("phase_end", "compiling"),
        ("phase", "done"),
    ]
    assert all(e["traceparent"] == TRACEPARENT for e in got)
    assert all(e["ok"] is True for e in got if e["event"] == "phase_end")
    times = [e["at"] for e in got]
    assert times == sorted(times)
    # The end of a phase is no earlier than its start (wall clock, seconds since the epoch).
    assert got[1]["at"] >= got[0]["at"] > 1.6e9


def test_a_failure_ends_the_running_phase_with_its_code() -> None:
    out = io.StringIO()
    events = Events(out)
    events.phase("loading", "l")
    events.phase("compiling", "c")
    events.finish("COMPILE_FAILED")
    last = _events(out)[-1]
    assert last["event"] == "phase_end" and last["phase"] == "compiling"
    assert last["ok"] is False and last["errorCode"] == "COMPILE_FAILED"
    assert "traceparent" not in last  # the job gave none: events say nothing about a trace


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        TRACEPARENT + "\n",
    ],
)
def test_only_a_well_formed_traceparent_is_kept(value: Any) -> None:
    assert valid_traceparent(value) is None


def test_a_well_formed_traceparent_is_kept() -> None:
    assert valid_traceparent(TRACEPARENT) == TRACEPARENT
