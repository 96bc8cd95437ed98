"""Shared fixtures: a local HTTP server that plays the Kiln API and S3 (Range support, dropped connections,
corrupted bytes), a signing key, and one real AOTInductor package of a tiny MLP compiled per session."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiln_runtime.package_parts import split_package
from kiln_runtime.signing import PORTABLE_SIGNATURE_DOMAIN, SIGNATURE_DOMAIN, key_id

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Fault:
    """Misbehaviour of one blob: drop the connection after `drop_after` bytes for the first `drops` requests,
    serve `corrupt_at` with one bit flipped, ignore Range headers."""

    drop_after: int | None = None
    drops: int = 0
    corrupt_at: int | None = None
    ignore_range: bool = False
    shift_range: int = 0  # answer a Range request with the bytes (and Content-Range) this far after those asked for


@dataclass
class FakeKiln:
    """State of the fake API/S3 server; tests mutate it between requests."""

    url: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    resolution: dict[str, Any] | None = None
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    token: str = "kiln_device_token"
    resolve_bodies: list[dict[str, Any]] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # batches POSTed to /v1/telemetry
    telemetry_status: int = 200  # answer telemetry with this status (400: refused as malformed, 503: down)

    def blob_url(self, name: str) -> str:
        return f"{self.url}/blobs/{name}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKiln
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.fake.requests.append(("POST", self.path, None))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/v1/telemetry" and self.headers.get("Authorization") == f"Bearer {self.fake.token}":
            if self.fake.telemetry_status != 200:
                self._json(self.fake.telemetry_status, {"error": {"code": "VALIDATION_FAILED", "message": "no"}})
                return
            seen = {r["reportId"] for b in self.fake.telemetry for r in b["reports"]}
            fresh = [r for r in body.get("reports", []) if r["reportId"] not in seen]
            self.fake.telemetry.append(body)
            n = len(body.get("reports", []))
            self._json(200, {"accepted": len(fresh), "duplicates": n - len(fresh), "rejected": [], "deviceClass": "dc"})
            return
        if self.path != "/v1/resolve":
            self._json(404, {"error": {"code": "NOT_FOUND", "message": "no route"}})
        elif self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            self._json(401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API key."}})
        elif self.fake.resolution is None:
            self._json(404, {"error": {"code": "NOT_FOUND", "message": f'No model "{body.get("model")}".'}})
        else:
            self.fake.resolve_bodies.append(body)
            self._json(200, self.fake.resolution)

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        self.fake.requests.append(("GET", self.path, rng))
        if self.path == "/v1/signing-keys":
            self._json(200, self.fake.keys)
            return
        name = self.path.removeprefix("/blobs/")
        data = self.fake.blobs.get(name)
        if not self.path.startswith("/blobs/") or data is None:
            self._json(404, {"error": {"code": "NOT_FOUND", "message": "no such blob"}})
            return
        fault = self.fake.faults.get(name, Fault())
        if fault.corrupt_at is not None:
            data = bytearray(data)
            data[fault.corrupt_at] ^= 0x01
            data = bytes(data)
        start, end = 0, len(data)
        m = _RANGE.match(rng or "")
        if m and not fault.ignore_range:
            start = int(m.group(1)) + fault.shift_range
            end = min(int(m.group(2)) + 1 + fault.shift_range, len(data)) if m.group(2) else len(data)
            if start >= len(data) or end <= start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:end]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if fault.drops > 0 and fault.drop_after is not None:
            fault.drops -= 1
            self.wfile.write(body[: fault.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def fake_kiln() -> Iterator[FakeKiln]:
    fake = FakeKiln()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@dataclass
class SigningKey:
    private: Ed25519PrivateKey
    raw: bytes
    key_id: str

    def sign(self, manifest: bytes) -> str:
        return base64.b64encode(self.private.sign(SIGNATURE_DOMAIN + manifest)).decode()

    def sign_portable(self, manifest: bytes) -> str:
        return base64.b64encode(self.private.sign(PORTABLE_SIGNATURE_DOMAIN + manifest)).decode()

    def published(self) -> dict[str, Any]:
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "keyId": self.key_id,
            "algorithm": "ed25519",
            "publicKey": base64.b64encode(self.raw).decode(),
            "publicKeyPem": pem.decode(),
        }


def new_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(private, raw, key_id(raw))


@pytest.fixture
def signing_key() -> SigningKey:
    return new_key()


# --------------------------------------------------------------------------------------- a real package

_COMPILE = r"""
import sys, torch
out = sys.argv[1]

class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 4)
    def forward(self, x):
        return self.b(torch.relu(self.a(x)))

torch.manual_seed(0)
batch = torch.export.Dim("batch", min=1, max=64)
ep = torch.export.export(Mlp().eval(), (torch.randn(8, 16),), dynamic_shapes={"x": {0: batch}})
torch.export.save(ep, f"{out}/portable.pt2")
torch._inductor.aoti_compile_and_package(ep, package_path=f"{out}/package.pt2", inductor_configs={
    "cpp.march": "x86-64-v3", "cpp.simdlen": 256, "cpp.dynamic_threads": True, "freezing": True,
    "cpp.weight_prepack": False, "aot_inductor.package_constants_in_so": False,
    "aot_inductor.package_constants_on_disk_format": "binary_blob", "cpp.cxx": ("g++",)})
