"""Progress events on stdout (JSON lines for the worker), a readable log on stderr.

torch, the C++ compiler and native libraries may print to stdout too, which would corrupt the JSON stream.
So the events get a private duplicate of the original stdout, and file descriptor 1 is pointed at stderr:
whatever anything else prints ends up in the build log instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from typing import IO, Any, Literal

Phase = Literal["loading", "compiling", "isa_check", "packaging", "verifying", "timing", "done"]

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


class Events:
    """Writes one JSON object per line to the private event stream, flushed at once."""

    def __init__(self, stream: IO[str], start: float | None = None) -> None:
        self._stream = stream
        self.start = time.monotonic() if start is None else start

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 3)

    def emit(self, obj: dict[str, Any]) -> None:
        self._stream.write(dumps(obj) + "\n")
        self._stream.flush()

    def phase(self, phase: Phase, message: str) -> None:
        log.info("[%s] %s", phase, message)
        self.emit({"event": "phase", "phase": phase, "message": message, "elapsedS": self.elapsed()})


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
