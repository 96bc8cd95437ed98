"""The artifact manifest: a field-for-field mirror of `ArtifactManifest` in libs/contracts/src/manifest.ts, whose
JSON Schema (libs/contracts/src/schemas/artifact-manifest.schema.json) the manifest of a real build must pass
(tests/test_build_e2e.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypedDict

from .inductor_cache import InductorCacheRecord
from .isa import IsaCheckResult
from .job import Precision
from .progress import dumps
from .reuse import Reuse
from .toolchain import BuildGpu
from .verify import TimingResult, VerificationResult
from .weights_layout import TensorRange

MANIFEST_VERSION: Literal[1] = 1


class _ArtifactPartRequired(TypedDict):
    role: Literal["code", "weights"]
    sha256: str
    size: int


class ArtifactPart(_ArtifactPartRequired, total=False):
    entry: str  # weights only: where the blob belongs inside the code package
    # weights only: every tensor's byte range and sha256 (kiln_driver.weights_layout), so a device that holds some of
    # them downloads only the others; absent when the wrapper did not describe the blob exactly
    tensors: list[TensorRange]


class ArtifactRequirements(TypedDict):
    os: Literal["linux"]
    arch: Literal["x86_64", "aarch64"]
    x86Level: int | None
    computeCapability: str | None
    torch: str
    glibc: str | None
    glibcxx: str | None


class CxxInfo(TypedDict):
    path: str
    version: str


class ArtifactToolchain(TypedDict):
    torch: str
    python: str
    cxx: CxxInfo
    cudaRuntime: str | None
    inductorConfigs: dict[str, Any]


class BuildHost(TypedDict):
    cpuModel: str
    x86Level: int | None
    gpuName: str | None
    driverVersion: str | None


class BuildInfo(TypedDict):
    compileSeconds: float
    host: BuildHost
    gpu: BuildGpu | None
    sandbox: dict[str, Any]
    finishedAt: str


class NarrowedDim(TypedDict):
    input: int
    dim: int
    symbol: str
    declared: list[int | None]
    accepted: list[int | None]
    exampleSize: int


class InputRanges(TypedDict):
    narrowed: bool
    dims: list[NarrowedDim]


class _ArtifactManifestRequired(TypedDict):
    manifestVersion: Literal[1]
    target: str
    recipeHash: str
    modelContentHash: str
    cacheKey: str
    format: Literal["aoti-package-parts"]
    precision: Precision
    parts: list[ArtifactPart]
    requires: ArtifactRequirements
    toolchain: ArtifactToolchain
    isaCheck: IsaCheckResult
    inputRanges: InputRanges
    verification: VerificationResult
    timing: TimingResult
    build: BuildInfo


class ArtifactManifest(_ArtifactManifestRequired, total=False):
    reuse: Reuse  # the job named a code donor: whether its code part was reused, and why not
    inductorCache: InductorCacheRecord  # the job named inductorCache: the cache restored before, stored after
    tenantId: str  # the tenant it was built for (signed: devices check it against the version's portable manifest)


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(value) + "\n", encoding="utf-8")
    os.replace(tmp, path)
