"""compile_remote(): compile a model with Kiln from Python code or CI, for models of any size.

    from kiln_runtime.remote_compile import compile_remote

    result = compile_remote(exported_program, model="resnet-edge", targets=["linux-x86_64-v3"],
                            api_url="http://kiln:3000", api_key=key)
    for artifact in result.artifacts:
        print(artifact.target_id, artifact.speedup)

The same presigned multipart protocol as the TypeScript SDK (docs/sdk.md): the file is hashed once (a sha256
per part and one for the whole file), parts the server does not have yet are PUT straight to S3 in parallel
(each URL is signed with its part's sha256, which S3 verifies), the upload is completed with the file's
sha256 (the API checks it while validating the archive), then the compilation is started and awaited.
Memory stays flat: parts are streamed from the file in 1 MiB chunks. An ExportedProgram is first saved to a
temporary .pt2 with torch.export.save. The same `idempotency_key` resumes an interrupted upload and never
starts a second compilation (the API sees `<key>/upload` and `<key>/compile`, like the TypeScript SDK).

Standard library plus tqdm (progress bar); torch only when given an ExportedProgram.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urllib3.exceptions import MaxRetryError

from .errors import ApiError, KilnRuntimeError, UsageError
from .http import ApiSession, RetryPolicy, is_transient_status

__all__ = [
    "CompileResult",
    "CompiledArtifact",
    "PartRange",
    "StorageError",
    "TargetResult",
    "compile_remote",
    "hash_parts",
    "part_ranges",
]

_CHUNK = 1 << 20
_TERMINAL = frozenset({"succeeded", "partial", "failed", "cancelled"})
_URL_BATCH = 32
# The API calls and the part PUTs: 6 retries, 0.25 s doubling up to 15 s, and a long read timeout (the SDK's).
_RETRY = RetryPolicy(attempts=7, backoff_s=0.25, max_backoff_s=15.0, timeout_s=120.0)


class StorageError(KilnRuntimeError):
    """S3 refused a part upload; `s3_code` is S3's code (BadDigest: the bytes do not match their sha256)."""

    exit_code = 4

    def __init__(self, status: int, s3_code: str, message: str) -> None:
        super().__init__("UPLOAD_FAILED", message, {"status": status, "s3Code": s3_code})
        self.status = status
        self.s3_code = s3_code


@dataclass(frozen=True)
class CompiledArtifact:
    id: str
    target_id: str
    size_bytes: int
    speedup: float
    eager_ms: float
    compiled_ms: float
    max_abs_error: float
    requires: dict[str, Any]
    parts: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)

    @staticmethod
    def from_api(a: dict[str, Any]) -> CompiledArtifact:
        timing = a.get("timing") or {}
        return CompiledArtifact(
            id=a["id"],
            target_id=a["targetId"],
            size_bytes=int(a["sizeBytes"]),
            speedup=float(timing.get("speedup", 0.0)),
            eager_ms=float(timing.get("eagerMs", 0.0)),
            compiled_ms=float(timing.get("compiledMs", 0.0)),
            max_abs_error=float((a.get("verification") or {}).get("maxAbsError", 0.0)),
            requires=dict(a.get("requires") or {}),
            parts=list(a.get("parts") or []),
            raw=a,
        )


@dataclass(frozen=True)
class TargetResult:
    target_id: str
    status: str
    error_code: str | None
    error_message: str | None
    artifact: CompiledArtifact | None


@dataclass(frozen=True)
class CompileResult:
    ok: bool
    status: str
    model_id: str
    model_name: str
    version_id: str
    version_number: int
    compilation_id: str
    targets: list[TargetResult]
    artifacts: list[CompiledArtifact]
    upload_id: str
    idempotency_key: str
    resumed_upload: bool


@dataclass(frozen=True)
class PartRange:
    part_number: int
    offset: int
    size: int


