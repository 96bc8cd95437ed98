"""The build host's lock, shared by every build on one host (KILN_TIMING_LOCK: a file the worker creates).

Compiling takes it shared, timing takes it exclusive: a build times its artifact only while no other build on
the host is compiling (or timing), and the next compiles wait for that measurement to end. Build hosts run
several builds side by side, and on a small host the compiler of one build would otherwise land in the middle
of another's timing loop: the speedups the resolver ranks artifacts by would measure the neighbours.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from .progress import log


@contextlib.contextmanager
def host_lock(*, exclusive: bool) -> Iterator[None]:
    path = os.environ.get("KILN_TIMING_LOCK")
    if not path:
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        log.warning("host lock %s unavailable (%s); going on without it", path, exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
