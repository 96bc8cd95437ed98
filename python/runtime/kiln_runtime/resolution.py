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
    basis: str = "build-host"  # "device": ranked by what devices of this class reported


@dataclass(frozen=True)
class PortableFallback:
    url: str
    sha256: str  # of the .pt2 file
    size: int
    expires_at: str
    reason: str
    # The signed manifest binding the .pt2 to tenant, model and version (empty from servers that did not sign it).
    manifest_url: str = ""
    manifest_sha256: str = ""
    signature: str = ""
    signing_key_id: str = ""


@dataclass(frozen=True)
class RolloutAssignment:
    """The channel's staged rollout, as it applies to this device (which version it got, and why)."""

    id: str
    status: str
    stage_index: int
    percent: float
    arm: str  # "new" | "previous"
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
    device_class: str | None = None  # the class label fleet evidence is read for
    rollout: RolloutAssignment | None = None

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
        manifest_url=str(fb.get("manifestUrl") or ""),
        manifest_sha256=str(fb.get("manifestSha256") or ""),
        signature=str(fb.get("signature") or ""),
        signing_key_id=str(fb.get("signingKeyId") or ""),
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
            basis=str(art.get("basis") or "build-host"),
        )
    channel = version.get("channel")
    ro = data.get("rollout")
    rollout = None
    if isinstance(ro, dict) and isinstance(ro.get("id"), str):
        rollout = RolloutAssignment(
            id=ro["id"],
            status=str(ro.get("status", "")),
            stage_index=int(ro.get("stageIndex") or 0),
            percent=float(ro.get("percent") or 0),
            arm=str(ro.get("arm", "")),
            reason=str(ro.get("reason", "")),
        )
    dc = data.get("deviceClass")
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
        device_class=str(dc.get("label")) if isinstance(dc, dict) and dc.get("label") else None,
        rollout=rollout,
    )
