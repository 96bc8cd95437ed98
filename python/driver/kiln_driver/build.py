"""One build job, start to finish: neutralize, check toolchain, load, compile, ISA check, split, verify, manifest."""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from . import cross as cross_build
from .compare import ieee_fp32
from .compile import (
    CompileResult,
    as_json,
    compile_program,
    inductor_configs_for,
    load_program,
    program_on,
    release_compile_state,
)
from .elf_needs import read_needs
from .errors import DriverError, ErrorCode
from .host_lock import DEFAULT_WAIT_S, host_lock
from .inductor_cache import ARCHIVE_NAME, CacheRecord, InductorCacheRecord
from .inductor_cache import pack as pack_inductor_cache
from .inductor_cache import restore as restore_inductor_cache
from .input_checks import accepted_dims, narrowed_dims, narrowed_range_error, set_is_accepted
from .inputs import input_shapes, materialize, plan_inputs
from .isa import check_isa, check_isa_aarch64, objdump_for
from .job import Job, load_job, recipe_precision
from .manifest import MANIFEST_VERSION, ArtifactManifest, ArtifactPart, write_json_atomic
from .neutralize import neutralize_model
from .package_parts import WEIGHTS_BLOB_SUFFIX, split_package
from .precision import convert_program
from .progress import Events, log, valid_traceparent
from .reuse import DonorCode, NotReusable, Reuse, load_donor, not_reused, store_parts, try_reuse
from .toolchain import BuildGpu, Compiler, build_gpu, check_toolchain
from .verify import DEFAULT_TIMING_MAX_S, TimingResult, Verifier, VerifyRequest
from .weights_layout import NoLayout, weights_layout

MANIFEST_FILE = "manifest.json"
ERROR_FILE = "error.json"
PARTS_DIR = "parts"


# The build folder at a fixed path (KILN_BUILD_DIR; the worker's sandbox shows the job's build folder there).
# Inductor writes the folder's path into the generated C++ (comments, compile commands), into the kernel file's
# name (a hash over its source) and, through -g1, into the shared object: compiled in a folder of the job's random
# name, the same model, target and toolchain gave other code bytes on every build. At a fixed path they agree.
BUILD_DIR_ENV = "KILN_BUILD_DIR"


def fixed_build_dir() -> Path | None:
    """The fixed build folder when the worker gives one, emptied: nothing of an earlier run may leak into this one."""
    value = os.environ.get(BUILD_DIR_ENV)
    if not value:
        return None
    root = Path(value)
    if not root.is_absolute():
        raise DriverError(ErrorCode.INTERNAL, f"{BUILD_DIR_ENV} must be an absolute path, got {value!r}")
    root.mkdir(parents=True, exist_ok=True)
    _empty_folder(root)
    return root


def _empty_folder(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def prepare_environment(work: Path, build_root: Path | None = None) -> None:
    """Process-wide settings that must be in place before torch's inductor is imported."""
    if build_root is not None:
        # Every path inductor derives lands under the fixed folder: its cache, and TMPDIR, where it keeps the
        # precompiled headers (tempfile reads TMPDIR once, so its cached value is reset too).
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(build_root / "inductor-cache")
        tmp = build_root / "tmp"
        tmp.mkdir(exist_ok=True)
        os.environ["TMPDIR"] = str(tmp)
        tempfile.tempdir = None
    else:
        # A private compile cache per job (shared caches can be poisoned); the worker may already give one.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(work / "inductor-cache"))
    try:
        getpass.getuser()
    except (KeyError, OSError):
        # A uid without a passwd entry: inductor names cache folders after the user and would crash.
        os.environ["USER"] = f"uid{os.getuid()}"


def clean_outputs(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST_FILE, ERROR_FILE, ARCHIVE_NAME):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)