"""


@dataclass
class Compiled:
    portable: Path
    package: Path
    parts_dir: Path


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    """A tiny MLP (dynamic batch 1..64), exported and compiled with the linux-x86_64-v3 recipe (~15-40 s)."""
    out = tmp_path_factory.mktemp("aoti")
    tmp = out / "tmp"
    tmp.mkdir()
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "TMPDIR": str(tmp),
        "TORCHINDUCTOR_CACHE_DIR": str(out / "cache"),
        "HOME": str(out),
    }
    subprocess.run([sys.executable, "-c", _COMPILE, str(out)], check=True, env=env, timeout=600)
    return Compiled(out / "portable.pt2", out / "package.pt2", out / "parts")


def make_manifest(parts: list[dict[str, Any]], **requires: Any) -> dict[str, Any]:
    import torch

    req = {
        "os": "linux",
        "arch": "x86_64",
        "x86Level": 3,
        "computeCapability": None,
        "torch": torch.__version__,
        "glibc": "2.17",
        "glibcxx": None,
    }
    req.update(requires)
    return {
        "manifestVersion": 1,
        "target": "linux-x86_64-v3",
        "recipeHash": "ab" * 32,
        "modelContentHash": "cd" * 32,
        "cacheKey": "ef" * 32,
        "format": "aoti-package-parts",
        "parts": parts,
        "requires": req,
        "toolchain": {},
        "isaCheck": {"passed": True, "forbidden": ["zmm"], "counts": {"zmm": 0}},
        "verification": {"passed": True, "atol": 1e-4, "rtol": 1e-3, "maxAbsError": 1e-6},
        "timing": {"eagerMs": 1.0, "compiledMs": 0.5, "speedup": 2.0},
        "build": {},
    }


def publish_artifact(
    fake: FakeKiln, compiled: Compiled, key: SigningKey, *, manifest_bytes: bytes | None = None, **requires: Any
) -> dict[str, Any]:
    """Split the real package into parts, sign a manifest for them, and make the fake API resolve to it."""
    part_files = split_package(compiled.package, compiled.parts_dir)
    parts = [
        {"role": p.role, "sha256": p.sha256, "size": p.size, **({"entry": p.entry} if p.entry else {})}
        for p in part_files
    ]
    manifest = manifest_bytes or json.dumps(make_manifest(parts, **requires), indent=2).encode()
    manifest_sha = hashlib.sha256(manifest).hexdigest()
    fake.blobs[manifest_sha] = manifest
    for p in part_files:
        fake.blobs[p.sha256] = p.path.read_bytes()
    portable = compiled.portable.read_bytes()
    portable_sha = hashlib.sha256(portable).hexdigest()
    fake.blobs[portable_sha] = portable
    fake.keys = [key.published()]
    fallback = publish_portable(fake, key, portable, guards=[])
    fake.resolution = {
        "model": {"id": "m-1", "name": "tiny-mlp"},
        "version": {"id": "v-1", "number": 1, "selectedBy": "latest", "channel": None},
        "artifact": {
            "id": "art-v3",
            "targetId": "linux-x86_64-v3",
            "sha256": manifest_sha,
            "size": sum(p.size for p in part_files),
            "signature": key.sign(manifest),
            "signingKeyId": key.key_id,
            "manifestUrl": fake.blob_url(manifest_sha),
            "parts": [{**p, "url": fake.blob_url(p["sha256"])} for p in parts],
            "expiresAt": "2099-01-01T00:00:00Z",
            "speedup": 2.0,
            "reasons": ["only compatible artifact: 2x measured over eager on the build host"],
        },
        "fallback": fallback,
        "ranked": [{"artifactId": "art-v3", "targetId": "linux-x86_64-v3", "speedup": 2.0}],
        "rejected": [],
    }
    return fake.resolution


def portable_manifest(portable: bytes, guards: list[str], **overrides: Any) -> dict[str, Any]:
    """The signed manifest the API writes for a version's portable graph (apps/api/src/portable-signing)."""
    return {
        "manifestVersion": 1,
        "kind": "portable",
        "format": "pt2",
        "tenantId": "t-1",
        "modelId": "m-1",
        "modelName": "tiny-mlp",
        "versionId": "v-1",
        "versionNumber": 1,
        "file": {"sha256": hashlib.sha256(portable).hexdigest(), "size": len(portable)},
        "contentHash": "cd" * 32,
        "guards": guards,
        "signedAt": "2026-12-05T00:00:00.000Z",
        **overrides,
    }


def publish_portable(
    fake: FakeKiln, key: SigningKey, portable: bytes, *, guards: list[str], manifest: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Stores a .pt2 and its signed manifest on the fake server; returns the resolver's `fallback` for them."""
    portable_sha = hashlib.sha256(portable).hexdigest()
    fake.blobs[portable_sha] = portable
    raw = json.dumps(manifest or portable_manifest(portable, guards), indent=2).encode()
    manifest_sha = hashlib.sha256(raw).hexdigest()
    fake.blobs[manifest_sha] = raw
    return {
        "kind": "portable",
        "url": fake.blob_url(portable_sha),
        "sha256": portable_sha,
        "size": len(portable),
        "expiresAt": "2099-01-01T00:00:00Z",
        "reason": "if art-v3 fails to download, verify or load, run the portable graph",
        "manifestUrl": fake.blob_url(manifest_sha),
        "manifestSha256": manifest_sha,
        "signature": key.sign_portable(raw),
        "signingKeyId": key.key_id,
    }
