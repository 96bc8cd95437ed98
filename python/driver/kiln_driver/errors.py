"""Error codes the driver reports, and how exceptions from torch map onto them.

The codes and which of them are transient are those marked `driver` in libs/contracts/src/error-codes.json, the
one definition of Kiln's codes (tests/test_errors.py checks this file against it). Exit code 3 tells the worker a
failure is deterministic (do not retry); any other non-zero exit is transient (retry, possibly on another worker).
"""

from __future__ import annotations

import functools
import re
import site
import sysconfig
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_TRANSIENT: Final = 1
EXIT_DETERMINISTIC: Final = 3


class ErrorCode:
    UNSUPPORTED_OP: Final = "UNSUPPORTED_OP"
    INVALID_MODEL: Final = "INVALID_MODEL"
    COMPILE_FAILED: Final = "COMPILE_FAILED"
    ISA_CHECK_FAILED: Final = "ISA_CHECK_FAILED"
    NUMERIC_MISMATCH: Final = "NUMERIC_MISMATCH"
    LOAD_FAILED: Final = "LOAD_FAILED"
    COMPILE_OOM: Final = "COMPILE_OOM"
    DRIVER_CRASHED: Final = "DRIVER_CRASHED"
    CANCELLED: Final = "CANCELLED"
    INTERNAL: Final = "INTERNAL"
    # This worker lacks the recipe's toolchain or hardware; another may have it.
    TOOLCHAIN_MISMATCH: Final = "TOOLCHAIN_MISMATCH"
    # The artifact refuses input sizes the program declares (see input_checks.py).
    INPUT_RANGE_NARROWED: Final = "INPUT_RANGE_NARROWED"
    # A reduced-precision recipe (bf16/fp16) cannot convert this program (see precision.py).
    PRECISION_UNSUPPORTED: Final = "PRECISION_UNSUPPORTED"


_TRANSIENT_CODES: Final = frozenset({ErrorCode.DRIVER_CRASHED, ErrorCode.CANCELLED, ErrorCode.TOOLCHAIN_MISMATCH})


class DriverError(Exception):
    """A failure with a stable code; the CLI turns it into error.json and the exit code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    @property
    def exit_code(self) -> int:
        return EXIT_TRANSIENT if self.code in _TRANSIENT_CODES else EXIT_DETERMINISTIC

    def to_json(self) -> dict[str, Any]:
        """What error.json holds, and so what the tenant reads: without the worker's file paths."""
        return {"code": self.code, "message": scrub_paths(self.message), "details": scrub_paths(self.details)}


# An absolute path (or ~/...) of at least two components, where it starts a word: after a space, a quote, "=",
# "(", or glued to a compiler flag (-I/…, -L/…). Not inside a relative path or a URL ("https://…": the second
# slash follows a slash), and the first component starts like a name, so "(s0)/2/3" in a symbolic
# expression is left alone.
_ABS_PATH: Final = re.compile(r"(?:(?<![\w.~/\\])|(?<=[\s\"'=]-[A-Za-z]))~?/[A-Za-z_.][\w.+@%~-]*(?:/[\w.+@%~-]+)+/?")