def _extract_shared_objects(package: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    found: list[Path] = []
    with zipfile.ZipFile(package) as z:
        for i, info in enumerate(z.infolist()):
            if info.filename.endswith(".so"):
                target = dest / f"{i}-{Path(info.filename).name}"
                with z.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found.append(target)
    if not found:
        raise DriverError(ErrorCode.COMPILE_FAILED, "the AOTInductor package contains no shared library")
    return found


def drop_compile_outputs(package: Path | None, inductor_cache: str | None) -> int:
    """Once the parts are split off: remove the compiled package and the weights blobs inductor left in its cache.

    Each is one more full copy of the weights on the build host's disk while the verifier assembles and extracts
    its own (a 2 GiB model peaked at 7 copies, 14.5 GiB: bench/README.md, "A 2 GiB model end to end"). Nothing
    reads them after the split; the rest of the cache (code, headers) stays. Returns the bytes removed.
    """
    # None: a weights-only update, whose "package" is the donor's code part, a read-only input of the job.
    victims = [package] if package is not None else []
    if inductor_cache:
        victims += [p for p in Path(inductor_cache).rglob(f"*{WEIGHTS_BLOB_SUFFIX}") if p.is_file()]
    freed = 0
    for path in victims:
        try:
            size = path.lstat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def _restore_cache(job: Job, job_dir: Path) -> InductorCacheRecord | None:
    """The cache the job offers, restored into the (empty) inductor cache folder; None when the job says nothing of
    caches. A cache that cannot be restored is ignored, with the reason in the log and the manifest."""
    if "inductorCache" not in job:
        return None
    record: InductorCacheRecord = {"restored": None, "stored": None}
    offered = job["inductorCache"].get("restore")
    if offered is None:
        return record
    restored, ignored = restore_inductor_cache(
        job_dir / offered["archive"], offered["sha256"], Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    )
    if ignored is not None:
        log.warning("inductor cache %s ignored, building without it: %s", offered["sha256"][:12], ignored)
        record["ignored"] = ignored
    else:
        assert restored is not None
        log.info("inductor cache %s restored (%d bytes)", restored["sha256"], restored["bytes"])
        record["restored"] = restored
    return record


def _pack_cache(out_dir: Path) -> CacheRecord | None:
    start = time.monotonic()
    stored = pack_inductor_cache(Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]), out_dir / ARCHIVE_NAME)
    if stored is not None:
        log.info(
            "inductor cache packed for the next build: %s, %d bytes, in %.2f s",
            stored["sha256"],
            stored["bytes"],
            time.monotonic() - start,
        )
    return stored


def _package_roots() -> list[str]:
    """The folders kiln_driver and kiln_runtime import from (an emulated verifier gets them on its PYTHONPATH)."""
    import kiln_runtime

    roots = {str(Path(__file__).resolve().parent.parent), str(Path(kiln_runtime.__file__).resolve().parent.parent)}
    return sorted(roots)


def _check_machine(shared_objects: list[Path], machine: str) -> None:
    """Every shared object is Linux code for `machine`: a cross compiler that fell back to the host's would
    otherwise give an artifact that no device of the target can load."""
    from kiln_runtime.machine_code import code_target

    for so in shared_objects:
        with so.open("rb") as f:
            found = code_target(f.read(64))
        if found != ("linux", machine):
            raise DriverError(
                ErrorCode.COMPILE_FAILED,
                f"{so.name} is {found[1] if found else 'not a shared object'}, the target is linux/{machine}",
                {"found": list(found) if found else None, "want": ["linux", machine]},
            )


UNMEASURED_REASON = (
    "verified under user-mode emulation (qemu): emulation proves correctness, not speed; devices report the speed"
)


def _unmeasured() -> TimingResult:
    """The timing of a cross build, whose speed emulation cannot measure: zeros, said so, never ranked by it."""
    return {  # type: ignore[typeddict-unknown-key]
        "eagerMs": 0.0,
        "compiledMs": 0.0,
        "speedup": 0.0,
        "runs": 0,
        "threads": 0,
        "inputShapes": [],
        "lock": "none",
        "lockWaitS": 0.0,
        "truncated": False,
        "method": "unmeasured",
        "reason": UNMEASURED_REASON,
    }


def _cuda_runtime() -> str | None:
    import torch

    return torch.version.cuda


