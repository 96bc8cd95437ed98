"""Signature checks and the trust store: good, tampered manifest byte, wrong key, unknown keyId, pinning."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kiln_runtime.errors import ErrorCode, VerificationError
from kiln_runtime.signing import TrustStore, key_id, parse_pinned_keys, parse_public_key, verify_signature

from .conftest import SigningKey, new_key

MANIFEST = json.dumps({"target": "linux-x86_64-v3", "parts": [{"sha256": "ab" * 32, "size": 1}]}).encode()


def test_good_signature_verifies(signing_key: SigningKey) -> None:
    verify_signature(signing_key.raw, MANIFEST, signing_key.sign(MANIFEST), signing_key_id=signing_key.key_id)


def test_every_flipped_manifest_byte_is_refused(signing_key: SigningKey) -> None:
    signature = signing_key.sign(MANIFEST)
    for i in range(len(MANIFEST)):
        tampered = bytearray(MANIFEST)
        tampered[i] ^= 0x01
        with pytest.raises(VerificationError) as err:
            verify_signature(signing_key.raw, bytes(tampered), signature, signing_key_id=signing_key.key_id)
        assert err.value.code == ErrorCode.SIGNATURE_INVALID


def test_a_signature_by_another_key_is_refused(signing_key: SigningKey) -> None:
    other = new_key()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(signing_key.raw, MANIFEST, other.sign(MANIFEST), signing_key_id=signing_key.key_id)


def test_the_domain_prefix_is_part_of_the_signed_message(signing_key: SigningKey) -> None:
    bare = base64.b64encode(signing_key.private.sign(MANIFEST)).decode()
    with pytest.raises(VerificationError):
        verify_signature(signing_key.raw, MANIFEST, bare, signing_key_id=signing_key.key_id)


def test_keys_parse_from_base64_and_pem(signing_key: SigningKey) -> None:
    published = signing_key.published()
    assert parse_public_key(published["publicKey"]) == signing_key.raw
    assert parse_public_key(published["publicKeyPem"]) == signing_key.raw
    assert key_id(signing_key.raw) == published["keyId"]
    two = new_key()
    assert parse_pinned_keys(f"{published['publicKeyPem']},{two.published()['publicKey']}") == {
        signing_key.key_id: signing_key.raw,
        two.key_id: two.raw,
    }
    with pytest.raises(ValueError):
        parse_public_key(base64.b64encode(b"short").decode())


def test_without_a_pinned_or_enrolled_key_nothing_verifies_by_default(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KILN_TRUST_ON_FIRST_USE", raising=False)
    store = TrustStore.from_env(tmp_path / "keys", "")
    asked = []
    with pytest.raises(VerificationError) as err:
        store.key_for(signing_key.key_id, lambda: asked.append(1) or [signing_key.published()])
    assert err.value.code == ErrorCode.UNKNOWN_SIGNING_KEY
    assert "kiln-device keys --pin" in err.value.message and "KILN_TRUST_ON_FIRST_USE=1" in err.value.message
    assert asked == [] and not (tmp_path / "keys").exists()  # the API was not even asked
    # Enrolled (pinned at enrollment): verifies without asking the API.
    store.trust(signing_key.raw, "enrolled")
    assert store.key_for(signing_key.key_id, lambda: []) == signing_key.raw
    # Trust on first use is an explicit choice.
    monkeypatch.setenv("KILN_TRUST_ON_FIRST_USE", "1")
    assert TrustStore.from_env(tmp_path / "other", "").trust_on_first_use is True


def test_trust_on_first_use_then_unknown_keys_are_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    store = TrustStore(tmp_path / "keys", trust_on_first_use=True)
    calls = []

    def published() -> list[dict[str, object]]:
        calls.append(1)
        return [signing_key.published()]

    assert store.key_for(signing_key.key_id, published) == signing_key.raw
    assert (tmp_path / "keys" / f"{signing_key.key_id}.json").is_file()
    assert store.key_for(signing_key.key_id, published) == signing_key.raw
    assert len(calls) == 1  # trusted from the store the second time

    rotated = new_key()
    with pytest.raises(VerificationError) as err:
        store.key_for(rotated.key_id, lambda: [rotated.published()])
    assert err.value.code == ErrorCode.UNKNOWN_SIGNING_KEY
    assert f"kiln-device keys --trust {rotated.key_id}" in err.value.message


def test_an_unpublished_key_id_is_refused_on_first_use(tmp_path: Path, signing_key: SigningKey) -> None:
    with pytest.raises(VerificationError, match="does not publish"):
        TrustStore(tmp_path / "keys", trust_on_first_use=True).key_for(
            "0123456789abcdef", lambda: [signing_key.published()]
        )


def test_a_published_key_under_someone_elses_id_is_ignored(tmp_path: Path, signing_key: SigningKey) -> None:
    impostor = new_key().published()
    impostor["keyId"] = signing_key.key_id  # claims the trusted id with another key
    with pytest.raises(VerificationError):
        TrustStore(tmp_path / "keys", trust_on_first_use=True).key_for(signing_key.key_id, lambda: [impostor])


def test_a_tampered_trust_store_file_is_ignored(tmp_path: Path, signing_key: SigningKey) -> None:
    store = TrustStore(tmp_path / "keys")
    store.trust(signing_key.raw, "test")
    path = tmp_path / "keys" / f"{signing_key.key_id}.json"
    record = json.loads(path.read_text())
    record["publicKey"] = new_key().published()["publicKey"]
    path.write_text(json.dumps(record))
    assert store.stored() == {}


def test_pinned_keys_replace_the_store(tmp_path: Path, signing_key: SigningKey) -> None:
    other = new_key()
    store = TrustStore.from_env(tmp_path / "keys", other.published()["publicKey"])
    with pytest.raises(VerificationError, match="pins only"):
        store.key_for(signing_key.key_id, lambda: [signing_key.published()])
    assert store.key_for(other.key_id, lambda: []) == other.raw
    assert not (tmp_path / "keys").exists()  # nothing trusted on first use while pinned
