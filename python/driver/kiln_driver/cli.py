"""Command line: `python -m kiln_driver build ...` (the worker's entry point), `verify`, `sandbox-check` and `vec-isa`
(internal).

Exit codes: 0 success; 3 deterministic failure (error.json says why; do not retry); 1 transient failure or
crash (retry, maybe on another worker); 2 bad command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from .build import ERROR_FILE, run_build
from .errors import EXIT_OK, DriverError, ErrorCode, short_traceback
from .manifest import write_json_atomic
from .progress import Events, log, setup_logging, take_over_stdout


class Cancelled(BaseException):
    """SIGTERM from the worker (the job was cancelled or timed out)."""


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiln_driver", description="Kiln's AOTInductor compile driver.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile, check, verify and package one model for one target")
    build.add_argument("--model", type=Path, required=True, help="the uploaded .pt2 (torch.export.save)")
    build.add_argument("--job", type=Path, required=True, help="JOB.json from the build worker")
    build.add_argument("--out", type=Path, required=True, help="output dir: manifest.json, parts/, error.json")
    build.add_argument("--work-dir", type=Path, help="scratch dir, kept afterwards (default: a temp dir, removed)")
    build.add_argument("--verbose", action="store_true")
    verify = sub.add_parser("verify", help="internal: verify and time an artifact in this fresh process")
    verify.add_argument("--request", type=Path, required=True)
    check = sub.add_parser("sandbox-check", help="internal: report what a job sees inside the build sandbox")
    check.add_argument("--expect", type=Path, help="what to try (JSON from the worker's self-test)")
    check.add_argument("--hang", action="store_true", help="sleep until killed (the worker's timeout check)")
    vec_isa = sub.add_parser("vec-isa", help="internal: inductor's vector-ISA check with a compiler, once per worker")
    vec_isa.add_argument("--cxx", required=True, help="the compiler's absolute path, as builds resolve it")
    return parser


def _write_error(out_dir: Path, err: DriverError) -> None:
    try:
        write_json_atomic(out_dir / ERROR_FILE, err.to_json())
    except OSError as exc:
        log.error("cannot write %s: %s", out_dir / ERROR_FILE, exc)


def _build(args: argparse.Namespace, events: Events) -> int:
    try:
        run_build(args.model, args.job, args.out, events, args.work_dir)
        events.finish()
        return EXIT_OK
    except DriverError as exc:
        err = exc
        log.error("build failed: %s: %s", err.code, err.message)
        if "traceback" in err.details:
            log.error("%s", err.details["traceback"])
    except Cancelled as sig:
        err = DriverError(ErrorCode.CANCELLED, f"cancelled by {sig}")
        log.error("build cancelled (%s)", sig)
    except MemoryError as exc:
        err = DriverError(ErrorCode.COMPILE_OOM, "ran out of memory", {"traceback": short_traceback(exc)})
        log.error("out of memory")
    except Exception as exc:  # noqa: BLE001 - anything unexpected is a crash: transient, retried
        err = DriverError(
            ErrorCode.DRIVER_CRASHED,
            f"{type(exc).__name__}: {exc}",
            {"exceptionType": type(exc).__name__, "traceback": short_traceback(exc)},
        )
        log.exception("driver crashed")
    events.finish(err.code)
    _write_error(args.out, err)
    return err.exit_code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    events = Events(take_over_stdout())
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.command == "verify":
        from .verify import run_child

        return run_child(args.request, events)
    if args.command == "sandbox-check":
        from .sandbox_check import run_check

        return run_check(args.expect, args.hang, events)
    if args.command == "vec-isa":
        return _vec_isa(args.cxx, events)
    return _build(args, events)


def _vec_isa(cxx: str, events: Events) -> int:
    """One `vec-isa` event: the answer of inductor's check (null off x86), made in a cache of its own."""
    import os
    import tempfile

    # A cache of its own, as every build has: a cached probe .so would answer without compiling.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="vec-isa-")
    from .vec_isa import check

    events.emit({"event": "vec-isa", "answer": check(cxx)})
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
