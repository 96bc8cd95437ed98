"""Artifact signatures: ed25519 over b"kiln-artifact-manifest-v1\\n" + the exact manifest bytes
(libs/signing/src/artifact-signer.ts). The manifest lists every part's sha256 and size, so a good signature
plus a hash check of every part covers the whole artifact.

Which keys are trusted:
- pinned: KILN_SIGNING_PUBLIC_KEY (or `pinned_keys=`), one or more keys (raw 32-byte base64 or SPKI PEM,
  comma-separated): only those, the trust store is ignored;
- otherwise the trust store (`<cache>/keys/`), filled at enrollment: `kiln-device keys --pin KEY` (the key itself,
  handed over out of band) or `kiln-device keys --trust KEYID` (a key id handed over out of band, whose key the API
  publishes and which must hash to it). With nothing pinned or enrolled, nothing verifies: the default.
- trust on first use only when asked for (KILN_TRUST_ON_FIRST_USE=1, `--trust-on-first-use`): with an empty store,
  the keys the API publishes at /v1/signing-keys are stored and trusted. Later, a keyId the store does not hold is
  refused (a key rotation must be accepted on purpose: pin the new key or `kiln-device keys --trust KEYID`).
The portable graph's manifest is signed by the same keys under its own domain (PORTABLE_SIGNATURE_DOMAIN).
A keyId is the first 16 hex digits of sha256(raw public key), so every key is checked against its id: a
server cannot hand out another key under a trusted id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cache import write_atomic
from .errors import ErrorCode, VerificationError

SIGNATURE_DOMAIN = b"kiln-artifact-manifest-v1\n"
PORTABLE_SIGNATURE_DOMAIN = b"kiln-portable-manifest-v1\n"
_TRUTHY = ("1", "true", "yes", "on")
log = logging.getLogger("kiln_runtime")


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """A raw 32-byte ed25519 public key from base64 (what /v1/signing-keys calls publicKey) or SPKI PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc
    if len(raw) != 32:
        raise ValueError(f"an ed25519 public key has 32 bytes, this one {len(raw)}")
    return raw


def parse_pinned_keys(value: str) -> dict[str, bytes]:
    """`KILN_SIGNING_PUBLIC_KEY`: keys separated by commas (PEM blocks may not contain commas)."""
    keys: dict[str, bytes] = {}
    for item in value.split(","):
        if item.strip():
            raw = parse_public_key(item)
            keys[key_id(raw)] = raw
    return keys


