"""HTTP client of the Kiln API for devices: resolve, signing keys, verified downloads, package assembly.

Nothing here loads a model (loader.py does); everything it returns has been verified: manifests against
their sha256 and ed25519 signature, parts and portable graphs against their sha256 and size.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Cache, check_sha256, derived_file
from .download import ProgressFactory, download_blob
from .errors import ErrorCode, KilnRuntimeError, VerificationError
from .http import ApiSession, RetryPolicy
from .package_parts import assemble_package, check_weights_entry
from .portable import make_loadable_copy
from .program_checks import check_portable_program
from .resolution import Resolution, ResolvedArtifact, ResolvedPart, parse_resolution
from .signing import PORTABLE_SIGNATURE_DOMAIN, TrustStore, verify_signature
from .tensor_delta import NoDelta, Tensor, TensorIndex, assemble_delta, parse_tensor_index

log = logging.getLogger("kiln_runtime")
DEFAULT_API_URL = "http://127.0.0.1:3000"
MAX_MANIFEST_BYTES = 4 << 20
MAX_PORTABLE_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class VerifiedManifest:
    data: dict[str, Any]
    raw: bytes
    sha256: str
    signing_key_id: str
    path: Path


@dataclass(frozen=True)
class VerifiedPortableManifest:
    """The signed manifest of a version's portable graph, checked against what the resolver answered."""

    data: dict[str, Any]
    sha256: str
    signing_key_id: str


@dataclass(frozen=True)
class PartTransfer:
    """What getting one part cost: bytes asked of the server (0 when it was cached), tensors this device held."""

    downloaded: int  # with a failed delta's bytes; a whole download resumed from an earlier .part counts whole
    tensors: int = 0  # tensors the signed manifest lists for a weights part (0: none listed)
    tensors_from_cache: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "downloadedBytes": self.downloaded,
            "tensorCount": self.tensors,
            "tensorsFromCache": self.tensors_from_cache,
        }


@dataclass(frozen=True)
class FetchedArtifact:
    artifact: ResolvedArtifact
    manifest: VerifiedManifest
    package: Path  # the assembled AOTInductor package, loadable with aoti_load_package
    parts: tuple[tuple[ResolvedPart, Path], ...]
    transfers: tuple[PartTransfer, ...] = ()  # one per part, in the order of `parts`


