"""The shared test vectors of test/fixtures/contracts/ for the device runtime's matching rules.

libs/matching/src/contract-vectors.spec.ts runs the same files against the server's TypeScript, so a rule one side
applies differently fails one of the two test commands.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kiln_runtime.client import check_manifest
from kiln_runtime.errors import VerificationError
from kiln_runtime.fingerprint import LIMITS, validate_fingerprint
from kiln_runtime.needs import check_needs
from kiln_runtime.resolution import ResolvedArtifact
from kiln_runtime.versions import (
    compare_dotted,
    cuda_major_minor,
    normalize_compute_capability,
    normalize_dotted,
    parse_dotted,
    parse_torch_version,
)

REPO = Path(__file__).resolve().parents[3]
CONTRACTS = REPO / "test" / "fixtures" / "contracts"
SCHEMAS = REPO / "libs" / "contracts" / "src" / "schemas"


def _load(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / name).read_text(encoding="utf-8"))


VERSIONS = _load("versions.json")
NEEDS = _load("needs.json")
FINGERPRINTS = _load("fingerprints.json")
FINGERPRINT_SCHEMA = json.loads((SCHEMAS / "fingerprint.schema.json").read_text(encoding="utf-8"))
MANIFESTS = _load("manifests.json")
MANIFEST_SCHEMA = Draft202012Validator(
    json.loads((SCHEMAS / "artifact-manifest.schema.json").read_text(encoding="utf-8"))
)


@pytest.mark.parametrize("vector", VERSIONS["dotted"], ids=lambda v: repr(v["input"]))
def test_dotted_versions(vector: dict[str, Any]) -> None:
    assert parse_dotted(vector["input"]) == vector["parsed"]
    assert normalize_dotted(vector["input"]) == vector["normalized"]


@pytest.mark.parametrize("vector", VERSIONS["compare"], ids=lambda v: f"{v['a']} vs {v['b']}")
def test_dotted_comparison(vector: dict[str, Any]) -> None:
    a, b = parse_dotted(vector["a"]), parse_dotted(vector["b"])
    assert a is not None and b is not None
    assert compare_dotted(a, b) == vector["result"]


@pytest.mark.parametrize("vector", VERSIONS["torch"], ids=lambda v: repr(v["input"]))
def test_torch_versions(vector: dict[str, Any]) -> None:
    parsed = parse_torch_version(vector["input"])
    assert (dataclasses.asdict(parsed) if parsed else None) == vector["parsed"]


@pytest.mark.parametrize("vector", VERSIONS["cudaMajorMinor"], ids=lambda v: repr(v["input"]))
def test_cuda_major_minor(vector: dict[str, Any]) -> None:
    assert cuda_major_minor(vector["input"]) == vector["result"]


@pytest.mark.parametrize("vector", VERSIONS["computeCapability"], ids=lambda v: repr(v["input"]))
def test_compute_capabilities(vector: dict[str, Any]) -> None:
    assert normalize_compute_capability(vector["input"]) == vector["result"]


@pytest.mark.parametrize("name", sorted(NEEDS["fingerprints"]))
def test_needs_fingerprints_are_valid(name: str) -> None:
    assert validate_fingerprint(NEEDS["fingerprints"][name]) == []


@pytest.mark.parametrize("vector", NEEDS["vectors"], ids=lambda v: v["name"])
def test_needs_check_gives_the_resolvers_reasons(vector: dict[str, Any]) -> None:
    check = check_needs(NEEDS["fingerprints"][vector["fingerprint"]], vector["manifest"])
    assert (check.passed, check.failed) == (vector["passed"], vector["failed"])
    assert check.compatible == (not vector["failed"])


def _apply_changes(base: Any, changes: dict[str, Any]) -> Any:
    """The base with each change applied: a JSON Pointer to its new value, "$delete" removing it, "" the whole
    document (as test/support/contract-vectors.ts applies them for node:test)."""
    doc = copy.deepcopy(base)
    for pointer, value in changes.items():
        if pointer == "":
            doc = value
            continue
        *keys, last = pointer[1:].split("/")
        parent = doc
        for key in keys:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        if value == "$delete":
            del parent[int(last) if isinstance(parent, list) else last]
        elif isinstance(parent, list) and int(last) == len(parent):
            parent.append(copy.deepcopy(value))
        else:
            parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(value)
    return doc


def test_the_fingerprint_schema_states_the_runtimes_limits() -> None:
    props = FINGERPRINT_SCHEMA["properties"]
    flags = props["cpu"]["properties"]["flags"]
    assert {
        "maxCpuFlags": flags["maxItems"],
        "maxCpuFlagLength": flags["items"]["maxLength"],
        "maxGpus": props["gpus"]["maxItems"],
        "maxNameLength": FINGERPRINT_SCHEMA["$defs"]["name"]["maxLength"],
        "maxVersionLength": props["torch"]["properties"]["version"]["maxLength"],
        "maxHostnameLength": props["hostname"]["maxLength"],
    } == LIMITS


@pytest.mark.parametrize("vector", FINGERPRINTS["vectors"], ids=lambda v: v["name"])
def test_fingerprint_validation_and_schema(vector: dict[str, Any]) -> None:
    fp = _apply_changes(FINGERPRINTS["bases"][vector["base"]], vector["changes"])
    errors = validate_fingerprint(fp)
    assert (errors == []) == vector["valid"], errors
    assert Draft202012Validator(FINGERPRINT_SCHEMA).is_valid(fp) == vector["schema"]


def _real_manifest(base: str) -> dict[str, Any]:
    return json.loads((REPO / "test" / "fixtures" / "manifests" / f"{base}.json").read_text(encoding="utf-8"))


def _device_accepts(manifest: Any, target_id: str) -> bool:
    """check_manifest as the client runs it on a signed manifest the resolver named for `target_id`."""
    artifact = ResolvedArtifact(
        id="artifact",
        target_id=target_id,
        sha256="0" * 64,
        size=1,
        signature="",
        signing_key_id="",
        manifest_url="",
        parts=(),
        expires_at="",
        speedup=1.0,
        reasons=(),
    )
    try:
        check_manifest(manifest, artifact)
    except VerificationError:
        return False
    return True


def test_every_real_manifest_is_valid() -> None:
    for path in sorted((REPO / "test" / "fixtures" / "manifests").glob("*/*.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        MANIFEST_SCHEMA.validate(manifest)
        assert _device_accepts(manifest, manifest["target"]), path


@pytest.mark.parametrize("vector", MANIFESTS["vectors"], ids=lambda v: v["name"])
def test_manifest_check_and_schema(vector: dict[str, Any]) -> None:
    base = _real_manifest(vector["base"])
    manifest = _apply_changes(base, vector["changes"])
    assert _device_accepts(manifest, base["target"]) == vector["device"]
    assert MANIFEST_SCHEMA.is_valid(manifest) == vector["schema"]
