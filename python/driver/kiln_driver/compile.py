"""Load the neutralized program and compile it with AOTInductor for the recipe."""

from __future__ import annotations

import gc
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import vec_isa
from .errors import DriverError, ErrorCode, classify_compile_error, classify_load_error
from .inputs import call_args
from .job import Job
from .package_parts import is_weights_entry
from .progress import log
from .toolchain import Compiler


@dataclass(frozen=True)
class CompileResult:
    package: Path
    seconds: float
    inductor_configs: dict[str, Any]  # exactly what was passed, as JSON (tuples become lists)


def load_program(path: Path) -> Any:
    """ExportedProgram from a neutralized `.pt2`.

    Uses torch's archive loader directly: `torch.export.load` hides the real error behind a generic one and
    then falls back to a legacy format that unpickles whatever it finds.
    """
    from torch.export.pt2_archive._package import load_pt2

    try:
        contents = load_pt2(str(path))
    except Exception as exc:
        raise classify_load_error(exc) from exc
    programs = contents.exported_programs
    if len(programs) != 1:
        raise DriverError(
            ErrorCode.INVALID_MODEL,
            f"the archive must hold exactly one program, it holds {len(programs)}",
            {"programs": sorted(programs)[:10]},
        )
    return next(iter(programs.values()))


def program_on(ep: Any, device: str) -> Any:
    """The program with its weights on `device`: AOTInductor compiles for wherever the tensors live, and an
    upload for a GPU target is usually exported on CPU."""
    import torch

    tensors = [*ep.state_dict.values(), *(c for c in ep.constants.values() if isinstance(c, torch.Tensor))]
    if all(t.device.type == device for t in tensors):
        return ep
    from torch.export.passes import move_to_device_pass

    return move_to_device_pass(ep, device)


def inductor_configs_for(job: Job, compiler: Compiler) -> dict[str, Any]:
    import torch._inductor.config as inductor_config

    recipe = job["recipe"]
    configs: dict[str, Any] = dict(recipe["inductorConfigs"])
    unknown = sorted(set(configs) - set(inductor_config.get_config_copy()))
    if unknown:
        # The torch build matches the recipe (checked), so the recipe itself is wrong: fails on every worker.
        raise DriverError(ErrorCode.INTERNAL, f"the recipe sets unknown inductor options {unknown}", {"keys": unknown})
    if "cpp.cxx" in configs:
        log.warning("recipe sets cpp.cxx=%r; the toolchain's compiler wins", configs["cpp.cxx"])
    if "cpp.march" not in configs:
        # GPU artifacts too: their wrapper .so is host code (AVX-512 seen in an H100 build host's CUDA artifact).
        # The ISA check derives the level that code needs and the manifest requires it.
        log.warning(
            "recipe has no cpp.march: the host code will target the BUILD host's CPU (-march=native); "
            "the required x86-64 level is derived from the machine code"
        )
    # The absolute path pins the compiler we checked and record; inductor otherwise takes $CXX.
    configs["cpp.cxx"] = (compiler.path,)
    if recipe.get("cross") is not None:
        # The target's vector ISA is forced (cross.configure): inductor's check would run target code on this host.
        configs["cpp.vec_isa_ok"] = True
        log.info("vector ISA: %s, forced for the cross build's target", recipe["cross"]["vecIsa"])
    elif recipe["device"] == "cpu":
        log.info("%s", vec_isa.apply(configs, job.get("vecIsa"), compiler.path))
    # What the code was built from, and nothing else: the tenant's cache key would make one tenant's build of a
    # model differ from another's (reproducible code parts); the manifest binds the parts to the cache key.
    configs["aot_inductor.metadata"] = {
        "kiln_target": job["targetId"],
        "kiln_model_content_hash": job["modelContentHash"],
        "kiln_recipe_hash": job["recipeHash"],
    }
    return configs


def as_json(configs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in configs.items()}


BLOB_FORMAT_KEY = "aot_inductor.package_constants_on_disk_format"
IN_SO_KEY = "aot_inductor.package_constants_in_so"


def constants_in_so(configs: dict[str, Any]) -> bool:
    """Turn the recipe's separate weights blob off: the constants (if any) go into the `.so`. Returns whether
    the recipe had asked for a blob."""
    asked = configs.pop(BLOB_FORMAT_KEY, None) is not None
    if asked:
        configs[IN_SO_KEY] = True
    return asked


