"""The job file the build worker hands the driver (job.json), parsed and checked.

Its JSON Schema is libs/contracts/src/schemas/driver-job.schema.json: whatever it accepts, parse_job accepts
(tests/test_contract_vectors.py runs the shared vectors test/fixtures/contracts/driver-jobs.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypedDict

from .cross import CrossRecipe, CrossToolchain
from .errors import DriverError, ErrorCode
from .vec_isa import VecIsaAnswer

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")


class Toolchain(TypedDict):
    torch: str
    cxx: str


class Tolerance(TypedDict):
    atol: float
    rtol: float


class _RecipeRequired(TypedDict):
    targetId: str
    recipeVersion: int
    device: Literal["cpu", "cuda"]
    toolchain: Toolchain
    inductorConfigs: dict[str, str | int | float | bool]
    forbiddenRegisters: list[str]
    tolerance: Tolerance


class Recipe(_RecipeRequired, total=False):
    precision: Precision  # absent = fp32
    cross: CrossRecipe  # a cross build (cross.py)


class JobRequires(TypedDict):
    os: Literal["linux"]
    arch: Literal["x86_64", "aarch64"]
    x86Level: int | None
    computeCapability: str | None


class JobHost(TypedDict):
    cpuModel: str
    x86Level: int | None
    gpuName: str | None
    driverVersion: str | None


class _JobTimingRequired(TypedDict):
    warmup: int
    runs: int


class JobTiming(_JobTimingRequired, total=False):
    maxSeconds: float  # bound of the whole measurement (default 60)
    lockWaitSeconds: float  # bound of every wait for the host timing lock (default 120)


class _JobRequired(TypedDict):
    targetId: str
    recipe: Recipe
    recipeHash: str
    modelContentHash: str
    cacheKey: str
    requires: JobRequires
    host: JobHost
    sandbox: dict[str, Any]
    timing: JobTiming
    seed: int


class CodeDonor(TypedDict):
    """An earlier artifact's code part the build may reuse (a weights-only update, reuse.py).

    codePart: the part's file, relative to the job file's folder; sha256: what the worker downloaded (the driver
    refuses a file that hashes otherwise); cacheKey: the donor artifact's, recorded in the manifest."""

    codePart: str
    sha256: str
    cacheKey: str


class CacheArchive(TypedDict):
    """An earlier build's inductor cache (inductor_cache.py): a zip in the job folder (`archive`, relative to the job
    file's folder) and the sha256 the worker verified it against (the driver checks it again)."""

    archive: str
    sha256: str


class _JobInductorCacheRequired(TypedDict):
    store: bool  # pack the cache folder into the out folder after a successful build


class JobInductorCache(_JobInductorCacheRequired, total=False):
    restore: CacheArchive  # the latest cache of the build's scope (tenant, target, recipe), when there is one


class Job(_JobRequired, total=False):
    codeDonor: CodeDonor
    vecIsa: VecIsaAnswer  # the worker's vector-ISA check, made once per worker and compiler (vec_isa.py)
    inductorCache: JobInductorCache
    tenantId: str  # written into the manifest (absent from older workers' jobs)
    crossToolchain: CrossToolchain  # the installed toolchain of a cross recipe, as the sandbox shows it
    traceparent: str  # W3C trace context of the build activity's span; ignored unless well-formed (progress.py)


def _bad(message: str) -> DriverError:
    # A malformed job is the worker's bug, and it fails the same way on every retry.
    return DriverError(ErrorCode.INTERNAL, f"invalid job file: {message}")


