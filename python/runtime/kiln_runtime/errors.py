"""Errors with stable codes. Each class maps to one CLI exit code (README: "Exit codes")."""

from __future__ import annotations

from typing import Any, ClassVar, Final

EXIT_OK: Final = 0
EXIT_INTERNAL: Final = 1
EXIT_USAGE: Final = 2
EXIT_API: Final = 3
EXIT_NETWORK: Final = 4
EXIT_VERIFICATION: Final = 5
EXIT_INCOMPATIBLE: Final = 6
EXIT_LOAD: Final = 7
EXIT_MISMATCH: Final = 8


class ErrorCode:
    """The device runtime's codes: `device` in libs/contracts/src/error-codes.json (tests/test_error_codes.py)."""

    # The API refused the request; `api_code` holds the API's own error.code (UNAUTHENTICATED, NOT_FOUND, ...).
    API_ERROR: Final = "API_ERROR"
    BAD_RESPONSE: Final = "BAD_RESPONSE"
    API_UNREACHABLE: Final = "API_UNREACHABLE"
    DOWNLOAD_FAILED: Final = "DOWNLOAD_FAILED"
    INTEGRITY_FAILED: Final = "INTEGRITY_FAILED"
    SIGNATURE_INVALID: Final = "SIGNATURE_INVALID"
    UNKNOWN_SIGNING_KEY: Final = "UNKNOWN_SIGNING_KEY"
    MANIFEST_INVALID: Final = "MANIFEST_INVALID"
    # The resolver's portable graph has no signed manifest (a server from before signed fallbacks): refused.
    UNSIGNED_FALLBACK: Final = "UNSIGNED_FALLBACK"
    # A signed manifest is for another tenant, model or version than the one resolved (a swapped-in file).
    BINDING_MISMATCH: Final = "BINDING_MISMATCH"
    # The portable graph holds a shape expression or guard outside Kiln's grammars (program_checks.py).
    PROGRAM_REFUSED: Final = "PROGRAM_REFUSED"
    INCOMPATIBLE_ARTIFACT: Final = "INCOMPATIBLE_ARTIFACT"
    TORCH_MISSING: Final = "TORCH_MISSING"
    LOAD_FAILED: Final = "LOAD_FAILED"
    RUN_FAILED: Final = "RUN_FAILED"
    OUTPUT_MISMATCH: Final = "OUTPUT_MISMATCH"
    BAD_FINGERPRINT: Final = "BAD_FINGERPRINT"
    USAGE: Final = "USAGE"
    CACHE_ERROR: Final = "CACHE_ERROR"


class KilnRuntimeError(Exception):
    """Base class: a failure with a stable `code`, a human message and JSON-able details."""

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class UsageError(KilnRuntimeError):
    exit_code = EXIT_USAGE


class ApiError(KilnRuntimeError):
    """The API answered with an error: `status` is the HTTP status, `api_code` the API's `error.code`."""

    exit_code = EXIT_API

    def __init__(self, status: int, api_code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(ErrorCode.API_ERROR, message, {"status": status, "apiCode": api_code, **(details or {})})
        self.status = status
        self.api_code = api_code


class NetworkError(KilnRuntimeError):
    """The API or the storage could not be reached (after retries), or answered a download with an error."""

    exit_code = EXIT_NETWORK


class VerificationError(KilnRuntimeError):
    """Bytes that are not what was signed: bad signature, unknown key, sha256/size mismatch, bad manifest."""

    exit_code = EXIT_VERIFICATION


class IncompatibleArtifactError(KilnRuntimeError):
    """The artifact needs something this host lacks (the reasons say what); nothing was loaded."""

    exit_code = EXIT_INCOMPATIBLE

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(ErrorCode.INCOMPATIBLE_ARTIFACT, message, {"reasons": reasons})
        self.reasons = reasons


class LoadError(KilnRuntimeError):
    """torch is missing, or the verified model failed to load or run."""

    exit_code = EXIT_LOAD


class OutputMismatchError(KilnRuntimeError):
    exit_code = EXIT_MISMATCH
