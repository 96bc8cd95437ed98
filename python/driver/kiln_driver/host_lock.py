"""The build host's lock, shared by every build on one host (KILN_TIMING_LOCK: a file the worker creates).

Compiling takes it shared, timing takes it exclusive: a build times its artifact only while no other build on
the host is compiling (or timing), and the next compiles wait for that measurement to end. Build hosts run
several builds side by side, and on a small host the compiler of one build would otherwise land in the middle
of another's timing loop: the speedups the resolver ranks artifacts by would measure the neighbours.

Every wait is BOUNDED (`wait_s`, the job's `timing.lockWaitSeconds`): another build — a slow model, or a hostile
one that takes the lock and never lets go — must never stall this one. When the wait runs out the build goes on
without the lock: a compile simply compiles, a timing measures anyway and the manifest says it was measured
under contention (`timing.lock: "contended"`), so a noisy number is labelled rather than a build stalled or its
artifact left unranked. The lock file is read-only inside the sandbox; flock needs nothing more.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from typing import Literal, TypedDict

from .progress import log

DEFAULT_WAIT_S = 120.0

LockOutcome = Literal["exclusive", "shared", "contended", "none"]


class LockState(TypedDict):
    # exclusive/shared: held as asked; contended: the wait ran out, going on without it; none: no lock on this host
    lock: LockOutcome
    waitedS: float


@contextlib.contextmanager
def host_lock(*, exclusive: bool, wait_s: float = DEFAULT_WAIT_S) -> Iterator[LockState]:
    state: LockState = {"lock": "none", "waitedS": 0.0}
    path = os.environ.get("KILN_TIMING_LOCK")
    if not path:
        yield state
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        log.warning("host lock %s unavailable (%s); going on without it", path, exc)
        yield state
        return
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        start = time.monotonic()
        pause = 0.01
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                state["lock"] = "exclusive" if exclusive else "shared"
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= wait_s:
                    state["lock"] = "contended"
                    log.warning(
                        "host lock %s: another build still holds it after %.1f s; going on without it (%s)",
                        path,
                        waited,
                        "timing under contention" if exclusive else "compiling while another build times",
                    )
                    break
                time.sleep(min(pause, max(0.0, wait_s - waited)))
                pause = min(pause * 2, 0.5)
        state["waitedS"] = round(time.monotonic() - start, 3)
        yield state
    finally:
        os.close(fd)
