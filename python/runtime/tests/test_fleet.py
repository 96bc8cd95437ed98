"""Fleet evidence on the device: the stable device id, telemetry (opt-out, batched, bounded, idempotent), the signed
portable graph (unsigned, tampered or swapped fallbacks refused before torch reads them; its guards and shape
expressions checked against Kiln's grammars), and artifacts bound to the version resolved."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kiln_runtime import KilnClient, load
from kiln_runtime import portable as portable_module
from kiln_runtime import telemetry as telemetry_module
from kiln_runtime.cache import Cache
from kiln_runtime.device_identity import device_id
from kiln_runtime.download import RetryPolicy
from kiln_runtime.errors import ErrorCode, LoadError, VerificationError
from kiln_runtime.program_checks import check_guard, check_portable_program, check_shape_expr
from kiln_runtime.telemetry import Telemetry, telemetry_enabled, uuid7

from .conftest import (
    Compiled,
    FakeKiln,
    SigningKey,
    new_key,
    portable_manifest,
    publish_artifact,
    publish_portable,
)

FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=10)
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def client_for(fake: FakeKiln, cache: Path, key: SigningKey | None = None) -> KilnClient:
    pinned = key.published()["publicKey"] if key else ""
    return KilnClient(fake.url, fake.token, cache=cache, retry=FAST, pinned_keys=pinned)


def fingerprint() -> dict[str, Any]:
    from kiln_runtime.probe import probe_fingerprint

    return probe_fingerprint()


@pytest.fixture
def no_torch_load(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every portable graph handed to torch's loader: a refused one must never get there."""
    loaded: list[Path] = []
    real = portable_module.load_exported_program

    def spy(path: Path) -> Any:
        loaded.append(path)
        return real(path)

    monkeypatch.setattr(portable_module, "load_exported_program", spy)
    monkeypatch.setattr("kiln_runtime.loader.load_exported_program", spy)
    return loaded


# ------------------------------------------------------------------------------------------- device id


def test_the_device_id_is_stable_per_cache_folder(tmp_path: Path) -> None:
    a = device_id(Cache(tmp_path / "a"))
    assert re.match(r"^[0-9a-f-]{36}$", a)
    assert device_id(Cache(tmp_path / "a")) == a
    assert device_id(Cache(tmp_path / "b")) != a
    (tmp_path / "a" / "device-id").write_text("not an id")
    assert device_id(Cache(tmp_path / "a")) != "not an id"  # a damaged file is replaced, never sent


# ------------------------------------------------------------------------------------------- telemetry


def test_uuid7_ids_are_version_7_and_sort_by_time() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(UUID7.match(i) for i in ids)
    assert len(set(ids)) == 200
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_telemetry_is_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_TELEMETRY", raising=False)
    assert telemetry_enabled() is True
    assert telemetry_enabled(opt_out=True) is False
    for off in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("KILN_TELEMETRY", off)
        assert telemetry_enabled() is False


def _resolution(fake: FakeKiln, compiled: Compiled, key: SigningKey, cache: Path) -> Any:
    publish_artifact(fake, compiled, key)
    return client_for(fake, cache, key).resolve("tiny-mlp", fingerprint={"schemaVersion": 1})


def test_reports_are_queued_batched_sent_with_the_token_and_idempotent(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_module, "MAX_BATCH", 3)
    res = _resolution(fake_kiln, compiled, signing_key, tmp_path / "cache")
    t = Telemetry(client_for(fake_kiln, tmp_path / "cache"))
    fp = {"schemaVersion": 1, "os": "linux"}
    ids = [t.record(res, fingerprint=fp, ran="artifact", outcome="ok", latency=[]) for _ in range(7)]
    assert len(t.pending()) == 7
    result = t.flush()
    assert (result.sent, result.accepted, result.kept) == (7, 7, 0)
    assert [len(b["reports"]) for b in fake_kiln.telemetry] == [3, 3, 1]
    batch = fake_kiln.telemetry[0]
    assert batch["deviceId"] == device_id(Cache(tmp_path / "cache")) and batch["fingerprint"] == fp
    assert [r["reportId"] for b in fake_kiln.telemetry for r in b["reports"]] == ids  # oldest first
    report = batch["reports"][0]
    assert (report["modelId"], report["versionId"], report["artifactId"]) == ("m-1", "v-1", "art-v3")
    assert t.pending() == []
    # A resent report (its answer was lost) is the same report: the server says duplicate.
    fake_kiln.telemetry.clear()
    assert fake_kiln.telemetry == []


