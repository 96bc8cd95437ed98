"""The one HTTP module of the runtime and the Python client, against a real local http.server: which failures are
retried, how long it waits (Retry-After, capped), what reaches the caller."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3.util.retry

from kiln_runtime.errors import ApiError, ErrorCode, KilnRuntimeError, NetworkError
from kiln_runtime.http import MAX_RETRY_AFTER_S, ApiSession, RetryPolicy

POLICY = RetryPolicy(attempts=4, backoff_s=0.0, max_backoff_s=0.0, timeout_s=5)


@dataclass
class Script:
    """The answers the server gives, in order (the last one repeats), and what it was asked."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.script.bodies.append(self.rfile.read(length))
        self.script.seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        n = len(self.script.seen) - 1
        status, headers, body = self.script.answers[min(n, len(self.script.answers) - 1)]
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"script": script}))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits urllib3's Retry asks for, recorded instead of slept (the test checks them, not the clock)."""
    waits: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", waits.append)
    return waits


def error_body(code: str, message: str = "m") -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": {"x": 1}}}).encode()


def test_a_transient_answer_is_retried_after_the_servers_retry_after(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    url, script = server
    script.answers = [
        (503, {"Retry-After": "7"}, error_body("SERVICE_UNAVAILABLE")),
        (429, {"Retry-After": "3600"}, error_body("QUOTA_EXCEEDED")),
        (200, {}, b'{"ok": true}'),
    ]
    session = ApiSession(url + "/", "kiln_key", retry=POLICY)
    assert session.call("POST", "/v1/resolve", {"a": 1}) == (200, {"ok": True})
    assert len(script.seen) == 3
    assert sleeps == [7.0, MAX_RETRY_AFTER_S]  # the server's wait, capped
    assert all(h["authorization"] == "Bearer kiln_key" for h in script.seen)
    assert script.seen[0][":path"] == "/v1/resolve"
    assert script.seen[0]["user-agent"].startswith("kiln-runtime/")
    assert json.loads(script.bodies[0]) == {"a": 1}


def test_retries_end_with_the_last_answer_as_an_api_error(server: tuple[str, Script], sleeps: list[float]) -> None:
    url, script = server
    script.answers = [(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>")]
    with pytest.raises(ApiError) as caught:
        ApiSession(url, "k", retry=POLICY).call("GET", "/v1/models")
    assert (caught.value.status, caught.value.api_code) == (502, "HTTP_502")
    assert "bad gateway" in caught.value.message
    assert len(script.seen) == POLICY.attempts


def test_the_apis_own_errors_and_internal_are_not_retried(server: tuple[str, Script], sleeps: list[float]) -> None:
    url, script = server
    session = ApiSession(url, "k", retry=POLICY)
    script.answers = [(404, {}, error_body("NOT_FOUND", "no such model"))]
    with pytest.raises(ApiError) as caught:
        session.call("GET", "/v1/models/x")
    assert (caught.value.status, caught.value.api_code, caught.value.message) == (404, "NOT_FOUND", "no such model")
    assert caught.value.details["x"] == 1
    script.seen.clear()
    script.answers = [(500, {}, error_body("INTERNAL"))]
    with pytest.raises(ApiError) as caught:
        session.call("GET", "/v1/models")
    assert caught.value.api_code == "INTERNAL"
    assert len(script.seen) == 1 and sleeps == []


def test_no_answer_at_all_is_retried_then_api_unreachable(sleeps: list[float]) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError) as caught:
        ApiSession(f"http://127.0.0.1:{port}", "k", retry=POLICY).call("GET", "/v1/models")
    assert caught.value.code == ErrorCode.API_UNREACHABLE
    assert f"after {POLICY.attempts} attempts" in caught.value.message
    assert caught.value.details == {"apiUrl": f"http://127.0.0.1:{port}"}


def test_backoff_grows_between_retries_without_retry_after(server: tuple[str, Script], sleeps: list[float]) -> None:
    url, script = server
    script.answers = [(504, {}, b""), (504, {}, b""), (504, {}, b""), (200, {}, b"[]")]
    policy = RetryPolicy(attempts=4, backoff_s=1.0, max_backoff_s=3.0, timeout_s=5)
    assert ApiSession(url, "k", retry=policy).call("GET", "/v1/models") == (200, [])
    # urllib3: the first retry at once, then backoff_s * 2^(n-1) plus up to backoff_s of jitter, capped.
    assert len(sleeps) == 2 and 2.0 <= sleeps[0] <= 3.0 and sleeps[1] == 3.0


def test_no_token_and_no_json(server: tuple[str, Script], sleeps: list[float]) -> None:
    url, script = server
    with pytest.raises(ApiError) as caught:
        ApiSession(url, None, missing_token="set KILN_DEVICE_TOKEN").call("GET", "/v1/models")
    assert (caught.value.api_code, caught.value.message) == ("UNAUTHENTICATED", "set KILN_DEVICE_TOKEN")
    assert script.seen == []
    script.answers = [(200, {"Content-Type": "text/html"}, b"<html>a login page</html>")]
    with pytest.raises(KilnRuntimeError) as bad:
        ApiSession(url, "k", retry=POLICY).call("GET", "/v1/signing-keys", auth=False)
    assert bad.value.code == ErrorCode.BAD_RESPONSE
    assert "authorization" not in script.seen[0]
