"""The loader end to end against the fake API, with a real AOTInductor package of a tiny MLP: a verified
artifact loads and matches the portable graph; tampering of any kind is refused before anything is loaded."""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from kiln_runtime import KilnClient, load
from kiln_runtime.cache import Cache
from kiln_runtime.download import RetryPolicy
from kiln_runtime.errors import ErrorCode, IncompatibleArtifactError, VerificationError
from kiln_runtime.loader import load_aoti_package
from kiln_runtime.package_parts import (
    assemble_package,
    content_serialization_id,
    is_serialization_id_entry,
    split_package,
)

from .conftest import Compiled, FakeKiln, Fault, SigningKey, new_key, publish_artifact

pytestmark = pytest.mark.slow
FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=10)


def client_for(fake: FakeKiln, cache: Path) -> KilnClient:
    return KilnClient(fake.url, fake.token, cache=cache, retry=FAST, pinned_keys="", trust_on_first_use=True)


def fingerprint() -> dict[str, object]:
    from kiln_runtime.probe import probe_fingerprint

    return probe_fingerprint()


def aoti_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "aotinductor_*"))) | set(
        glob.glob(os.path.join(tempfile.gettempdir(), "*", "aotinductor_*"))
    )


def reference(compiled: Compiled, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.export.load(str(compiled.portable)).module()(x)


def test_split_and_assemble_roundtrip_loads_and_matches(compiled: Compiled, tmp_path: Path) -> None:
    code, *weights = split_package(compiled.package, tmp_path / "parts")
    assert weights and all(w.entry and w.entry.endswith("_weights.blob") for w in weights)
    out = assemble_package(code.path, [(w.entry or "", w.path) for w in weights], tmp_path / "assembled.pt2")
    with zipfile.ZipFile(compiled.package) as a, zipfile.ZipFile(out) as b:
        assert sorted(a.namelist()) == sorted(n for n in b.namelist())
        for name in a.namelist():
            if is_serialization_id_entry(name):
                # Replaced on purpose by one derived from the code (reproducible code parts): torch's own is random.
                assert b.read(name) == content_serialization_id(a) != a.read(name)
                continue
            assert a.read(name) == b.read(name), name
    x = torch.randn(5, 16)
    with torch.inference_mode():
        model = load_aoti_package(out)
        torch.testing.assert_close(model(x), reference(compiled, x), atol=1e-4, rtol=1e-3)
        del model


def test_a_verified_artifact_loads_runs_and_frees_its_temp_folder(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    publish_artifact(fake_kiln, compiled, signing_key)
    client = client_for(fake_kiln, tmp_path / "cache")
    res = client.resolve("tiny-mlp", fingerprint=fingerprint())
    assert fake_kiln.resolve_bodies[0]["model"] == "tiny-mlp"
    before = aoti_dirs()
    x = torch.randn(37, 16)
    with load(res, client) as model, torch.inference_mode():
        assert (model.kind, model.artifact_id, model.target_id) == ("artifact", "art-v3", "linux-x86_64-v3")
        assert model.needs is not None and model.needs.compatible
        assert os.environ["AOTI_RUNTIME_CHECK_INPUTS"] == "1"
        torch.testing.assert_close(model(x), reference(compiled, x), atol=1e-4, rtol=1e-3)
        assert len(aoti_dirs() - before) == 1
        with pytest.raises(RuntimeError):  # out of the exported range 1..64: refused, not run silently
            model(torch.randn(65, 16))
    assert aoti_dirs() == before  # closing freed the loader, which removed its extraction folder
    cache = Cache(tmp_path / "cache")
    assert cache.package_path(res.artifact.sha256).is_file()  # type: ignore[union-attr]
    assert json.loads((cache.keys / f"{signing_key.key_id}.json").read_text())["keyId"] == signing_key.key_id


def test_a_tampered_part_is_refused_before_loading(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    weights = next(p for p in res["artifact"]["parts"] if p["role"] == "weights")
    fake_kiln.faults[weights["sha256"]] = Fault(corrupt_at=weights["size"] // 2)
    client = client_for(fake_kiln, tmp_path / "cache")
    before = aoti_dirs()
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.INTEGRITY_FAILED
    assert "weights part" in err.value.message and "nothing was loaded" in err.value.message
    assert aoti_dirs() == before
    assert not Cache(tmp_path / "cache").packages.exists()


def test_a_modified_manifest_or_a_foreign_signature_is_refused(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    # 1. The storage serves a manifest with one byte changed (and the resolver's sha256 follows it).
    original = fake_kiln.blobs[res["artifact"]["sha256"]]
    manifest = json.loads(original)
    manifest["requires"]["x86Level"] = 2
    tampered = json.dumps(manifest, indent=2).encode()
    sha = hashlib.sha256(tampered).hexdigest()
    fake_kiln.blobs[sha] = tampered
    evil = copy.deepcopy(res)
    evil["artifact"].update(sha256=sha, manifestUrl=fake_kiln.blob_url(sha))
    fake_kiln.resolution = evil
    client = client_for(fake_kiln, tmp_path / "cache")
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.SIGNATURE_INVALID
    # 2. The manifest is re-signed by a key the device does not trust (same keyId claimed).
    evil["artifact"]["signature"] = new_key().sign(tampered)
    with pytest.raises(VerificationError, match="does not verify"):
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    # 3. ... or by a new key under its own id, which the API now also publishes: unknown to this device.
    other = new_key()
    evil["artifact"].update(signature=other.sign(tampered), signingKeyId=other.key_id)
    fake_kiln.keys.append(other.published())
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.UNKNOWN_SIGNING_KEY


def test_needs_this_host_lacks_are_refused_even_when_the_resolver_offers_it(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    publish_artifact(fake_kiln, compiled, signing_key, torch="2.12.0+cpu", glibc="9.99")
    client = client_for(fake_kiln, tmp_path / "cache")
    res = client.resolve("tiny-mlp", fingerprint=fingerprint())
    with pytest.raises(IncompatibleArtifactError) as err:
        load(res, client)
    assert [r.split(";")[0] for r in err.value.reasons] == [
        "built with torch 2.12.0 (2.12.0+cpu)",
        "needs glibc ≥ 9.99",
    ]
    parts = [p["sha256"] for p in res.raw["artifact"]["parts"]]
    assert not any(Cache(tmp_path / "cache").blob_path(s).exists() for s in parts)  # not even downloaded
    # With fallback, the portable graph stands in and says why.
    x = torch.randn(3, 16)
    with load(res, client, fallback=True) as model, torch.inference_mode():
        assert model.kind == "portable" and model.fallback_error is not None
        assert model.fallback_error.code == ErrorCode.INCOMPATIBLE_ARTIFACT
        torch.testing.assert_close(model(x), reference(compiled, x))


def test_without_an_artifact_the_portable_graph_is_loaded_safely(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    res["artifact"] = None
    res["fallback"]["reason"] = "no compiled artifact fits this device"
    client = client_for(fake_kiln, tmp_path / "cache")
    x = torch.randn(4, 16)
    with load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client) as model, torch.inference_mode():
        assert (model.kind, model.why) == ("portable", ["no compiled artifact fits this device"])
        torch.testing.assert_close(model(x), reference(compiled, x))
        with zipfile.ZipFile(model.path) as z:
            samples = [n for n in z.namelist() if "/data/sample_inputs/" in n]
            assert samples and all(z.read(n) == b"" for n in samples)  # the pickle never reaches torch
    corrupt = copy.deepcopy(res)
    corrupt["fallback"]["sha256"] = "0" * 64
    fake_kiln.resolution = corrupt
    with pytest.raises(VerificationError):
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)


def test_a_flipped_byte_in_a_cached_part_is_caught_and_healed(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    client = client_for(fake_kiln, tmp_path / "cache")
    load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client).close()
    code = next(p for p in res["artifact"]["parts"] if p["role"] == "code")
    blob = Cache(tmp_path / "cache").blob_path(code["sha256"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    fake_kiln.requests.clear()
    with load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client) as model:
        assert model.kind == "artifact"
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == code["sha256"]
    downloaded = [p for m, p, r in fake_kiln.requests if p.startswith("/blobs/")]
    assert downloaded == [f"/blobs/{code['sha256']}"]  # only the bad part was fetched again


def cli(fake: FakeKiln, cache: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KILN_CACHE_DIR": str(cache),
        "KILN_DEVICE_TOKEN": token or fake.token,
        "KILN_TRUST_ON_FIRST_USE": "1",
    }
    env.pop("KILN_SIGNING_PUBLIC_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "kiln_runtime", *args, "--api", fake.url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_cli_run_fetch_and_exit_codes(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    cache = tmp_path / "cache"
    run = cli(fake_kiln, cache, "run", "tiny-mlp", "--runs", "5")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["ran"]["targetId"] == "linux-x86_64-v3" and out["withinTolerance"] is True
    assert out["maxAbsError"] < 1e-4 and out["speedup"] > 0 and out["eagerMs"] > 0
    assert "chosen: linux-x86_64-v3" in run.stderr and "only compatible artifact" in run.stderr

    fetch = cli(fake_kiln, cache, "fetch", "tiny-mlp")
    assert fetch.returncode == 0, fetch.stderr
    assert json.loads(fetch.stdout)["path"].endswith(f"{res['artifact']['sha256']}.pt2")

    bad = cli(fake_kiln, cache, "run", "tiny-mlp", token="kiln_wrong")
    assert bad.returncode == 3
    assert json.loads(bad.stdout)["error"]["details"] == {"status": 401, "apiCode": "UNAUTHENTICATED"}

    weights = next(p for p in res["artifact"]["parts"] if p["role"] == "weights")
    fake_kiln.faults[weights["sha256"]] = Fault(corrupt_at=0)
    tampered = cli(fake_kiln, tmp_path / "fresh-cache", "run", "tiny-mlp")
    assert tampered.returncode == 5, tampered.stderr
    assert json.loads(tampered.stdout)["error"]["code"] == "INTEGRITY_FAILED"
    fallback = cli(fake_kiln, tmp_path / "fresh-cache", "run", "tiny-mlp", "--fallback", "--runs", "2")
    assert fallback.returncode == 0, fallback.stderr
    assert json.loads(fallback.stdout)["ran"]["kind"] == "portable"

    fake_kiln.resolution = None
    missing = cli(fake_kiln, cache, "fetch", "nope")
    assert missing.returncode == 3 and json.loads(missing.stdout)["error"]["details"]["apiCode"] == "NOT_FOUND"


def test_calls_outside_the_accepted_input_range_run_the_portable_graph() -> None:
    """An artifact whose batch range inductor narrowed to [2, 15] hands other sizes to the portable graph."""
    from kiln_runtime.loader import LoadedModel

    manifest = {
        "inputRanges": {
            "narrowed": True,
            "dims": [{"input": 0, "dim": 0, "symbol": "s77", "declared": [1, 32], "accepted": [2, 15]}],
        }
    }
    calls: list[str] = []
    portable = LoadedModel(kind="portable", resolution=None, path=Path("p"), why=[])  # type: ignore[arg-type]
    portable._holder.append(lambda x: calls.append("portable") or "portable")
    model = LoadedModel(kind="artifact", resolution=None, path=Path("a"), why=[], manifest=manifest)  # type: ignore[arg-type]
    model._holder.append(lambda x: calls.append("artifact") or "artifact")
    model._portable_loader = lambda: portable

    assert model.accepts((torch.zeros(2, 3),)) and model.accepts((torch.zeros(15, 3),))
    assert not model.accepts((torch.zeros(1, 3),)) and not model.accepts((torch.zeros(16, 3),))
    assert model(torch.zeros(4, 3)) == "artifact"
    assert model(torch.zeros(1, 3)) == "portable"
    assert model(torch.zeros(32, 3)) == "portable"
    assert calls == ["artifact", "portable", "portable"]


def test_the_unmeasured_artifacts_policy_goes_into_the_resolve_request_only_when_asked(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    publish_artifact(fake_kiln, compiled, signing_key)
    client = client_for(fake_kiln, tmp_path / "cache")
    client.resolve("tiny-mlp", fingerprint=fingerprint())
    client.resolve("tiny-mlp", fingerprint=fingerprint(), unmeasured_artifacts="evidence-only")
    assert "unmeasuredArtifacts" not in fake_kiln.resolve_bodies[0]  # the API's default (serve) applies
    assert fake_kiln.resolve_bodies[1]["unmeasuredArtifacts"] == "evidence-only"
