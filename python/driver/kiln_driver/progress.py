"""Progress events on stdout (JSON lines for the worker), a readable log on stderr.

Each phase is reported when it starts (`phase`: message, wall-clock `at`) and when it ends (`phase_end`: `at`, `ok`,
and the error code when the build failed in it); the next phase starting ends the one before, `done` ends the
last. The worker turns each start/end pair into a span of the build's trace, so both events carry the W3C
`traceparent` the job gave (the build activity's span), when it gave one.

torch, the C++ compiler and native libraries may print to stdout too, which would corrupt the JSON stream.
So the events get a private duplicate of the original stdout, and file descriptor 1 is pointed at stderr:
whatever anything else prints ends up in the build log instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from typing import IO, Any, Literal

Phase = Literal["loading", "compiling", "isa_check", "packaging", "verifying", "timing", "done"]
PHASES: tuple[Phase, ...] = ("loading", "compiling", "isa_check", "packaging", "verifying", "timing", "done")

# W3C trace context, version 00: https://www.w3.org/TR/trace-context/#traceparent-header (all-zero ids are invalid).
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

log = logging.getLogger("kiln_driver")


def json_safe(value: Any) -> Any:
    """JSON has no NaN/Infinity (Node's JSON.parse rejects them): write them as strings, like torch's schema."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False, separators=(",", ":"))


def valid_traceparent(value: Any) -> str | None:
    """The job's traceparent when it is a well-formed W3C one; tracing never fails a build, so anything else is None."""
    if isinstance(value, str) and _TRACEPARENT.fullmatch(value):
        return value
    return None


class Events:
    """Writes one JSON object per line to the private event stream, flushed at once."""

    def __init__(self, stream: IO[str], start: float | None = None) -> None:
        self._stream = stream
        self.start = time.monotonic() if start is None else start
        self.traceparent: str | None = None
        self._running: tuple[str, float] | None = None  # the phase started last and when (wall clock)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 3)

    def emit(self, obj: dict[str, Any]) -> None:
        self._stream.write(dumps(obj) + "\n")
        self._stream.flush()

    def phase(self, phase: Phase, message: str, *, log_it: bool = True) -> None:
        """Ends the running phase (it went well: the build moved on) and starts this one; `done` starts nothing."""
        if log_it:
            log.info("[%s] %s", phase, message)
        now = time.time()
        self._end_running(now, None)
        self.emit(
            self._traced({"event": "phase", "phase": phase, "message": message, "elapsedS": self.elapsed(), "at": now})
        )
        self._running = None if phase == "done" else (phase, now)

    def finish(self, error_code: str | None = None) -> None:
        """At exit: ends the phase still running, as failed with `error_code` when the build failed in it."""
        self._end_running(time.time(), error_code)

    def _end_running(self, now: float, error_code: str | None) -> None:
        if self._running is None:
            return
        phase, started = self._running
        self._running = None
        end: dict[str, Any] = {
            "event": "phase_end",
            "phase": phase,
            "elapsedS": self.elapsed(),
            "at": max(now, started),
            "ok": error_code is None,
        }
        if error_code is not None:
            end["errorCode"] = error_code
        self.emit(self._traced(end))

    def _traced(self, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "traceparent": self.traceparent} if self.traceparent else event


def take_over_stdout() -> IO[str]:
    """Keep the real stdout for events only; send everything else written to fd 1 to stderr."""
    sys.stdout.flush()
    event_fd = os.dup(1)  # not inherited by child processes (PEP 446)
    os.dup2(2, 1)
    return os.fdopen(event_fd, "w", encoding="utf-8", buffering=1)


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s kiln: %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