def part_ranges(size: int, part_size: int, part_count: int) -> list[PartRange]:
    """The byte ranges of an upload's parts (the server decides part_size and part_count)."""
    if part_count != max(1, -(-size // part_size)):
        raise ValueError(f"{part_count} parts of {part_size} bytes do not tile {size} bytes")
    return [
        PartRange(n, (n - 1) * part_size, min(part_size, size - (n - 1) * part_size)) for n in range(1, part_count + 1)
    ]


def hash_parts(path: Path, ranges: list[PartRange]) -> tuple[list[str], str]:
    """One sequential pass: base64 sha256 of each part, hex sha256 of the whole file."""
    whole = hashlib.sha256()
    digests: list[str] = []
    with path.open("rb") as f:
        for r in ranges:
            part = hashlib.sha256()
            f.seek(r.offset)
            left = r.size
            while left:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise OSError(f"{path} ended early (changed while uploading?)")
                part.update(chunk)
                whole.update(chunk)
                left -= len(chunk)
            digests.append(base64.b64encode(part.digest()).decode())
    return digests, whole.hexdigest()


def _s3_error(text: str) -> tuple[str, str]:
    code = re.search(r"<Code>([^<]+)</Code>", text)
    message = re.search(r"<Message>([^<]+)</Message>", text)
    return (code.group(1) if code else "", message.group(1) if message else text[:200])


def _put_part(url: str, headers: dict[str, str], path: Path, r: PartRange, on_bytes: Callable[[int], None]) -> None:
    """Streams one part from the file to its presigned URL (1 MiB at a time)."""
    parsed = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parsed.netloc, timeout=300)
    sent = 0
    try:
        conn.putrequest("PUT", f"{parsed.path}?{parsed.query}", skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        with path.open("rb") as f:
            f.seek(r.offset)
            left = r.size
            while left:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise OSError(f"{path} ended early (changed while uploading?)")
                conn.send(chunk)
                sent += len(chunk)
                on_bytes(len(chunk))
                left -= len(chunk)
        res = conn.getresponse()
        text = res.read().decode(errors="replace")
    except OSError:
        on_bytes(-sent)
        raise
    finally:
        conn.close()
    if res.status >= 300:
        on_bytes(-sent)
        code, message = _s3_error(text)
        hint = " (the bytes do not match their sha256: did the file change?)" if code == "BadDigest" else ""
        raise StorageError(
            res.status, code or f"HTTP_{res.status}", f"S3 refused part {r.part_number}: {code} {message}{hint}"
        )


def _tqdm(total: int, enabled: bool) -> Any:
    from tqdm import tqdm  # a dependency of kiln-runtime

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload", disable=not enabled)


class _Uploader:
    def __init__(self, api: ApiSession, path: Path, concurrency: int, progress: bool) -> None:
        self.api = api
        self.path = path
        self.concurrency = max(1, concurrency)
        self.progress = progress

    def run(self, model_id: str, filename: str, part_size: int | None, key: str) -> tuple[dict[str, Any], str, bool]:
        size = self.path.stat().st_size
        body: dict[str, Any] = {"filename": filename, "sizeBytes": size}
        if part_size:
            body["partSizeBytes"] = part_size
        status, upload = self.api.call("POST", f"/v1/models/{model_id}/uploads", body, headers={"Idempotency-Key": key})
        upload_id = upload["uploadId"]
        state = self.api.call("GET", f"/v1/uploads/{upload_id}")[1] if status == 200 else {**upload, "parts": []}
        resumed = status == 200
        if state["status"] == "completed" and state.get("version"):
            return state["version"], upload_id, resumed
        if state["status"] in ("failed", "aborted", "expired"):
            err = state.get("error") or {}
            raise ApiError(
                410 if state["status"] != "failed" else 422,
                err.get("code", "UPLOAD_EXPIRED"),
                err.get("message", f"upload {state['status']}"),
            )
        if state["status"] == "completing":
            return self._await_completion(upload_id), upload_id, resumed

        ranges = part_ranges(size, state["partSize"], state["partCount"])
        digests, whole = hash_parts(self.path, ranges)
        stored = {p["partNumber"]: p for p in state.get("parts", [])}
        todo = [
            (r, d)
            for r, d in zip(ranges, digests, strict=True)
            if not (stored.get(r.part_number, {}).get("size") == r.size and stored[r.part_number].get("sha256") == d)
        ]
        bar = _tqdm(size, self.progress)
        lock = threading.Lock()

        def on_bytes(n: int) -> None:
            with lock:
                bar.update(n)

        on_bytes(size - sum(r.size for r, _ in todo))
        try:
            for i in range(0, len(todo), _URL_BATCH):
                batch = todo[i : i + _URL_BATCH]
                self._upload_batch(upload_id, batch, on_bytes)
        finally:
            bar.close()
        version = self._complete(upload_id, whole)
        return version, upload_id, resumed

    def _urls(self, upload_id: str, batch: list[tuple[PartRange, str]]) -> dict[int, dict[str, Any]]:
        parts = [{"partNumber": r.part_number, "sha256": d} for r, d in batch]
        res = self.api.call("POST", f"/v1/uploads/{upload_id}/parts", {"parts": parts})[1]
        return {p["partNumber"]: p for p in res["parts"]}

    def _upload_batch(
        self, upload_id: str, batch: list[tuple[PartRange, str]], on_bytes: Callable[[int], None]
    ) -> None:
        urls = self._urls(upload_id, batch)

        def one(item: tuple[PartRange, str]) -> None:
            r, d = item
            retry = self.api.retry.retry()  # urllib3's counting and backoff, as for the API calls
            while True:
                signed = urls[r.part_number]
                try:
                    _put_part(signed["url"], signed["headers"], self.path, r, on_bytes)
                    return
                except StorageError as exc:
                    expired = exc.status == 403 and "expired" in exc.message.lower()
                    if not (expired or is_transient_status(exc.status)):
                        raise
                    if expired:
                        urls.update(self._urls(upload_id, [(r, d)]))
                    failure: Exception = exc
                except OSError as exc:
                    failure = exc
                try:
                    retry = retry.increment("PUT", signed["url"], error=failure)
                except MaxRetryError:
                    raise failure from None
                retry.sleep()

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(one, batch))

    def _complete(self, upload_id: str, sha256: str) -> dict[str, Any]:
        try:
            return self.api.call("POST", f"/v1/uploads/{upload_id}/complete", {"sha256": sha256}, timeout_s=3600)[1]
        except ApiError as exc:
            if exc.api_code == "UPLOAD_COMPLETING":
                return self._await_completion(upload_id)
            raise

    def _await_completion(self, upload_id: str) -> dict[str, Any]:
        while True:
            state = self.api.call("GET", f"/v1/uploads/{upload_id}")[1]
            if state["status"] == "completed" and state.get("version"):
                return state["version"]
            if state["status"] != "completing":
                err = state.get("error") or {}
                raise ApiError(422, err.get("code", "UPLOAD_FAILED"), err.get("message", f"upload {state['status']}"))
            time.sleep(2)


def _ensure_model(api: ApiSession, name_or_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((m for m in api.call("GET", "/v1/models")[1] if name_or_id in (m["id"], m["name"])), None)

    found = find()
    if found:
        return found
    try:
        return api.call("POST", "/v1/models", {"name": name_or_id})[1]
    except ApiError as exc:
        again = find() if exc.api_code == "CONFLICT" else None
        if again:
            return again
        raise


def _as_path(model_input: Any, stack: list[Callable[[], None]]) -> Path:
    """A path as is; an ExportedProgram saved to a temporary .pt2 (removed afterwards)."""
    if isinstance(model_input, (str, os.PathLike)):
        path = Path(model_input)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file")
        return path
    if type(model_input).__name__ == "ExportedProgram" and hasattr(model_input, "graph_module"):
        import torch  # only needed for this case

        tmpdir = tempfile.TemporaryDirectory(prefix="kiln-export-")
        stack.append(tmpdir.cleanup)
        path = Path(tmpdir.name) / "model.pt2"
        torch.export.save(model_input, str(path))
        return path
    raise UsageError(
        "USAGE", f"expected a torch.export ExportedProgram or a .pt2 path, got {type(model_input).__name__}"
    )


def _iter_changes(
    previous: dict[str, tuple[str, str | None]], builds: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for b in builds:
        state = (b["status"], b.get("phase"))
        if previous.get(b["targetId"]) != state:
            previous[b["targetId"]] = state
            yield b


def compile_remote(
    exported_program_or_path: Any,
    *,
    model: str,
    targets: list[str],
    api_url: str | None = None,
    api_key: str | None = None,
    wait: bool = True,
    idempotency_key: str | None = None,
    part_size: int | None = None,
    concurrency: int = 4,
    progress: bool = True,
    poll_interval: float = 2.0,
    timeout: float | None = None,
    reproduce: bool = False,
) -> CompileResult:
    """Upload (presigned multipart), compile for `targets`, and (by default) wait; returns the artifacts.

    `api_url`/`api_key` default to $KILN_API_URL/$KILN_API_KEY. Raises ApiError (with the API's `api_code`,
    e.g. PT2_TRUNCATED, UNKNOWN_TARGET), NetworkError, StorageError or TimeoutError. A compilation that
    ends failed or partial is not an exception: check `result.ok` and each `result.targets[i].status`.
    `reproduce=True` builds each target twice (the second time in a fresh sandbox) and fails a target whose parts
    differ with BUILD_NOT_REPRODUCIBLE; a target already built (answered from the cache) is not checked.
    """
    api_url = api_url or os.environ.get("KILN_API_URL")
    api_key = api_key or os.environ.get("KILN_API_KEY")
    if not api_url or not api_key:
        raise UsageError("USAGE", "give api_url and api_key (or set KILN_API_URL and KILN_API_KEY)")
    if not targets:
        raise UsageError("USAGE", "give at least one target id")
    api = ApiSession(api_url, api_key, retry=_RETRY)
    key = idempotency_key or f"py-{uuid.uuid4()}"
    cleanup: list[Callable[[], None]] = []
    try:
        path = _as_path(exported_program_or_path, cleanup)
        filename = path.name if isinstance(exported_program_or_path, (str, os.PathLike)) else f"{model}.pt2"
        model_row = _ensure_model(api, model)
        version, upload_id, resumed = _Uploader(api, path, concurrency, progress).run(
            model_row["id"], filename, part_size, f"{key}/upload"
        )
    finally:
        for fn in cleanup:
            fn()

    compilation = api.call(
        "POST",
        f"/v1/versions/{version['id']}/compilations",
        {"targets": list(targets), **({"reproduce": True} if reproduce else {})},
        headers={"Idempotency-Key": f"{key}/compile"},
    )[1]
    if wait:
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: dict[str, tuple[str, str | None]] = {}
        while True:
            for b in _iter_changes(seen, compilation["builds"]):
                if progress:
                    from tqdm import tqdm

                    detail = b.get("errorCode") or b.get("phase") or ""
                    tqdm.write(f"  {b['targetId']}: {b['status']}{f' ({detail})' if detail else ''}")
            if compilation["status"] in _TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"compilation {compilation['id']} still {compilation['status']} after {timeout} s")
            time.sleep(poll_interval)
            compilation = api.call("GET", f"/v1/compilations/{compilation['id']}")[1]

    artifacts: list[CompiledArtifact] = []
    if compilation["status"] in _TERMINAL:
        for b in compilation["builds"]:
            if b.get("artifact"):
                artifacts.append(CompiledArtifact.from_api(api.call("GET", f"/v1/artifacts/{b['artifact']['id']}")[1]))
    by_id = {a.id: a for a in artifacts}
    return CompileResult(
        ok=compilation["status"] == "succeeded",
        status=compilation["status"],
        model_id=model_row["id"],
        model_name=model_row["name"],
        version_id=version["id"],
        version_number=int(version["number"]),
        compilation_id=compilation["id"],
        targets=[
            TargetResult(
                target_id=b["targetId"],
                status=b["status"],
                error_code=b.get("errorCode"),
                error_message=b.get("errorMessage"),
                artifact=by_id.get((b.get("artifact") or {}).get("id", "")),
            )
            for b in compilation["builds"]
        ],
        artifacts=artifacts,
        upload_id=upload_id,
        idempotency_key=key,
        resumed_upload=resumed,
    )