class KilnClient:
    """Talks to one Kiln API as one device. Defaults come from KILN_API_URL, KILN_DEVICE_TOKEN, KILN_CACHE_DIR,
    KILN_SIGNING_PUBLIC_KEY and KILN_TRUST_ON_FIRST_USE."""

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        *,
        cache: Cache | str | Path | None = None,
        pinned_keys: str | None = None,
        retry: RetryPolicy | None = None,
        progress: ProgressFactory | None = None,
        rehash_cache: bool = True,
        trust_on_first_use: bool | None = None,
    ) -> None:
        self.api_url = (api_url or os.environ.get("KILN_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("KILN_DEVICE_TOKEN")
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        self.trust = TrustStore.from_env(self.cache.keys, pinned_keys, trust_on_first_use)
        self.retry = retry or RetryPolicy()
        self.http = ApiSession(
            self.api_url,
            self.token,
            retry=self.retry,
            missing_token="no device token: set KILN_DEVICE_TOKEN or pass --token",
        )
        self.progress = progress
        self.rehash_cache = rehash_cache

    # ------------------------------------------------------------------------------------------- API calls

    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        return self.http.call(method, path, body, auth=auth)[1]

    def resolve(
        self,
        model: str,
        *,
        fingerprint: dict[str, Any],
        version: int | None = None,
        channel: str | None = None,
        device_id: str | None = None,
        unmeasured_artifacts: str | None = None,
    ) -> Resolution:
        """POST /v1/resolve: which artifact this device should run (`model` may be `name@channel` or an id).
        `device_id` places the device in (or out of) a staged rollout of the channel. `unmeasured_artifacts`
        ("serve", the API's default, or "evidence-only"): whether an artifact whose speed was never measured (a cross
        build verified under emulation) is served before devices of this class have timed it."""
        body: dict[str, Any] = {"model": model, "fingerprint": fingerprint}
        if unmeasured_artifacts is not None:
            body["unmeasuredArtifacts"] = unmeasured_artifacts
        if device_id is not None:
            body["deviceId"] = device_id
        if version is not None:
            body["version"] = version
        if channel is not None:
            body["channel"] = channel
        return parse_resolution(self._request("POST", "/v1/resolve", body))

    def send_telemetry(self, batch: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/telemetry: one device's batch of run reports (telemetry.py builds and queues them)."""
        answer = self._request("POST", "/v1/telemetry", batch)
        if not isinstance(answer, dict):
            raise KilnRuntimeError(ErrorCode.BAD_RESPONSE, "POST /v1/telemetry did not answer an object")
        return answer

    def signing_keys(self) -> list[dict[str, Any]]:
        keys = self._request("GET", "/v1/signing-keys", auth=False)
        if not isinstance(keys, list):
            raise KilnRuntimeError(ErrorCode.BAD_RESPONSE, "GET /v1/signing-keys did not answer a list")
        return keys

    # ------------------------------------------------------------------------------------------- downloads

    def _blob(self, url: str, sha256: str, size: int | None, what: str, max_size: int | None = None) -> Path:
        return download_blob(
            url,
            self.cache,
            sha256=sha256,
            size=size,
            what=what,
            retry=self.retry,
            progress=self.progress,
            max_size=max_size,
            rehash_cached=self.rehash_cache,
        )

    def fetch_manifest(self, artifact: ResolvedArtifact) -> VerifiedManifest:
        """The artifact's manifest bytes: sha256 as resolved, signature by a trusted key, well-formed parts."""
        path = self._blob(
            artifact.manifest_url, artifact.sha256, None, f"manifest of {artifact.target_id}", MAX_MANIFEST_BYTES
        )
        raw = path.read_bytes()
        public_key = self.trust.key_for(artifact.signing_key_id, self.signing_keys)
        verify_signature(public_key, raw, artifact.signature, signing_key_id=artifact.signing_key_id)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise VerificationError(ErrorCode.MANIFEST_INVALID, f"the signed manifest is not JSON: {exc}") from exc
        check_manifest(data, artifact)
        return VerifiedManifest(data, raw, artifact.sha256, artifact.signing_key_id, path)

    def fetch_artifact(self, artifact: ResolvedArtifact, manifest: VerifiedManifest | None = None) -> FetchedArtifact:
        """Verified manifest, every part downloaded and checked against it, and the assembled package."""
        manifest = manifest or self.fetch_manifest(artifact)
        parts: list[tuple[ResolvedPart, Path]] = []
        transfers: list[PartTransfer] = []
        indexes = tensor_indexes(manifest.data)
        for part in manifest_parts(manifest.data, artifact):
            what = f"{artifact.target_id} {part.role} part" + (
                f" ({part.entry.rsplit('/', 1)[-1]})" if part.entry else ""
            )
            path, transfer = self._part(part, indexes.get(part.sha256, ()), what)
            parts.append((part, path))
            transfers.append(transfer)
        code = next(path for part, path in parts if part.role == "code")
        weights = [(part.entry or "", path) for part, path in parts if part.role == "weights"]
        package = derived_file(
            self.cache,
            self.cache.package_path(manifest.sha256),
            lambda tmp: assemble_package(code, weights, tmp),
            rehash=self.rehash_cache,
        )
        return FetchedArtifact(artifact, manifest, package, tuple(parts), tuple(transfers))

    def _part(self, part: ResolvedPart, tensors: tuple[Tensor, ...], what: str) -> tuple[Path, PartTransfer]:
        """One verified part. A weights part whose tensors this device partly holds is assembled from those plus
        Range requests for the others (tensor_delta.py); anything else, or a delta that does not check out or
        fails, is downloaded whole."""
        index = TensorIndex(self.cache)
        spent = 0  # bytes a failed delta fetched before the whole download
        with self.cache.lock(part.sha256):
            cached = self.cache.verified_blob(part.sha256, part.size, rehash=self.rehash_cache)
            if cached is not None:
                index.record(part.sha256, tensors)
                return cached, PartTransfer(0, len(tensors))
            if tensors and index.held_bytes(tensors):
                try:
                    delta = assemble_delta(
                        part.url,
                        self.cache,
                        sha256=part.sha256,
                        size=part.size,
                        tensors=tensors,
                        retry=self.retry,
                        what=what,
                    )
                except NoDelta as exc:
                    spent = exc.downloaded
                    log.warning("%s: %s; downloading it whole", what, exc)
                except OSError as exc:  # the cache's disk: the whole download meets it too, and says so
                    log.warning("%s: assembling it from its tensors failed (%s); downloading it whole", what, exc)
                else:
                    index.record(part.sha256, tensors)
                    return delta.path, PartTransfer(delta.downloaded, len(tensors), delta.reused_tensors)
        path = self._blob(part.url, part.sha256, part.size, what)
        index.record(part.sha256, tensors)
        return path, PartTransfer(spent + part.size, len(tensors))

    def fetch_portable_manifest(self, resolution: Resolution) -> VerifiedPortableManifest:
        """The portable graph's signed manifest: its sha256 as resolved, a signature by a trusted key (portable
        domain), and a binding to exactly the model and version resolved and the .pt2 the resolver points at."""
        fb = resolution.fallback
        if not (fb.signature and fb.manifest_url and fb.manifest_sha256 and fb.signing_key_id):
            raise VerificationError(
                ErrorCode.UNSIGNED_FALLBACK,
                "the resolver gave no signed manifest for the portable graph: an unsigned .pt2 is refused like an "
                "unsigned artifact (update the Kiln API). Nothing was loaded.",
            )
        path = self._blob(
            fb.manifest_url,
            check_sha256(fb.manifest_sha256),
            None,
            "portable graph manifest",
            MAX_PORTABLE_MANIFEST_BYTES,
        )
        raw = path.read_bytes()
        public_key = self.trust.key_for(fb.signing_key_id, self.signing_keys)
        verify_signature(
            public_key, raw, fb.signature, signing_key_id=fb.signing_key_id, domain=PORTABLE_SIGNATURE_DOMAIN
        )
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise VerificationError(
                ErrorCode.MANIFEST_INVALID, f"the signed portable manifest is not JSON: {exc}"
            ) from exc
        check_portable_binding(data, resolution)
        return VerifiedPortableManifest(data, fb.manifest_sha256, fb.signing_key_id)

    def fetch_portable(self, resolution: Resolution) -> Path:
        """The portable graph, checked before torch may read it: signed manifest bound to this model and version,
        file sha256 and size as signed, and every guard and shape expression inside it within Kiln's grammars (the
        guards exactly the signed ones). Returns a loadable copy (pickled sample inputs blanked)."""
        manifest = self.fetch_portable_manifest(resolution)
        signed_file = manifest.data["file"]
        blob = self._blob(resolution.fallback.url, signed_file["sha256"], signed_file["size"], "portable graph (.pt2)")
        path = derived_file(
            self.cache,
            self.cache.portable_path(signed_file["sha256"]),
            lambda tmp: make_loadable_copy(blob, tmp),
            rehash=self.rehash_cache,
        )
        check_portable_program(path, list(manifest.data.get("guards") or []))
        # Its tensors are most of an artifact's weights part: a device that ran the portable graph first then
        # downloads only what the artifact's build changed (folded constants).
        TensorIndex(self.cache).record_portable(signed_file["sha256"], blob)
        return path


def _binding_error(message: str, details: dict[str, Any]) -> VerificationError:
    return VerificationError(
        ErrorCode.BINDING_MISMATCH, f"{message}: another Kiln-signed file was swapped in. Nothing was loaded.", details
    )


def check_portable_binding(data: Any, resolution: Resolution) -> None:
    """The signed portable manifest names the resolved model and version, and the .pt2 the resolver points at."""
    if not isinstance(data, dict) or data.get("kind") != "portable" or data.get("manifestVersion") != 1:
        raise VerificationError(ErrorCode.MANIFEST_INVALID, "the signed portable manifest is not a portable manifest")
    file = data.get("file")
    if not isinstance(file, dict) or not isinstance(file.get("sha256"), str) or not isinstance(file.get("size"), int):
        raise VerificationError(ErrorCode.MANIFEST_INVALID, "the signed portable manifest names no file")
    if not isinstance(data.get("guards", []), list):
        raise VerificationError(ErrorCode.MANIFEST_INVALID, "the signed portable manifest's guards are not a list")
    want = {
        "modelId": resolution.model_id,
        "versionId": resolution.version_id,
        "versionNumber": resolution.version_number,
    }
    got = {k: data.get(k) for k in want}
    if got != want:
        raise _binding_error(
            f"the signed portable manifest is for model {got['modelId']} v{got['versionNumber']} "
            f"({got['versionId']}), the resolver answered {want['modelId']} v{want['versionNumber']}",
            {"signed": got, "resolved": want},
        )
    fb = resolution.fallback
    if (file["sha256"], file["size"]) != (fb.sha256, fb.size):
        raise _binding_error(
            "the resolver points at another .pt2 than the one the portable manifest signs",
            {"signed": file, "resolved": {"sha256": fb.sha256, "size": fb.size}},
        )


def check_artifact_binding(manifest: dict[str, Any], portable: VerifiedPortableManifest) -> None:
    """An artifact's signed manifest compiles the resolved version's model content (and, in manifests that name
    their tenant, for the same tenant): no other Kiln-signed artifact can stand in for it."""
    content = portable.data.get("contentHash")
    if manifest.get("modelContentHash") != content:
        raise _binding_error(
            f"the artifact compiles model content {manifest.get('modelContentHash')}, "
            f"the resolved version is {content}",
            {"artifact": manifest.get("modelContentHash"), "version": content},
        )
    tenant = manifest.get("tenantId")
    if tenant is not None and tenant != portable.data.get("tenantId"):
        raise _binding_error(
            "the artifact was built for another tenant than the resolved version's",
            {"artifact": tenant, "version": portable.data.get("tenantId")},
        )


def _invalid(message: str) -> VerificationError:
    return VerificationError(ErrorCode.MANIFEST_INVALID, f"the signed manifest is unusable: {message}")


def check_manifest(data: Any, artifact: ResolvedArtifact) -> None:
    """The structure the loader relies on, and agreement with what the resolver said about the artifact. Whatever
    libs/contracts/src/schemas/artifact-manifest.schema.json accepts passes (tests/test_contract_vectors.py)."""
    if not isinstance(data, dict):
        raise _invalid("not a JSON object")
    if data.get("manifestVersion") != 1:
        raise _invalid(f"manifestVersion {data.get('manifestVersion')!r} (this runtime reads 1)")
    if data.get("format") != "aoti-package-parts":
        raise _invalid(f"format {data.get('format')!r} (this runtime reads aoti-package-parts)")
    if data.get("target") != artifact.target_id:
        raise _invalid(f"it is for target {data.get('target')!r}, the resolver said {artifact.target_id!r}")
    parts = data.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _invalid("no parts")
    codes = 0
    for i, p in enumerate(parts):
        if not isinstance(p, dict) or p.get("role") not in ("code", "weights"):
            raise _invalid(f"parts[{i}] has no role code/weights")
        if not isinstance(p.get("sha256"), str) or len(p["sha256"]) != 64:
            raise _invalid(f"parts[{i}].sha256 is not a sha256")
        if not isinstance(p.get("size"), int) or isinstance(p.get("size"), bool) or p["size"] < 0:
            raise _invalid(f"parts[{i}].size is not a size")
        if p["role"] == "code":
            codes += 1
            if "tensors" in p:
                raise _invalid(f"parts[{i}]: a code part lists tensors")
        else:
            try:
                check_weights_entry(str(p.get("entry")))
                if "tensors" in p:
                    parse_tensor_index(p["tensors"], p["size"])
            except ValueError as exc:
                raise _invalid(f"parts[{i}]: {exc}") from exc
    if codes != 1:
        raise _invalid(f"{codes} code parts (expected exactly one)")
    if not isinstance(data.get("requires"), dict):
        raise _invalid("no requires section")


def tensor_indexes(manifest: dict[str, Any]) -> dict[str, tuple[Tensor, ...]]:
    """The signed per-tensor index of each weights part that has one, by the part's sha256 (check_manifest ran)."""
    return {
        p["sha256"]: parse_tensor_index(p["tensors"], p["size"])
        for p in manifest["parts"]
        if p["role"] == "weights" and "tensors" in p
    }


def manifest_parts(manifest: dict[str, Any], artifact: ResolvedArtifact) -> list[ResolvedPart]:
    """The SIGNED part list, with download URLs taken from the resolver's (unsigned) list of the same parts."""
    urls = {(p.role, p.sha256, p.size, p.entry): p.url for p in artifact.parts}
    out = []
    for p in manifest["parts"]:
        key = (p["role"], p["sha256"], p["size"], p.get("entry"))
        if key not in urls:
            raise _invalid(f"the resolver gave no download for the signed {p['role']} part {p['sha256'][:12]}")
        out.append(
            ResolvedPart(role=p["role"], sha256=p["sha256"], size=p["size"], url=urls[key], entry=p.get("entry"))
        )
    if len(artifact.parts) != len(out):
        raise _invalid(f"the resolver lists {len(artifact.parts)} parts, the signed manifest {len(out)}")
    return out