def _need(obj: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _bad(f"{where}.{key} is missing")
    value = obj[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise _bad(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def parse_job(raw: Any) -> Job:
    _need(raw, "targetId", str, "job")
    recipe = _need(raw, "recipe", dict, "job")
    for key in ("recipeHash", "modelContentHash", "cacheKey"):
        _need(raw, key, str, "job")
    _need(recipe, "targetId", str, "recipe")
    _need(recipe, "recipeVersion", int, "recipe")
    if _need(recipe, "device", str, "recipe") not in ("cpu", "cuda"):
        raise _bad(f"recipe.device must be 'cpu' or 'cuda', not {recipe['device']!r}")
    toolchain = _need(recipe, "toolchain", dict, "recipe")
    _need(toolchain, "torch", str, "recipe.toolchain")
    if not _need(toolchain, "cxx", str, "recipe.toolchain"):
        raise _bad("recipe.toolchain.cxx is empty")
    _need(recipe, "inductorConfigs", dict, "recipe")
    forbidden = _need(recipe, "forbiddenRegisters", list, "recipe")
    if not all(isinstance(r, str) for r in forbidden):
        raise _bad("recipe.forbiddenRegisters must be strings")
    if "precision" in recipe and recipe["precision"] not in PRECISIONS:
        raise _bad(f"recipe.precision must be one of {list(PRECISIONS)}, not {recipe['precision']!r}")
    tolerance = _need(recipe, "tolerance", dict, "recipe")
    for key in ("atol", "rtol"):
        if _need(tolerance, key, (int, float), "recipe.tolerance") < 0:
            raise _bad(f"recipe.tolerance.{key} is negative")
    if recipe["targetId"] != raw["targetId"]:
        raise _bad(f"targetId {raw['targetId']!r} differs from recipe.targetId {recipe['targetId']!r}")
    requires = _need(raw, "requires", dict, "job")
    _need(requires, "os", str, "requires")
    _need(requires, "arch", str, "requires")
    host = _need(raw, "host", dict, "job")
    _need(host, "cpuModel", str, "host")
    _need(raw, "sandbox", dict, "job")
    timing = _need(raw, "timing", dict, "job")
    if _need(timing, "warmup", int, "timing") < 0 or _need(timing, "runs", int, "timing") < 1:
        raise _bad("timing.warmup must be >= 0 and timing.runs >= 1")
    for key in ("maxSeconds", "lockWaitSeconds"):
        if key in timing and (isinstance(timing[key], bool) or not isinstance(timing[key], (int, float))):
            raise _bad(f"timing.{key} must be a number")
        if key in timing and timing[key] < 0:
            raise _bad(f"timing.{key} must be >= 0")
    _need(raw, "seed", int, "job")
    if "tenantId" in raw and not isinstance(raw["tenantId"], str):
        raise _bad("job.tenantId must be a string")
    if "codeDonor" in raw:
        _check_code_donor(raw["codeDonor"])
    if "vecIsa" in raw:
        _check_vec_isa(raw["vecIsa"])
    if "inductorCache" in raw:
        _check_inductor_cache(raw["inductorCache"])
    if "cross" in recipe:
        _check_cross(recipe["cross"], requires)
    if "crossToolchain" in raw:
        _check_cross_toolchain(raw["crossToolchain"])
    return raw  # type: ignore[no-any-return]


def _check_cross(cross: Any, requires: dict[str, Any]) -> None:
    if not isinstance(cross, dict):
        raise _bad("recipe.cross must be an object")
    for key in ("arch", "buildArch", "toolchainName", "targetTorch", "vecIsa", "emulatedCpu"):
        if not _need(cross, key, str, "recipe.cross"):
            raise _bad(f"recipe.cross.{key} is empty")
    if cross["arch"] != requires["arch"]:
        raise _bad(f"recipe.cross.arch {cross['arch']!r} differs from requires.arch {requires['arch']!r}")


def _check_cross_toolchain(toolchain: Any) -> None:
    if not isinstance(toolchain, dict):
        raise _bad("job.crossToolchain must be an object")
    for key in ("root", "site", "sysroot", "python", "qemu"):
        if not _need(toolchain, key, str, "crossToolchain").startswith("/"):
            raise _bad(f"crossToolchain.{key} must be an absolute path")
    _need(toolchain, "torch", str, "crossToolchain")


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_in_job_folder(path: str, where: str) -> None:
    names = path.split("/")
    # A file of the job folder, never anything outside it.
    if not path or path.startswith("/") or "\\" in path or any(n in ("", ".", "..") for n in names):
        raise _bad(f"{where} must be a relative path inside the job folder, not {path!r}")


def _check_code_donor(donor: Any) -> None:
    if not isinstance(donor, dict):
        raise _bad("job.codeDonor must be an object")
    _check_in_job_folder(_need(donor, "codePart", str, "codeDonor"), "codeDonor.codePart")
    for key in ("sha256", "cacheKey"):
        if not _is_sha256(_need(donor, key, str, "codeDonor")):
            raise _bad(f"codeDonor.{key} must be 64 lowercase hex digits")


def _check_inductor_cache(cache: Any) -> None:
    if not isinstance(cache, dict):
        raise _bad("job.inductorCache must be an object")
    _need(cache, "store", bool, "inductorCache")
    if "restore" in cache:
        restore = _need(cache, "restore", dict, "inductorCache")
        _check_in_job_folder(_need(restore, "archive", str, "inductorCache.restore"), "inductorCache.restore.archive")
        if not _is_sha256(_need(restore, "sha256", str, "inductorCache.restore")):
            raise _bad("inductorCache.restore.sha256 must be 64 lowercase hex digits")


def recipe_precision(recipe: Recipe) -> Precision:
    return recipe.get("precision", "fp32")


def load_job(path: Path) -> Job:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad(f"cannot read {path}: {exc}") from exc
    return parse_job(raw)


def _check_vec_isa(answer: Any) -> None:
    if not isinstance(answer, dict):
        raise _bad("job.vecIsa must be an object")
    if not _need(answer, "cxx", str, "vecIsa").startswith("/"):
        raise _bad("vecIsa.cxx must be an absolute path")
    for key in ("listed", "valid"):
        names = _need(answer, key, list, "vecIsa")
        if len(names) > 32 or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in names):
            raise _bad(f"vecIsa.{key} must be at most 32 ISA names")
    if not set(answer["valid"]) <= set(answer["listed"]):
        raise _bad("vecIsa.valid names an ISA that vecIsa.listed does not")
