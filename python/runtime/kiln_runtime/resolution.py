"""The resolver's answer (POST /v1/resolve), parsed into typed objects; `raw` keeps the JSON as sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cache import check_sha256
from .errors import ErrorCode, KilnRuntimeError


@dataclass(frozen=True)
class ResolvedPart:
    role: str
    sha256: str
    size: int
    url: str
    entry: str | None = None


@dataclass(frozen=True)
class ResolvedArtifact:
    id: str
    target_id: str
    sha256: str  # of the manifest bytes: what the signature covers
    size: int
    signature: str
    signing_key_id: str
    manifest_url: str
    parts: tuple[ResolvedPart, ...]
    expires_at: str
    speedup: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PortableFallback:
    url: str
    sha256: str  # of the .pt2 file
    size: int
    expires_at: str
    reason: str


@dataclass(frozen=True)
class Resolution:
    model_id: str
    model_name: str
    version_id: str
    version_number: int
    selected_by: str
    channel: str | None
    artifact: ResolvedArtifact | None
    fallback: PortableFallback
    ranked: tuple[dict[str, Any], ...]
    rejected: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    def describe_version(self) -> str:
        how = {"channel": f"channel {self.channel}", "version": "pinned version", "latest": "latest"}
        return f"{self.model_name} v{self.version_number} ({how.get(self.selected_by, self.selected_by)})"


def _bad(message: str) -> KilnRuntimeError:
    return KilnRuntimeError(ErrorCode.BAD_RESPONSE, f"unexpected resolver answer: {message}")


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool):
        raise _bad(f"{where}.{key} is missing or not a {getattr(kind, '__name__', kind)}")
    return obj[key]


def parse_resolution(data: Any) -> Resolution:
    model = _get(data, "model", dict, "")
    version = _get(data, "version", dict, "")
    fb = _get(data, "fallback", dict, "")
    fallback = PortableFallback(
        url=_get(fb, "url", str, "fallback"),
        sha256=check_sha256(_get(fb, "sha256", str, "fallback")),
        size=_get(fb, "size", int, "fallback"),
        expires_at=str(fb.get("expiresAt", "")),
        reason=str(fb.get("reason", "")),
    )
    artifact = None
    art = data.get("artifact")
    if art is not None:
        parts = []
        for i, p in enumerate(_get(art, "parts", list, "artifact")):
            where = f"artifact.parts[{i}]"
            entry = p.get("entry") if isinstance(p, dict) else None
            parts.append(
                ResolvedPart(
                    role=_get(p, "role", str, where),
                    sha256=check_sha256(_get(p, "sha256", str, where)),
                    size=_get(p, "size", int, where),
                    url=_get(p, "url", str, where),
                    entry=entry if isinstance(entry, str) else None,
                )
            )
        artifact = ResolvedArtifact(
            id=_get(art, "id", str, "artifact"),
            target_id=_get(art, "targetId", str, "artifact"),
            sha256=check_sha256(_get(art, "sha256", str, "artifact")),
            size=_get(art, "size", int, "artifact"),
            signature=_get(art, "signature", str, "artifact"),
            signing_key_id=_get(art, "signingKeyId", str, "artifact"),
            manifest_url=_get(art, "manifestUrl", str, "artifact"),
            parts=tuple(parts),
            expires_at=str(art.get("expiresAt", "")),
            speedup=float(art.get("speedup") or 0),
            reasons=tuple(str(r) for r in art.get("reasons") or []),
        )
    channel = version.get("channel")
    return Resolution(
        model_id=_get(model, "id", str, "model"),
        model_name=_get(model, "name", str, "model"),
        version_id=_get(version, "id", str, "version"),
        version_number=_get(version, "number", int, "version"),
        selected_by=str(version.get("selectedBy", "")),
        channel=channel if isinstance(channel, str) else None,
        artifact=artifact,
        fallback=fallback,
        ranked=tuple(r for r in data.get("ranked") or [] if isinstance(r, dict)),
        rejected=tuple(r for r in data.get("rejected") or [] if isinstance(r, dict)),
        raw=data,
    )
