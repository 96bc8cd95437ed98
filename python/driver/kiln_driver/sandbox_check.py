"""`python -m kiln_driver sandbox-check`: what a job sees from inside the build sandbox.

The build worker runs this at start, in the sandbox exactly as it runs builds (same interpreter, same job folder
layout, same command chain), and polls no build queue unless every wall holds (apps/worker/src/build-runner/
sandbox-self-test.ts judges). This module only OBSERVES and reports, one JSON line on stdout; it never decides.
It tries what a hostile job would try: who am I, which capabilities, which namespaces, can I reach the host's
services, which files exist, can I write outside my folders, do the memory and pids limits bite.

Standard library only (torch is imported in a subprocess, the way inductor's compile workers start).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .progress import Events

NAMESPACES = ("net", "pid", "mnt", "ipc", "uts", "user", "cgroup")
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")

_TORCH = (
    "import json, torch; print(json.dumps({'torch': torch.__version__, "
    "'cuda': torch.cuda.is_available() and torch.cuda.device_count()}))"
)


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{type(exc).__name__}: {exc}"


def identity() -> dict[str, Any]:
    status: dict[str, str] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            status[key] = value.strip()
    setuid: str
    try:
        os.setuid(0)
        setuid = "ok"
    except OSError as exc:
        setuid = _err(exc)
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": os.getgroups(),
        "status": status,
        "setuid0": setuid,
        "rlimits": {
            "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        },
    }


def namespaces() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for ns in NAMESPACES:
        try:
            out[ns] = os.readlink(f"/proc/self/ns/{ns}")
        except OSError as exc:
            out[ns] = f"error {_err(exc)}"
    return out


def connections(targets: list[dict[str, Any]], unix_sockets: list[str]) -> list[dict[str, Any]]:
    results = []
    for t in targets:
        family = socket.AF_INET6 if ":" in t["host"] else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((t["host"], t["port"]))
            results.append({**t, "connected": True, "error": None})
        except OSError as exc:
            results.append({**t, "connected": False, "error": _err(exc)})
        finally:
            s.close()
    for path in unix_sockets:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect(path)
            results.append({"path": path, "connected": True, "error": None})
        except OSError as exc:
            results.append({"path": path, "connected": False, "error": _err(exc)})
        finally:
            s.close()
    return results


def processes() -> list[dict[str, Any]]:
    seen = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError as exc:
            cmdline = f"error {_err(exc)}"
        seen.append({"pid": int(entry), "cmdline": cmdline.strip()[:300]})
    return seen


def files(listings: list[str], hidden: list[str], writes: list[str]) -> dict[str, Any]:
    listed: dict[str, Any] = {}
    for d in listings:
        try:
            listed[d] = sorted(os.listdir(d))
        except OSError as exc:
            listed[d] = f"error {_err(exc)}"
    found_hidden = {}
    for p in hidden:
        try:
            os.lstat(p)
            found_hidden[p] = "exists"
        except OSError as exc:
            found_hidden[p] = _err(exc)
    written = {}
    for d in writes:
        probe = os.path.join(d, f".kiln-write-probe-{os.getpid()}")
        try:
            with open(probe, "x") as f:
                f.write("x")
            os.unlink(probe)
            written[d] = "ok"
        except OSError as exc:
            written[d] = _err(exc)
    return {"listings": listed, "hidden": found_hidden, "writes": written}


def memory_hog(nbytes: int) -> dict[str, Any]:
    """A child that touches `nbytes` of memory: under the job's memory limit the kernel kills it (SIGKILL)."""
    code = (
        "import sys\n"
        f"n = {nbytes}\n"
        "blocks = []\n"
        "while n > 0:\n"
        "    b = bytearray(min(n, 16 << 20)); b[::4096] = b'x' * len(b[::4096]); blocks.append(b); n -= len(b)\n"
        "print('survived', flush=True)\n"
    )
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        return {"returncode": p.returncode, "stdout": p.stdout[-200:], "stderr": p.stderr[-500:]}
    except subprocess.TimeoutExpired:
        return {"returncode": None, "stdout": "", "stderr": "timed out"}


def fork_bomb(attempts: int) -> dict[str, Any]:
    """Forks up to `attempts` children (each waits to be killed): the pids limit must refuse some."""
    children: list[int] = []
    error = None
    for _ in range(attempts):
        try:
            pid = os.fork()
        except OSError as exc:
            error = _err(exc)
            break
        if pid == 0:  # the child waits for its SIGKILL
            signal.pause()
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    return {"forked": len(children), "error": error}


def torch_in_subprocess() -> dict[str, Any]:
    try:
        p = subprocess.run([sys.executable, "-c", _TORCH], capture_output=True, text=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        return {"torch": None, "cuda": None, "error": "importing torch timed out"}
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or [f"exit code {p.returncode}"]
        return {"torch": None, "cuda": None, "error": lines[-1]}
    found = json.loads(p.stdout.strip().splitlines()[-1])
    return {"torch": found["torch"], "cuda": found["cuda"], "error": None}


def gpu() -> dict[str, Any]:
    out: dict[str, Any] = {"devices": sorted(d for d in os.listdir("/dev") if d.startswith("nvidia"))}
    out["nvidiactl"] = os.access("/dev/nvidiactl", os.R_OK | os.W_OK)
    try:
        out["driver"] = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except OSError as exc:
        out["driver"] = f"error {_err(exc)}"
    return out


def run_check(expect_path: Path, hang: bool, events: Events) -> int:
    if hang:  # the timeout check: the worker must kill this
        time.sleep(3600)
        return 0
    expect = json.loads(expect_path.read_text(encoding="utf-8"))
    if expect.get("ownerProbe"):  # the worker looks at who owns it on the host
        Path(expect["ownerProbe"]).write_text("written inside the sandbox\n")
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "env": sorted(os.environ),
        "identity": identity(),
        "namespaces": namespaces(),
        "connections": connections(expect.get("connect", []), expect.get("unixSockets", [])),
        "processes": processes(),
        "files": files(expect.get("list", []), expect.get("hidden", []), expect.get("writes", [])),
        "pids": fork_bomb(int(expect.get("forkAttempts", 0))) if expect.get("forkAttempts") else None,
        "memory": memory_hog(int(expect["memoryHogBytes"])) if expect.get("memoryHogBytes") else None,
        "torch": torch_in_subprocess() if expect.get("importTorch") else None,
        "gpu": gpu() if expect.get("gpu") else None,
    }
    events.emit({"event": "sandbox-check", "report": report})
    return 0
