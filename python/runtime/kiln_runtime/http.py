"""JSON over HTTP to one Kiln API, for the device runtime (client.py) and the Python client (remote_compile.py).

One place for the base URL, the bearer token, the timeouts, the API's error bodies as ApiError with Kiln's code,
and retries of transient failures. The retry bookkeeping is urllib3's `Retry` (attempt counting, exponential
backoff with jitter, Retry-After in seconds or as an HTTP date, capped); only the rule of what is transient is
Kiln's: no answer at all, 408/429/5xx from a proxy or gateway, but never the API's own INTERNAL (a bug, which
repeating will not fix).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.util.retry import Retry

from . import __version__
from .errors import ApiError, ErrorCode, KilnRuntimeError, NetworkError

__all__ = [
    "MAX_RETRY_AFTER_S",
    "TRANSIENT_STATUSES",
    "ApiSession",
    "RetryPolicy",
    "api_error",
    "is_transient_status",
]

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The longest Retry-After waited out; a server asking for longer is retried after this much.
MAX_RETRY_AFTER_S = 60.0


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # attempts in all (downloads: failed attempts in a row, without progress) before giving up
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 30.0  # connect and per-read timeout

    def delay(self, failures: int) -> float:
        """The wait before the next download attempt (download.py resumes its own ranged transfers)."""
        base = min(self.max_backoff_s, self.backoff_s * (2 ** (failures - 1)))
        return base * (0.5 + random.random() / 2)

    def retry(self) -> Retry:
        """urllib3's bookkeeping for one request: `attempts - 1` retries, exponential backoff with jitter, and the
        server's Retry-After (capped at MAX_RETRY_AFTER_S) instead of the backoff where it sends one."""
        return Retry(
            total=max(0, self.attempts - 1),
            redirect=0,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=None,  # every call the runtime makes is idempotent or keyed (Idempotency-Key)
            backoff_factor=self.backoff_s,
            backoff_max=self.max_backoff_s,
            backoff_jitter=self.backoff_s,
            respect_retry_after_header=True,
            retry_after_max=MAX_RETRY_AFTER_S,
            raise_on_status=False,
        )


def api_error(status: int, payload: bytes | str, what: str) -> ApiError:
    """The API's error body (`{"error": {"code", "message", "details"}}`) as ApiError; a proxy's page: HTTP_<status>."""
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    try:
        err = json.loads(text)["error"]
        details = err.get("details") if isinstance(err.get("details"), dict) else None
        return ApiError(status, str(err["code"]), str(err.get("message") or f"HTTP {status}"), details)
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(status, f"HTTP_{status}", f"{what}: HTTP {status} {text[:200]}".rstrip())


class ApiSession:
    """Calls one Kiln API with one bearer token (an API key or a device token), keeping connections alive."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        retry: RetryPolicy | None = None,
        missing_token: str = "no API token",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self.missing_token = missing_token
        self._pool = urllib3.PoolManager()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout_s: float | None = None,
    ) -> tuple[int, Any]:
        """One API call: JSON in and out; returns (status, the parsed answer). Raises ApiError with the API's code,
        NetworkError (API_UNREACHABLE) when no answer came after the retries, or BAD_RESPONSE for a non-JSON answer."""
        url = self.base_url + path
        all_headers = {"Accept": "application/json", "User-Agent": f"kiln-runtime/{__version__}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if auth:
            if not self.token:
                raise ApiError(401, "UNAUTHENTICATED", self.missing_token)
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        seconds = timeout_s or self.retry.timeout_s
        timeout = urllib3.Timeout(connect=min(seconds, self.retry.timeout_s), read=seconds)
        retry = self.retry.retry()
        while True:
            try:
                res = self._pool.request(
                    method, url, body=data, headers=all_headers, timeout=timeout, retries=False, redirect=False
                )
            except HTTPError as exc:  # no answer: refused, reset, timed out, DNS
                try:
                    retry = retry.increment(method, url, error=exc)
                except MaxRetryError:
                    raise NetworkError(
                        ErrorCode.API_UNREACHABLE,
                        f"cannot reach the Kiln API at {self.base_url} ({method} {path}: {exc}) "
                        f"after {len(retry.history) + 1} attempts",
                        {"apiUrl": self.base_url},
                    ) from exc
                retry.sleep()
                continue
            if res.status >= 400:
                error = api_error(res.status, res.data, f"{method} {path}")
                if error.api_code != "INTERNAL" and retry.is_retry(method, res.status, "Retry-After" in res.headers):
                    try:
                        retry = retry.increment(method, url, response=res)
                    except MaxRetryError:
                        raise error from None
                    retry.sleep(res)
                    continue
                raise error
            try:
                return res.status, json.loads(res.data or b"null")
            except ValueError as exc:
                raise KilnRuntimeError(ErrorCode.BAD_RESPONSE, f"{method} {path}: the answer is not JSON") from exc