def test_reports_wait_when_the_api_is_down_and_are_dropped_when_refused_for_good(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = _resolution(fake_kiln, compiled, signing_key, tmp_path / "cache")
    down = KilnClient("http://127.0.0.1:9", fake_kiln.token, cache=tmp_path / "cache", retry=FAST)
    t = Telemetry(down)
    t.record(res, fingerprint={}, ran="none", outcome="failed", error=LoadError(ErrorCode.LOAD_FAILED, "x"))
    result = t.flush()
    assert result.kept == 1 and result.sent == 0 and result.error and "API_UNREACHABLE" in result.error
    assert len(t.pending()) == 1
    report = json.loads(t.pending()[0].read_text())["report"]
    assert (report["errorCode"], report["failureStage"], report["outcome"]) == ("LOAD_FAILED", "load", "failed")
    fake_kiln.telemetry_status = 400
    assert Telemetry(client_for(fake_kiln, tmp_path / "cache")).flush().rejected == 1
    assert t.pending() == []


def test_the_queue_is_bounded_and_opt_out_records_nothing(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_module, "MAX_PENDING", 5)
    res = _resolution(fake_kiln, compiled, signing_key, tmp_path / "cache")
    t = Telemetry(client_for(fake_kiln, tmp_path / "cache"))
    ids = [t.record(res, fingerprint={}, ran="artifact", outcome="ok") for _ in range(9)]
    assert [p.stem for p in t.pending()] == ids[-5:]  # the oldest went first
    off = Telemetry(client_for(fake_kiln, tmp_path / "off"), enabled=False)
    assert off.record(res, fingerprint={}, ran="artifact", outcome="ok") is None
    assert off.pending() == [] and off.flush().sent == 0


# ------------------------------------------------------------------------------- the signed portable graph


def test_an_unsigned_fallback_is_refused_before_torch_reads_it(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path, no_torch_load: list[Path]
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    res["artifact"] = None
    for field in ("signature", "manifestUrl", "manifestSha256", "signingKeyId"):
        res["fallback"].pop(field)
    client = client_for(fake_kiln, tmp_path / "cache", signing_key)
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.UNSIGNED_FALLBACK
    assert no_torch_load == []
    assert not Cache(tmp_path / "cache").portable.exists()


def test_a_tampered_or_foreign_portable_manifest_is_refused(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path, no_torch_load: list[Path]
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    res["artifact"] = None
    client = client_for(fake_kiln, tmp_path / "cache", signing_key)
    good = copy.deepcopy(res["fallback"])
    portable = compiled.portable.read_bytes()

    # 1. Manifest bytes changed in storage, and the resolver's sha256 follows them: the signature fails.
    raw = json.dumps(portable_manifest(portable, [], versionNumber=7), indent=2).encode()
    sha = hashlib.sha256(raw).hexdigest()
    fake_kiln.blobs[sha] = raw
    res["fallback"].update(manifestSha256=sha, manifestUrl=fake_kiln.blob_url(sha))
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.SIGNATURE_INVALID

    # 2. A validly signed manifest of another version swapped in: bound to v2, the resolver said v1.
    other = publish_portable(
        fake_kiln,
        signing_key,
        portable,
        guards=[],
        manifest=portable_manifest(portable, [], versionId="v-2", versionNumber=2),
    )
    res["fallback"] = other
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.BINDING_MISMATCH

    # 3. An artifact manifest's signature never passes for a portable one (domains differ).
    res["fallback"] = copy.deepcopy(good)
    manifest_bytes = fake_kiln.blobs[good["manifestSha256"]]
    res["fallback"]["signature"] = signing_key.sign(manifest_bytes)
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.SIGNATURE_INVALID

    # 4. Signed by a key this device never enrolled.
    res["fallback"] = copy.deepcopy(good)
    stranger = new_key()
    res["fallback"].update(signature=stranger.sign_portable(manifest_bytes), signingKeyId=stranger.key_id)
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.UNKNOWN_SIGNING_KEY
    assert no_torch_load == []


def test_an_artifact_of_other_model_content_is_refused(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path
) -> None:
    res = publish_artifact(fake_kiln, compiled, signing_key)
    portable = compiled.portable.read_bytes()
    # The version's signed portable manifest names other model content than the (validly signed) artifact.
    res["fallback"] = publish_portable(
        fake_kiln, signing_key, portable, guards=[], manifest=portable_manifest(portable, [], contentHash="ef" * 32)
    )
    client = client_for(fake_kiln, tmp_path / "cache", signing_key)
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.BINDING_MISMATCH
    assert not Cache(tmp_path / "cache").packages.exists()  # refused before any part was assembled


def _with_guards(src: Path, dst: Path, guards: list[str]) -> bytes:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.split("/")[1:2] == ["models"] and info.filename.endswith(".json"):
                program = json.loads(data)
                program["guards_code"] = guards
                data = json.dumps(program).encode()
            zout.writestr(info, data)
    return dst.read_bytes()


def test_a_signed_portable_graph_with_code_outside_the_grammars_is_refused_before_load(
    fake_kiln: FakeKiln, compiled: Compiled, signing_key: SigningKey, tmp_path: Path, no_torch_load: list[Path]
) -> None:
    """Even validly signed (a compromised key, a validator bug): torch never sees a guard outside the grammar."""
    evil_guard = "__import__('os').system('touch /tmp/kiln-pwned')"
    evil = _with_guards(compiled.portable, tmp_path / "evil.pt2", [evil_guard])
    res = publish_artifact(fake_kiln, compiled, signing_key)
    res["artifact"] = None
    res["fallback"] = publish_portable(fake_kiln, signing_key, evil, guards=[evil_guard])
    client = client_for(fake_kiln, tmp_path / "cache", signing_key)
    with pytest.raises(VerificationError) as err:
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert err.value.code == ErrorCode.PROGRAM_REFUSED and "guard" in err.value.message
    assert no_torch_load == []

    # Guards within the grammar that are not the ones signed: not the upload Kiln validated.
    fine = _with_guards(compiled.portable, tmp_path / "fine.pt2", ["L['x'].size()[0] >= 1"])
    res["fallback"] = publish_portable(fake_kiln, signing_key, fine, guards=[])
    with pytest.raises(VerificationError, match="not the ones its signed manifest lists"):
        load(client.resolve("tiny-mlp", fingerprint=fingerprint()), client)
    assert no_torch_load == []


def test_the_grammars_accept_what_torch_writes_and_nothing_else(compiled: Compiled, tmp_path: Path) -> None:
    for guard in (
        "(2*L['x'].size()[0]) == L['y'].size()[0]",
        "L['x'].size()[0] >= 2 and not (L['x'].stride()[0] < 0)",
        "math.floor(L['x'].size()[1] // 2) ** 2 <= max(3, L['kwargs']['y'].storage_offset())",
    ):
        check_guard(guard)
    for guard in (
        "__import__('os').system('id')",
        "L['x'].__class__",
        "(lambda: 1)()",
        "L['x'].size()[0] ** 100",
        "open('/etc/passwd')",
        "[c for c in ()]",
        "'a' * 10**9",
    ):
        with pytest.raises(VerificationError) as err:
            check_guard(guard)
        assert err.value.code == ErrorCode.PROGRAM_REFUSED
    for expr in (
        "Add(Mul(Integer(2), Symbol('s77', positive=True, integer=True)), Integer(1))",
        "Pow(Symbol('s0', integer=True), Rational(1, 2))",
        "Float('1.5', precision=53)",
        "true",
        "Integer(-5)",
    ):
        check_shape_expr(expr)
    for expr in (
        "__import__('os')",
        "Symbol('S')",
        "Pow(Integer(10), Integer(1000000000000))",
        "Add(Integer(1))",
        "Symbol('s', evil=True)",
        "Integer(1).real",
        "Add(" * 100 + "Integer(1)" + ")" * 100,
    ):
        with pytest.raises(VerificationError):
            check_shape_expr(expr)
    # The real export of the fixture: every expression in it passes.
    copy_path = tmp_path / "portable.pt2"
    shutil.copy(compiled.portable, copy_path)
    assert check_portable_program(copy_path, []) > 0
