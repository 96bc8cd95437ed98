"""Weights-only updates: reuse an earlier artifact's code part for a program that differs only in weight values.

A fine-tune is the same program with other weight values. With freezing, inductor folds constants while compiling,
so the weights blob holds the folded tensors; the code is independent of the values as long as inductor wrote no
value into it. It does for some: a 0-d constant is inlined into the kernel as a literal (`x * self.scale` with a
0-d buffer gives `static_cast<float>(0.5)`). So the driver does not assume; it proves it per build:

1. the Python side of the compile only (export, freezing, constant folding, codegen, the weights blob), with
   `aot_inductor.package_cpp_only`: no C++ compile of the generated code (g++ only assembles the 768-byte
   constants stub) and no precompiled header. `cpp.vec_isa_ok` skips inductor's ISA probe (it compiles and loads a
   program per ISA, ~12 s here): the vector ISA is then chosen from /proc/cpuinfo and `cpp.simdlen`, and a wrong
   choice would show in the sources, which step 2 compares.
2. the sources it generates must equal those the donor's `.so` was compiled from (kept in the donor's code part:
   `<key>.wrapper.cpp` and `<key>.kernel.cpp`; a cpp-only run writes the two as one file, the wrapper then the
   kernel), but for the compile-command comments at their end (they name the build folder). Equal sources mean the
   same kernels, the same constants table (names, dtypes, shapes, strides, offsets and sizes in the blob) and no
   value inlined differently; the donor's metadata must name the same target and recipe, and its code must read its
   weights from the external blob.
3. the artifact is then the donor's code part, byte for byte, plus the new weights blob at the donor's blob entry;
   the ISA check, the fresh-process verification against the new portable graph and the timing run as for any build.

Any failed check gives a reason (a code and a message) and the driver builds in full. The donor's code part keeps
the donor's `kiln_model_content_hash` in its metadata file: it names the program the code was compiled from; the
manifest's `reuse` says which code part was reused.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from kiln_runtime.cache import sha256_file

from .compile import inductor_configs_for, weights_blobs
from .errors import DriverError, ErrorCode
from .inputs import call_args
from .job import CodeDonor, Job
from .package_parts import PartFile
from .progress import log
from .toolchain import Compiler

WRAPPER_SUFFIX = ".wrapper.cpp"
KERNEL_SUFFIX = ".kernel.cpp"
METADATA_SUFFIX = ".wrapper_metadata.json"
# inductor appends "\n// Compile cmd\n// <command>\n// Link cmd\n// <command>\n" to every source it writes.
_COMMAND_COMMENTS = "\n// Compile cmd\n"
# A full build's kernel file starts with one line naming the wrapper's path ("Triton kernels are embedded ...").
_KERNEL_FIRST_LINE = "// Triton kernels are embedded as comments in "
# What a compile that reads its weights from the external blob defines (torch/_inductor/cpp_builder.py).
_EXTERNAL_WEIGHTS_DEFINE = "USE_MMAP_EXTERNAL"
# The one metadata value that differs between a program and its fine-tune (compile.inductor_configs_for).
_MODEL_HASH_KEY = "kiln_model_content_hash"
_CHUNK = 1 << 20

FallbackCode = Literal[
    "DONOR_NOT_REUSABLE",  # the donor's code part lacks what the check needs, or reads no external weights blob
    "DONOR_OTHER_RECIPE",  # the donor was built for another target or recipe
    "CODEGEN_FAILED",  # the Python side of the compile failed (the full build reports the error)
    "NO_WEIGHTS",  # the new program leaves nothing in the weights blob (a full build packages it otherwise)
    "SOURCES_DIFFER",  # other generated code: another program, or a weight value inlined into the code
]


class Fallback(TypedDict):
    code: FallbackCode
    message: str


class Reuse(TypedDict):
    """The manifest's `reuse`: present when the job named a code donor."""

    codeFrom: str  # the donor code part's sha256
    donorCacheKey: str
    reused: bool
    fallback: Fallback | None  # why the code was compiled anew (reused false)
    codegenSeconds: float  # the cpp-only compile (also spent when it falls back)


