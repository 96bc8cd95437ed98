"""`python -m kiln_driver probe`: what the build worker asks of a Python before it builds with it.

Standard library only, and dispatched before the CLI's imports (`__main__.py`): it must answer on an interpreter
whose torch is missing or broken, and say so. The worker (apps/worker/src/build-runner/host-probe.ts) reads:

- `probe`: line 1 the interpreter's version ("3.11.7"), printed and flushed before torch is imported so that a
  broken torch still tells which interpreter answered; line 2 `torch.__version__`. A torch that cannot be imported
  raises: the traceback goes to stderr and the exit code is 1.
- `probe --subprocess`: one JSON line `{"python", "torch", "error"}`, torch's version as a subprocess of
  `sys.executable` reports it (as inductor's compile workers and the driver's fresh-process verifier start), or the
  last line of why it could not; exit code 0 either way. The worker runs this inside the build sandbox.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SUBPROCESS_TIMEOUT_S = 120


def python_version() -> str:
    return sys.version.split()[0]


def torch_in_subprocess(timeout_s: float = SUBPROCESS_TIMEOUT_S) -> dict[str, str | None]:
    """Imports torch in a fresh `sys.executable` and reports its version, or the last line of why not."""
    out: dict[str, str | None] = {"python": python_version(), "torch": None, "error": None}
    try:
        r = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if r.returncode == 0:
            out["torch"] = r.stdout.strip()
        else:
            out["error"] = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
    except Exception as exc:  # noqa: BLE001 - whatever stopped the subprocess is the answer
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiln_driver probe", description="Report this Python and its torch.")
    parser.add_argument(
        "--subprocess",
        action="store_true",
        help="import torch in a subprocess of sys.executable and print one JSON line (the sandboxed check)",
    )
    args = parser.parse_args(argv)
    if args.subprocess:
        print(json.dumps(torch_in_subprocess()))
        return 0
    print(python_version(), flush=True)
    import torch  # after the version line on purpose (see the module docstring)

    print(torch.__version__)
    return 0