def weights_blobs(package: Path) -> dict[str, int]:
    """The package's weights blob entries and their sizes: what the compiled code reads its constants from."""
    with zipfile.ZipFile(package) as z:
        return {i.filename: i.file_size for i in z.infolist() if is_weights_entry(i.filename)}


def compile_program(ep: Any, example_inputs: list[Any], job: Job, compiler: Compiler, out_dir: Path) -> CompileResult:
    """`example_inputs`: one materialized input set (flat). AOTInductor refuses a program without example
    inputs, and the uploaded ones were blanked (never unpickled), so ours stand in for them.

    Weights: the recipes ask for them as a separate blob (its own content-addressed part). torch 2.13 cannot
    load a package whose blob is empty ("mmap() failed"), and a blob is empty whenever the compiled code keeps
    no constants in it: a program without parameters, buffers and constants (known before compiling), but also
    one whose only constants inductor folds into the code (ExportDB's cond_branch_nonlocal_variables: a lifted
    0-d tensor, written into the kernel as a literal). The package decides: when a blob came out empty, the
    program is compiled again with its constants in the `.so`, and the artifact has a code part only.
    """
    ep.example_inputs = call_args(ep, example_inputs)
    configs = inductor_configs_for(job, compiler)
    if not ep.state_dict and not ep.constants and constants_in_so(configs):
        log.info("the program has no weights: packaging without a weights blob")
    out_dir.mkdir(parents=True, exist_ok=True)
    package_path = out_dir / "model.pt2"
    first = _compile(ep, job, configs, package_path)
    empty = sorted(name for name, size in weights_blobs(first.package).items() if size == 0)
    if not empty:
        return first
    if not constants_in_so(configs):
        # Constants already in the .so and still an empty blob: not something this driver knows how to package.
        raise DriverError(
            ErrorCode.COMPILE_FAILED,
            "AOTInductor wrote an empty weights blob with the constants in the .so",
            {"entries": [Path(e).name for e in empty]},
        )
    log.info(
        "the compiled code keeps no weights in its blob (%s is empty: inductor folded the program's constants "
        "into the code): compiling again with the constants in the .so, packaging without a weights blob",
        ", ".join(Path(e).name for e in empty),
    )
    package_path.unlink(missing_ok=True)
    second = _compile(ep, job, configs, package_path)
    if any(size == 0 for size in weights_blobs(second.package).values()):
        raise DriverError(
            ErrorCode.COMPILE_FAILED, "AOTInductor wrote an empty weights blob with the constants in the .so"
        )
    return CompileResult(
        package=second.package, seconds=first.seconds + second.seconds, inductor_configs=second.inductor_configs
    )


def release_compile_state() -> None:
    """Let the program's weights go once the caller dropped the program: torch keeps the last traced graph.

    torch 2.13's make_fx tracer fills a module-level map for export (proxy_tensor's
    `_FAKE_TENSOR_ID_TO_PROXY_MAP_FOR_EXPORT`: fake tensor id -> fx Node) on every trace that
    `aoti_compile_and_package` runs, and clears it only at the next trace. Its nodes hold their graph, the graph its
    GraphModule, and that the program's parameters: after the compile the driver kept a full copy of the weights
    (2.4 GiB for a 2 GiB model) through the verification, beside the verifier's own copies (bench/README.md,
    "A 2 GiB model end to end"). Nothing reads the map after a trace ends.
    """
    try:
        from torch.fx.experimental import proxy_tensor

        proxy_tensor._FAKE_TENSOR_ID_TO_PROXY_MAP_FOR_EXPORT.clear()
    except (ImportError, AttributeError):  # another torch: nothing of this kind to clear
        pass
    gc.collect()


def _compile(ep: Any, job: Job, configs: dict[str, Any], package_path: Path) -> CompileResult:
    import torch

    log.info("compiling for %s with %s", job["targetId"], as_json(configs))
    torch.manual_seed(job["seed"])
    start = time.monotonic()
    try:
        produced = torch._inductor.aoti_compile_and_package(
            ep,
            package_path=str(package_path),
            inductor_configs=dict(configs),  # it adds keys of its own to the dict it gets
        )
    except Exception as exc:
        err = classify_compile_error(exc)
        log.error("compile failed (%s): %s", err.code, err.message)
        raise err from exc
    seconds = time.monotonic() - start
    log.info("compiled in %.1f s -> %s", seconds, produced)
    return CompileResult(package=Path(produced), seconds=seconds, inductor_configs=as_json(configs))