class NotReusable(Exception):
    def __init__(self, code: FallbackCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_fallback(self) -> Fallback:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class DonorCode:
    path: Path
    sha256: str
    cache_key: str
    blob_entry: str  # where the donor's code finds its weights blob inside the package
    source: str  # wrapper and kernel source as one cpp-only run writes them, without command comments
    metadata: dict[str, Any]


def source_body(text: str) -> str:
    """A generated source without the compile and link commands inductor appends (they name the build folder)."""
    at = text.rfind(_COMMAND_COMMENTS)
    return text[:at] if at >= 0 else text


def _one(names: list[str], suffix: str, where: str) -> str:
    found = [n for n in names if n.endswith(suffix)]
    if len(found) != 1:
        raise NotReusable("DONOR_NOT_REUSABLE", f"{where} holds {len(found)} `*{suffix}` files, not one")
    return found[0]


def load_donor(donor: CodeDonor, job_dir: Path, job: Job) -> DonorCode:
    """The donor's code part, checked against its sha256 (a mismatch refuses the job: the worker handed over another
    file than it named), and the sources and metadata the reuse check needs."""
    path = job_dir / donor["codePart"]
    if not path.is_file():
        raise DriverError(ErrorCode.INTERNAL, f"the job's code donor {donor['codePart']!r} is not a file")
    actual = sha256_file(path)
    if actual != donor["sha256"]:
        raise DriverError(
            ErrorCode.INTERNAL,
            f"the code donor's file hashes to {actual}, the job names {donor['sha256']}: refusing to reuse it",
            {"expected": donor["sha256"], "actual": actual},
        )
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if any(n.endswith("_weights.blob") for n in names):
                raise NotReusable("DONOR_NOT_REUSABLE", "the donor's code part holds a weights blob")
            wrapper = _one(names, WRAPPER_SUFFIX, "the donor's code part")
            kernel = _one(names, KERNEL_SUFFIX, "the donor's code part")
            meta = _one(names, METADATA_SUFFIX, "the donor's code part")
            if not any(n.endswith(".so") for n in names):
                raise NotReusable("DONOR_NOT_REUSABLE", "the donor's code part holds no shared library")
            wrapper_text = z.read(wrapper).decode("utf-8")
            kernel_text = source_body(z.read(kernel).decode("utf-8"))
            metadata = json.loads(z.read(meta))
    except zipfile.BadZipFile as exc:
        raise NotReusable("DONOR_NOT_REUSABLE", f"the donor's code part is not a zip: {exc}") from exc
    commands = wrapper_text[wrapper_text.rfind(_COMMAND_COMMENTS) :]
    if _EXTERNAL_WEIGHTS_DEFINE not in commands:
        # Its constants live in the .so: a new blob beside it would never be read.
        raise NotReusable("DONOR_NOT_REUSABLE", "the donor's code keeps its constants in the .so, not in a blob")
    if not kernel_text.startswith(_KERNEL_FIRST_LINE):
        raise NotReusable("DONOR_NOT_REUSABLE", "the donor's kernel source does not start as inductor writes it")
    kernel_code = kernel_text.split("\n", 1)[1] if "\n" in kernel_text else ""
    for key, want in (("kiln_target", job["targetId"]), ("kiln_recipe_hash", job["recipeHash"])):
        if metadata.get(key) != want:
            raise NotReusable(
                "DONOR_OTHER_RECIPE", f"the donor's {key} is {metadata.get(key)!r}, this build's is {want!r}"
            )
    blob_entry = wrapper[: -len(".cpp")] + "_weights.blob"
    return DonorCode(
        path=path,
        sha256=actual,
        cache_key=donor["cacheKey"],
        blob_entry=blob_entry,
        source=source_body(wrapper_text) + "\n" + kernel_code,
        metadata=metadata,
    )


def cpp_only_configs(job: Job, compiler: Compiler) -> dict[str, Any]:
    configs = inductor_configs_for(job, compiler)
    configs["aot_inductor.package_cpp_only"] = True
    configs["aot_inductor.precompile_headers"] = False
    configs["cpp.vec_isa_ok"] = True
    return configs


def generate_weights(ep: Any, example_inputs: list[Any], job: Job, compiler: Compiler, out_dir: Path) -> Path:
    """The cpp-only package of the program: generated sources, metadata and the weights blob, nothing compiled."""
    import torch

    ep.example_inputs = call_args(ep, example_inputs)
    configs = cpp_only_configs(job, compiler)
    out_dir.mkdir(parents=True, exist_ok=True)
    package = out_dir / "codegen.pt2"
    log.info("code generation only (no C++ compile) for %s", job["targetId"])
    torch.manual_seed(job["seed"])
    try:
        produced = torch._inductor.aoti_compile_and_package(
            ep, package_path=str(package), inductor_configs=dict(configs)
        )
    except Exception as exc:
        raise NotReusable("CODEGEN_FAILED", f"code generation failed: {type(exc).__name__}: {exc}") from exc
    return Path(produced)


def _first_difference(a: str, b: str) -> str:
    lines_a, lines_b = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=False)):
        if x != y:
            return f"line {i + 1}: donor {x.strip()[:120]!r}, now {y.strip()[:120]!r}"
    return f"the donor's source has {len(lines_a)} lines, the new one {len(lines_b)}"