@functools.cache
def _public_roots() -> tuple[str, ...]:
    """Folders whose contents are named relative to them: the installed packages (torch/_inductor/…), so a
    traceback still says which torch file failed, and Kiln's own packages (kiln_driver/compile.py)."""
    roots = {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    roots.add(str(Path(__file__).resolve().parent.parent))  # kiln_driver's folder (a source checkout)
    try:
        import kiln_runtime

        roots.add(str(Path(kiln_runtime.__file__).resolve().parent.parent))
    except ImportError:
        pass
    # Longest first: a venv's site-packages before a source checkout that contains the venv.
    return tuple(sorted((r.rstrip("/") for r in roots if r and r != "/"), key=len, reverse=True))


_PACKAGES_DIR: Final = re.compile(r".*/(?:site|dist)-packages/")


def _relative_name(path: str) -> str:
    # Any interpreter's installed packages (this one's, or the one that ran the verifier): below that folder.
    if (m := _PACKAGES_DIR.match(path)) is not None and len(path) > m.end():
        return path[m.end() :]
    for root in _public_roots():
        if path.startswith(root + "/") and len(path) > len(root) + 1:
            return path[len(root) + 1 :]
    # Anything else is the worker's own (job folder, TMPDIR, inductor cache, venv, compiler): its name only.
    return path.rstrip("/").rsplit("/", 1)[-1]


def scrub_paths(value: Any) -> Any:
    """`value` (a string, or dicts and lists of them) without absolute file paths of this machine.

    Tenants read error messages and details; the paths in them (job folders, TMPDIR, the inductor cache, the
    venv, site-packages) describe the worker, not their model. A path under site-packages or Kiln's packages
    keeps its part below that folder (torch/_inductor/codegen/cpp.py), any other keeps its last component
    (the generated file's name: cqko…wrapper.cpp:855:38 still points at the line the compiler refused).
    """
    if isinstance(value, str):
        return _ABS_PATH.sub(lambda m: _relative_name(m.group(0)), value)
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_paths(v) for v in value]
    return value


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (inductor's `inner_exception`), and its causes, without cycles."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "inner_exception", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def root_cause(exc: BaseException) -> BaseException:
    """Follow what the exception wraps down to the first thing that went wrong."""
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = getattr(current, "inner_exception", None) or current.__cause__ or current.__context__
        if not isinstance(nxt, BaseException):
            break
        current = nxt
    return current


def short_traceback(exc: BaseException, limit_chars: int = 4000) -> str:
    """The tail of the formatted traceback: where it failed and why, not the 200 frames above it.

    Paths are scrubbed before the cut, so that the cut never leaves the tail of a worker's path behind."""
    text = scrub_paths("".join(traceback.format_exception(exc)))
    return text if len(text) <= limit_chars else "…" + text[-limit_chars:]


def _type_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


_OOM_MARKERS: Final = (
    "Killed signal terminated program",
    "virtual memory exhausted",
    "out of memory",
    "Cannot allocate memory",
    "std::bad_alloc",
)
_UNRESOLVED_OP = re.compile(r"failed to resolve (\S+) to an operator", re.IGNORECASE)


def _clip(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def compiler_errors(output: str, limit: int = 4000) -> str:
    """The `error:` lines of a compiler's output (with the two lines after each), not the include chatter."""
    lines = output.splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if "error:" in line or "fatal error" in line:
            keep.extend(lines[i : i + 3])
    return _clip("\n".join(keep) if keep else output, limit)


def classify_compile_error(exc: BaseException) -> DriverError:
    """Map an exception raised by `aoti_compile_and_package` to a build error code."""
    chain = list(exception_chain(exc))
    names = set().union(*(_type_names(e) for e in chain))
    text = "\n".join(str(e) for e in chain)
    root = root_cause(exc)
    details: dict[str, Any] = {"exceptionType": type(exc).__name__, "rootExceptionType": type(root).__name__}

    if any(isinstance(e, MemoryError) for e in chain) or (
        "CppCompileError" in names and any(m in text for m in _OOM_MARKERS)
    ):
        return DriverError(ErrorCode.COMPILE_OOM, "the compile ran out of memory", details)
    if "InvalidCxxCompiler" in names:
        return DriverError(ErrorCode.TOOLCHAIN_MISMATCH, _clip(str(root)), details)
    for e in chain:
        if "CppCompileError" in _type_names(e):
            details["compilerErrors"] = compiler_errors(str(getattr(e, "output", "")))
            details["command"] = _clip(" ".join(getattr(e, "cmd", []) or []), 2000)
            first = details["compilerErrors"].splitlines()[:1]
            message = "the C++ compiler rejected the generated code" + (f": {_clip(first[0], 300)}" if first else "")
            return DriverError(ErrorCode.COMPILE_FAILED, message, details)
    for e in chain:
        if "OperatorIssue" in _type_names(e):  # LoweringException, MissingOperatorWith(out)Decomp
            target = re.search(r"target: (\S+)", str(e))
            if target:
                details["op"] = target.group(1)
            return DriverError(
                ErrorCode.UNSUPPORTED_OP, _clip(f"inductor cannot lower an operator: {str(e).strip()}"), details
            )
    if (m := _UNRESOLVED_OP.search(text)) is not None:
        details["op"] = m.group(1)
        return DriverError(ErrorCode.UNSUPPORTED_OP, f"operator {m.group(1)} is not known to this torch", details)
    if isinstance(root, OSError) and not names & {"CppCompileError"}:
        # Disk full, permissions, a vanished temp dir: the host, not the model.
        return DriverError(ErrorCode.DRIVER_CRASHED, _clip(f"{type(root).__name__}: {root}"), details)
    # Anything else inductor raises for this graph fails again on every retry with the same toolchain.
    details["traceback"] = short_traceback(exc)
    return DriverError(ErrorCode.COMPILE_FAILED, _clip(f"{type(root).__name__}: {root}", 2000), details)


def classify_load_error(exc: BaseException) -> DriverError:
    """Map an exception raised while deserializing the (neutralized) `.pt2`."""
    chain = list(exception_chain(exc))
    text = "\n".join(str(e) for e in chain)
    details: dict[str, Any] = {"exceptionType": type(exc).__name__, "traceback": short_traceback(exc)}
    if any(isinstance(e, MemoryError) for e in chain):
        return DriverError(ErrorCode.COMPILE_OOM, "ran out of memory loading the model", details)
    if (m := _UNRESOLVED_OP.search(text)) is not None:
        details["op"] = m.group(1)
        return DriverError(ErrorCode.UNSUPPORTED_OP, f"operator {m.group(1)} is not known to this torch", details)
    return DriverError(
        ErrorCode.INVALID_MODEL, _clip(f"torch cannot load the model: {type(exc).__name__}: {exc}"), details
    )