def verify_signature(
    public_key: bytes,
    manifest_bytes: bytes,
    signature_b64: str,
    *,
    signing_key_id: str,
    domain: bytes = SIGNATURE_DOMAIN,
) -> None:
    """Raises VerificationError unless `signature_b64` is a valid signature of these exact manifest bytes."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise VerificationError(ErrorCode.SIGNATURE_INVALID, f"the signature is not base64: {exc}") from exc
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, domain + manifest_bytes)
    except InvalidSignature as exc:
        raise VerificationError(
            ErrorCode.SIGNATURE_INVALID,
            f"the manifest's signature does not verify with signing key {signing_key_id}: the manifest was "
            "changed after signing, or it was signed by someone else. Nothing was loaded.",
            {"signingKeyId": signing_key_id, "manifestSha256": hashlib.sha256(manifest_bytes).hexdigest()},
        ) from exc


class TrustStore:
    """The signing keys this device trusts: pinned ones, or those stored in `<cache>/keys/<keyId>.json`."""

    def __init__(
        self, directory: Path, pinned: dict[str, bytes] | None = None, *, trust_on_first_use: bool = False
    ) -> None:
        self.directory = directory
        self.pinned = pinned
        self.trust_on_first_use = trust_on_first_use

    @classmethod
    def from_env(
        cls, directory: Path, pinned_keys: str | None = None, trust_on_first_use: bool | None = None
    ) -> TrustStore:
        if trust_on_first_use is None:
            trust_on_first_use = os.environ.get("KILN_TRUST_ON_FIRST_USE", "").strip().lower() in _TRUTHY
        value = pinned_keys if pinned_keys is not None else os.environ.get("KILN_SIGNING_PUBLIC_KEY", "")
        try:
            pinned = parse_pinned_keys(value) if value.strip() else None
        except ValueError as exc:
            raise VerificationError(
                ErrorCode.UNKNOWN_SIGNING_KEY, f"KILN_SIGNING_PUBLIC_KEY is unusable: {exc}"
            ) from exc
        return cls(directory, pinned, trust_on_first_use=trust_on_first_use)

    def stored(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        if not self.directory.is_dir():
            return keys
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                raw = base64.b64decode(data["publicKey"], validate=True)
            except (OSError, ValueError, KeyError, TypeError, binascii.Error):
                log.warning("ignoring unreadable trusted key file %s", path)
                continue
            if key_id(raw) != path.stem or data.get("keyId") != path.stem:
                log.warning("ignoring trusted key file %s: its key does not hash to its keyId", path)
                continue
            keys[path.stem] = raw
        return keys

    def trust(self, raw: bytes, source: str) -> str:
        kid = key_id(raw)
        record = {
            "keyId": kid,
            "algorithm": "ed25519",
            "publicKey": base64.b64encode(raw).decode(),
            "source": source,
            "trustedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.directory / f"{kid}.json", (json.dumps(record, indent=2) + "\n").encode())
        return kid

    def key_for(self, signing_key_id: str, fetch_published: Callable[[], list[dict[str, Any]]]) -> bytes:
        """The trusted key with this id; trust on first use from `fetch_published` when nothing is trusted yet."""
        if self.pinned is not None:
            if signing_key_id in self.pinned:
                return self.pinned[signing_key_id]
            raise VerificationError(
                ErrorCode.UNKNOWN_SIGNING_KEY,
                f"the artifact is signed with key {signing_key_id}, but this device pins only "
                f"{', '.join(sorted(self.pinned))} (KILN_SIGNING_PUBLIC_KEY). Nothing was loaded.",
                {"signingKeyId": signing_key_id, "pinned": sorted(self.pinned)},
            )
        stored = self.stored()
        if signing_key_id in stored:
            return stored[signing_key_id]
        if stored:
            raise VerificationError(
                ErrorCode.UNKNOWN_SIGNING_KEY,
                f"the artifact is signed with key {signing_key_id}, which this device does not trust (it trusts "
                f"{', '.join(sorted(stored))}). If Kiln rotated its signing key, check the new key out of band, "
                f"then pin it (KILN_SIGNING_PUBLIC_KEY) or run `kiln-device keys --trust {signing_key_id}`. "
                "Nothing was loaded.",
                {"signingKeyId": signing_key_id, "trusted": sorted(stored)},
            )
        if not self.trust_on_first_use:
            raise VerificationError(
                ErrorCode.UNKNOWN_SIGNING_KEY,
                f"no signing key is pinned or enrolled on this device, so nothing signed by {signing_key_id} can be "
                "verified. Enroll the key you were given: `kiln-device keys --pin PUBLIC_KEY` (or --trust KEYID), or "
                "set KILN_SIGNING_PUBLIC_KEY; trusting whatever the API publishes on first use is an explicit "
                "choice (KILN_TRUST_ON_FIRST_USE=1 or --trust-on-first-use). Nothing was loaded.",
                {"signingKeyId": signing_key_id},
            )
        published = self.published_keys(fetch_published())
        for kid, raw in published.items():
            self.trust(raw, "trust on first use (/v1/signing-keys)")
            log.warning("trusting signing key %s on first use (stored in %s)", kid, self.directory)
        if signing_key_id in published:
            return published[signing_key_id]
        raise VerificationError(
            ErrorCode.UNKNOWN_SIGNING_KEY,
            f"the artifact is signed with key {signing_key_id}, which the API does not publish "
            f"(it publishes {', '.join(sorted(published)) or 'no keys'}). Nothing was loaded.",
            {"signingKeyId": signing_key_id, "published": sorted(published)},
        )

    @staticmethod
    def published_keys(entries: list[dict[str, Any]]) -> dict[str, bytes]:
        """The well-formed ed25519 keys of a /v1/signing-keys answer whose keyId matches the key itself."""
        keys: dict[str, bytes] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("algorithm") != "ed25519":
                continue
            try:
                raw = parse_public_key(str(entry.get("publicKey", "")))
            except ValueError:
                continue
            if key_id(raw) != entry.get("keyId"):
                log.warning("ignoring published key %r: its keyId does not match the key", entry.get("keyId"))
                continue
            keys[key_id(raw)] = raw
        return keys