def check_and_extract(donor: DonorCode, package: Path, dest: Path) -> Path:
    """Raises NotReusable unless the cpp-only package's sources equal the donor's; returns its weights blob."""
    blobs = weights_blobs(package)
    if len(blobs) != 1:
        raise NotReusable("NO_WEIGHTS", f"code generation wrote {len(blobs)} weights blobs, not one")
    ((blob_entry, blob_size),) = blobs.items()
    if blob_size == 0:
        raise NotReusable("NO_WEIGHTS", "the program leaves no constants in the weights blob")
    with zipfile.ZipFile(package) as z:
        names = z.namelist()
        wrapper = _one(names, WRAPPER_SUFFIX, "the generated package")
        source = source_body(z.read(wrapper).decode("utf-8"))
        metadata = json.loads(z.read(_one(names, METADATA_SUFFIX, "the generated package")))
        if source != donor.source:
            raise NotReusable(
                "SOURCES_DIFFER",
                "the generated code differs from the donor's (another program, or a weight value written into "
                f"the code): {_first_difference(donor.source, source)}",
            )
        ours = {k: v for k, v in metadata.items() if k != _MODEL_HASH_KEY}
        theirs = {k: v for k, v in donor.metadata.items() if k != _MODEL_HASH_KEY}
        if ours != theirs:
            keys = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
            raise NotReusable("DONOR_OTHER_RECIPE", f"the donor's code metadata differs in {keys}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with z.open(blob_entry) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    return dest


def not_reused(donor: CodeDonor, fallback: Fallback) -> Reuse:
    """The manifest's record when the donor was turned down before any code generation."""
    return {
        "codeFrom": donor["sha256"],
        "donorCacheKey": donor["cacheKey"],
        "reused": False,
        "fallback": fallback,
        "codegenSeconds": 0.0,
    }


def store_parts(donor: DonorCode, blob: Path, parts_dir: Path) -> list[PartFile]:
    """The artifact's parts: the donor's code part byte for byte, and the new blob at the donor's blob entry."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    code = parts_dir / donor.sha256
    shutil.copyfile(donor.path, code)
    if sha256_file(code) != donor.sha256:  # the donor file changed under us: never store what we did not check
        code.unlink()
        raise DriverError(ErrorCode.DRIVER_CRASHED, "the code donor's file changed while the build read it")
    sha = sha256_file(blob)
    weights = parts_dir / sha
    size = blob.stat().st_size
    # The work dir may be on another mount than the output (the fixed build folder is a bind in the sandbox).
    shutil.move(blob, weights)
    return [
        PartFile(role="code", sha256=donor.sha256, size=code.stat().st_size, path=code),
        PartFile(role="weights", sha256=sha, size=size, path=weights, entry=donor.blob_entry),
    ]


def try_reuse(
    donor: DonorCode, ep: Any, example_inputs: list[Any], job: Job, *, compiler: Compiler, work: Path
) -> tuple[Path | None, Reuse]:
    """The new weights blob when the donor's code is valid for them (else None), and what the manifest records."""
    start = time.monotonic()
    blob: Path | None = None
    fallback: Fallback | None = None
    try:
        package = generate_weights(ep, example_inputs, job, compiler, work / "codegen")
        blob = check_and_extract(donor, package, work / "reuse" / "weights.blob")
    except NotReusable as exc:
        fallback = exc.as_fallback()
    seconds = round(time.monotonic() - start, 3)
    shutil.rmtree(work / "codegen", ignore_errors=True)
    return blob, {
        "codeFrom": donor.sha256,
        "donorCacheKey": donor.cache_key,
        "reused": blob is not None,
        "fallback": fallback,
        "codegenSeconds": seconds,
    }