def run_build(
    model: Path, job_path: Path, out_dir: Path, events: Events, work_dir: Path | None = None
) -> ArtifactManifest:
    clean_outputs(out_dir)
    job: Job = load_job(job_path)
    events.traceparent = valid_traceparent(job.get("traceparent"))
    if "traceparent" in job and events.traceparent is None:
        log.warning("ignoring the job's traceparent %r: not a W3C traceparent", job["traceparent"])
    recipe = job["recipe"]
    build_root = fixed_build_dir()
    if work_dir is not None:
        work = work_dir
    elif build_root is not None:
        work = build_root / "work"
    else:
        work = Path(tempfile.mkdtemp(prefix="kiln-build-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare_environment(work, build_root)
    log.info(
        "job: target %s (recipe v%s, %s), cache key %s, model %s (%d bytes), work dir %s",
        job["targetId"],
        recipe["recipeVersion"],
        recipe["device"],
        job["cacheKey"],
        model,
        model.stat().st_size if model.exists() else -1,
        work,
    )
    try:
        with Verifier() as verifier:
            return _build(model, job, out_dir, work, events, verifier=verifier, job_dir=job_path.parent)
    except BaseException:
        shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)  # nothing half-stored
        (out_dir / ARCHIVE_NAME).unlink(missing_ok=True)
        raise
    finally:
        if work_dir is None:  # a --work-dir is kept; ours goes, with the cache and TMPDIR of a fixed build folder
            if build_root is not None:
                _empty_folder(build_root)
            else:
                shutil.rmtree(work, ignore_errors=True)


def _build(
    model: Path, job: Job, out_dir: Path, work: Path, events: Events, *, verifier: Verifier, job_dir: Path
) -> ArtifactManifest:
    recipe = job["recipe"]
    events.phase("loading", "checking the archive and the toolchain, loading the program")
    portable = work / "portable.pt2"
    report = neutralize_model(model, portable)
    log.info(
        "neutralized %d entries: blanked %s%s",
        report.entries,
        report.blanked or "nothing",
        f", dropped precompiled code {report.dropped}" if report.dropped else "",
    )
    compiler = check_toolchain(job)
    # What inductor runs as its compiler: the recipe's, or for a cross build a wrapper around it (cross_cxx.py).
    build_compiler = compiler
    cross = recipe.get("cross")
    cross_toolchain: cross_build.CrossToolchain | None = None
    if cross is not None:
        cross_toolchain = cross_build.toolchain_of(dict(job))
        wrapper = cross_build.write_compiler_wrapper(work / "cross")
        build_compiler = Compiler(path=str(wrapper), version=compiler.version)
        cross_build.configure(cross, cross_toolchain, compiler.path)
        # The verifier runs the artifact (and the portable graph) as the target: its python and torch, emulated.
        verifier.run_with(
            cross_build.emulator_command(cross, cross_toolchain),
            cross_build.emulator_env(cross_toolchain, _package_roots()),
        )
        log.info(
            "cross build for %s: %s through %s, linked against %s torch %s, verified under %s -cpu %s",
            cross["arch"],
            compiler.path,
            wrapper,
            cross["arch"],
            cross_toolchain["torch"],
            cross_toolchain["qemu"],
            cross["emulatedCpu"],
        )
    precision = recipe_precision(recipe)
    # A weights-only update (reuse.py): the donor's code part is checked before anything is compiled; a file other
    # than the one the job names refuses the job, a donor that cannot serve this build only turns the reuse down.
    donor: DonorCode | None = None
    reuse: Reuse | None = None
    if "codeDonor" in job:
        try:
            donor = load_donor(job["codeDonor"], job_dir, job)
        except NotReusable as exc:
            reuse = not_reused(job["codeDonor"], exc.as_fallback())
    cache = _restore_cache(job, job_dir)

    import torch

    gpu: BuildGpu | None = None
    if recipe["device"] == "cuda":
        ieee_fp32("cuda")  # inductor reads the TF32 flags while compiling
        gpu = build_gpu()
        log.info(
            "GPU: %s (compute capability %s), driver %s (CUDA %s), torch CUDA runtime %s, CUDA_VISIBLE_DEVICES=%s",
            gpu["name"],
            gpu["computeCapability"],
            gpu["driverVersion"],
            gpu["cudaDriverVersion"],
            gpu["cudaRuntime"],
            gpu["cudaVisibleDevices"],
        )

    ep = program_on(load_program(portable), recipe["device"])
    plan = plan_inputs(ep, job["seed"], recipe["device"])
    log.info("input plan: symbols %s, %d input sets", plan["symbols"], len(plan["sets"]))

    converting = f"converting to {precision}, then " if precision != "fp32" else ""
    how = (
        f"code generation only, to reuse code part {donor.sha256[:12]}, for {job['targetId']}"
        if donor is not None
        else f"AOTInductor compile for {job['targetId']}"
    )
    events.phase("compiling", f"{converting}{how}")
    example = materialize(plan["sets"][0], plan["seed"], recipe["device"])
    # The plan stays the fp32 program's: the converted one keeps its interface (dtypes, dims, ranges).
    ep = convert_program(ep, precision, plan, example, work)
    verifier.start()  # its torch import overlaps the compile
    reused_blob: Path | None = None
    # Shared: compiles run side by side, but never while another build on this host is timing (bounded wait).
    with host_lock(exclusive=False, wait_s=float(job["timing"].get("lockWaitSeconds", DEFAULT_WAIT_S))):
        if donor is not None:
            reused_blob, reuse = try_reuse(donor, ep, example, job, compiler=build_compiler, work=work)
        if reuse is not None and reuse["fallback"] is not None:
            log.warning(
                "weights-only update turned down (%s): %s; compiling in full",
                reuse["fallback"]["code"],
                reuse["fallback"]["message"],
            )
        if donor is not None and reused_blob is not None:
            log.info(
                "weights-only update: the generated code equals code part %s's (donor cache key %s), code "
                "generation took %.1f s; reusing it with the new weights",
                donor.sha256,
                donor.cache_key,
                reuse["codegenSeconds"] if reuse else 0.0,
            )
            compiled = CompileResult(
                package=donor.path,
                seconds=reuse["codegenSeconds"] if reuse else 0.0,
                inductor_configs=as_json(inductor_configs_for(job, build_compiler)),
            )
        else:
            compiled = compile_program(ep, example, job, build_compiler, work / "compiled")
            if reuse is not None:  # the build paid the code generation too
                compiled = CompileResult(
                    package=compiled.package,
                    seconds=compiled.seconds + reuse["codegenSeconds"],
                    inductor_configs=compiled.inductor_configs,
                )
    del ep
    release_compile_state()  # the weights of the program, still referenced by torch's export tracer

    events.phase(
        "isa_check",
        f"checking the machine code (forbidden registers: {recipe['forbiddenRegisters'] or 'none'}) "
        "and its input checks",
    )
    shared_objects = _extract_shared_objects(compiled.package, work / "so")
    target_level = job["requires"].get("x86Level")
    machine = cross["arch"] if cross is not None else platform.machine()
    _check_machine(shared_objects, machine)
    if machine == "aarch64":
        isa = check_isa_aarch64(shared_objects, recipe["forbiddenRegisters"])
    else:
        isa = check_isa(shared_objects, recipe["forbiddenRegisters"], target_level)
    log.info(
        "ISA check: %s, register counts %s, evidence %s: the host code needs %s (target: %s)",
        "passed" if isa["passed"] else "FAILED",
        isa["counts"],
        isa["evidence"],
        f"x86-64-v{isa['requiredX86Level']}" if isa["requiredX86Level"] else "no particular x86-64 level",
        f"x86-64-v{target_level}" if target_level else "none",
    )
    if not isa["passed"]:
        used = [r for r in isa["forbidden"] if isa["counts"].get(r)]
        needs = f"x86-64-v{isa['requiredX86Level']}"
        message = (
            f"the compiled code uses forbidden registers {used}"
            if used
            else f"the compiled code needs {needs}, the target promises x86-64-v{target_level}"
        )
        raise DriverError(ErrorCode.ISA_CHECK_FAILED, message, dict(isa))
    accepted = accepted_dims(compiled.package)
    narrowed = narrowed_dims(accepted, plan)
    log.info("the artifact checks input dims %s", [(a["tensorInput"], a["dim"], a["min"], a["max"]) for a in accepted])
    if narrowed:
        # The artifact is still right for the sizes it accepts: keep it, verify it on those sizes only, and
        # record the accepted ranges in the manifest. The device runtime checks every call against them and
        # runs the portable graph for sizes outside (the artifact itself refuses them: AOTI_RUNTIME_CHECK_INPUTS).
        for n in narrowed:
            log.warning(
                "input %d dim %d (%s): the artifact accepts %s, the program declares %s",
                n["input"],
                n["dim"],
                n["symbol"],
                n["accepted"],
                n["declared"],
            )
        kept = [s for s in plan["sets"] if set_is_accepted(input_shapes(s), narrowed)]
        if not kept:
            raise narrowed_range_error(narrowed, rejected=[])
        plan = {**plan, "sets": kept}
    needs = read_needs(shared_objects, objdump_for(machine))
    log.info("needs glibc %s, glibcxx %s", needs["glibc"], needs["glibcxx"])

    events.phase("packaging", "splitting the package into content-addressed parts")
    if donor is not None and reused_blob is not None:
        part_files = store_parts(donor, reused_blob, out_dir / PARTS_DIR)
    else:
        part_files = split_package(compiled.package, out_dir / PARTS_DIR)
    parts: list[ArtifactPart] = []
    for p in part_files:
        part: ArtifactPart = {"role": "code" if p.role == "code" else "weights", "sha256": p.sha256, "size": p.size}
        if p.entry is not None:
            part["entry"] = p.entry
            try:
                part["tensors"] = weights_layout(part_files[0].path, p.entry, p.path)
            except NoLayout as exc:
                log.warning("weights part %s: no per-tensor index (%s); devices download it whole", p.sha256, exc)
        parts.append(part)
        log.info(
            "part %s %s %d bytes%s%s",
            p.role,
            p.sha256,
            p.size,
            f" -> {p.entry}" if p.entry else "",
            f", {len(part['tensors'])} tensors" if "tensors" in part else "",
        )
    reused = donor is not None and reused_blob is not None
    freed = drop_compile_outputs(None if reused else compiled.package, os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
    log.info("removed the compiled package and inductor's copies of the weights (%d bytes): the parts hold them", freed)

    events.phase("verifying", f"loading the artifact in a fresh process, comparing on {len(plan['sets'])} input sets")
    request: VerifyRequest = {
        "codePart": str(part_files[0].path),
        "weightsParts": [{"entry": p.entry, "path": str(p.path)} for p in part_files[1:] if p.entry is not None],
        "portableModel": str(portable),
        "inputPlan": plan,
        "atol": float(recipe["tolerance"]["atol"]),
        "rtol": float(recipe["tolerance"]["rtol"]),
        "precision": precision,
        "warmup": job["timing"]["warmup"],
        "runs": job["timing"]["runs"],
        "maxSeconds": float(job["timing"].get("maxSeconds", DEFAULT_TIMING_MAX_S)),
        "lockWaitSeconds": float(job["timing"].get("lockWaitSeconds", DEFAULT_WAIT_S)),
        "workDir": str(work / "verify"),
    }
    if cross is not None:
        request["measureSpeed"] = False
    verification, measured = verifier.run(request, work / "verify-request.json", events)
    timing: TimingResult = measured if measured is not None else _unmeasured()
    if cross is not None and cross_toolchain is not None:
        verification["emulated"] = cross_build.describe(cross, cross_toolchain)  # type: ignore[typeddict-item]

    requires = job["requires"]
    manifest: ArtifactManifest = {
        "manifestVersion": MANIFEST_VERSION,
        "target": job["targetId"],
        "recipeHash": job["recipeHash"],
        "modelContentHash": job["modelContentHash"],
        "cacheKey": job["cacheKey"],
        "format": "aoti-package-parts",
        "precision": precision,
        "parts": parts,
        "requires": {
            "os": requires["os"],
            "arch": requires["arch"],
            # What the host code needs (never below the target's): GPU artifacts built with -march=native too.
            "x86Level": isa["requiredX86Level"],
            "computeCapability": requires.get("computeCapability"),
            # A cross build runs with the target architecture's torch it was linked against and verified with.
            "torch": cross_toolchain["torch"] if cross_toolchain is not None else torch.__version__,
            "glibc": needs["glibc"],
            "glibcxx": needs["glibcxx"],
        },
        "toolchain": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cxx": {"path": compiler.path, "version": compiler.version},
            "cudaRuntime": _cuda_runtime(),
            "inductorConfigs": compiled.inductor_configs,
        },
        "isaCheck": isa,
        "inputRanges": {"narrowed": bool(narrowed), "dims": narrowed},
        "verification": verification,
        "timing": timing,
        "build": {
            "compileSeconds": round(compiled.seconds, 3),
            "host": {
                "cpuModel": job["host"]["cpuModel"],
                "x86Level": job["host"].get("x86Level"),
                "gpuName": job["host"].get("gpuName"),
                "driverVersion": job["host"].get("driverVersion"),
            },
            "gpu": gpu,
            "sandbox": job["sandbox"],
            "finishedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    }
    if cross is not None and cross_toolchain is not None:
        manifest["toolchain"]["cross"] = {  # type: ignore[typeddict-unknown-key]
            "arch": cross["arch"],
            "targetTorch": cross_toolchain["torch"],
            "cxx": {"path": compiler.path, "version": compiler.version},
            "wrapper": "kiln_driver.cross_cxx",
        }
    if reuse is not None:
        manifest["reuse"] = reuse
    if cache is not None:
        if job["inductorCache"]["store"]:
            cache["stored"] = _pack_cache(out_dir)
        manifest["inductorCache"] = cache
    if "tenantId" in job:
        manifest = {"manifestVersion": manifest["manifestVersion"], "tenantId": job["tenantId"], **manifest}  # type: ignore[assignment]
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)
    speed = f"{timing['speedup']:.2f}x over eager" if timing["speedup"] > 0 else "speed not measured (emulated)"
    events.phase(
        "done",
        f"{job['targetId']}: compiled in {compiled.seconds:.1f} s, max abs error {verification['maxAbsError']:.2g}"
        f"{f' ({precision} vs the fp32 portable graph)' if precision != 'fp32' else ''}"
        f"{' under emulation' if cross is not None else ''}, {speed}",
    )
    return manifest
