"""One real build of the MLP fixture for linux-x86_64-v3 (session fixture `mlp_v3`), checked from every side."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import BUILD_TRACEPARENT, DriverRun
from jsonschema import Draft202012Validator

from kiln_driver.compile import load_program
from kiln_driver.package_parts import assemble_package
from kiln_driver.verify import load_compiled

pytestmark = pytest.mark.slow

# The manifest's JSON Schema (ArtifactManifest of libs/contracts/src/manifest.ts).
SCHEMAS = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "src" / "schemas"
MANIFEST_SCHEMA = json.loads((SCHEMAS / "artifact-manifest.schema.json").read_text(encoding="utf-8"))
# The fields this driver writes, all of them: the schema leaves those that older manifests lack optional.
MANIFEST_KEYS = {
    "manifestVersion",
    "target",
    "recipeHash",
    "modelContentHash",
    "cacheKey",
    "format",
    "precision",
    "parts",
    "requires",
    "toolchain",
    "isaCheck",
    "inputRanges",
    "verification",
    "timing",
    "build",
}
SUB_KEYS = {
    "requires": {"os", "arch", "x86Level", "computeCapability", "torch", "glibc", "glibcxx"},
    "toolchain": {"torch", "python", "cxx", "cudaRuntime", "inductorConfigs"},
    "isaCheck": {"passed", "forbidden", "counts", "evidence", "requiredX86Level"},
    "verification": {
        "passed",
        "atol",
        "rtol",
        "maxAbsError",
        "maxRelError",
        "inputShapes",
        "freshProcess",
        "device",
        "referencePrecision",
    },
    "timing": {
        "eagerMs",
        "compiledMs",
        "speedup",
        "runs",
        "threads",
        "inputShapes",
        "method",
        "speedupCi",
        "confidence",
        "uncertain",
        "noise",
        "perInput",
        "lock",
        "lockWaitS",
        "truncated",
    },
    "build": {"compileSeconds", "host", "gpu", "sandbox", "finishedAt"},
}


def test_exit_code_and_outputs(mlp_v3: DriverRun) -> None:
    assert mlp_v3.returncode == 0
    assert (mlp_v3.out / "manifest.json").is_file()
    assert not (mlp_v3.out / "error.json").exists()
    assert sorted(p.name for p in mlp_v3.out.iterdir()) == ["manifest.json", "parts"]


def test_progress_events(mlp_v3: DriverRun) -> None:
    events = mlp_v3.events  # every stdout line is a JSON object: nothing else leaked onto stdout
    starts = [e for e in events if e["event"] == "phase"]
    ends = [e for e in events if e["event"] == "phase_end"]
    assert len(starts) + len(ends) == len(events)
    phases = [e["phase"] for e in starts]
    assert phases == ["loading", "compiling", "isa_check", "packaging", "verifying", "timing", "done"]
    # Every phase but done ends, in order, each before the next one starts (timing's start came from the verifier).
    assert [e["phase"] for e in ends] == phases[:-1]
    assert [(e["event"], e["phase"]) for e in events[1:-1:2]] == [("phase_end", p) for p in phases[:-1]]
    assert all(e["ok"] is True for e in ends)
    elapsed = [e["elapsedS"] for e in events]
    assert elapsed == sorted(elapsed)
    at = [e["at"] for e in events]
    assert at == sorted(at)
    assert all(isinstance(e["message"], str) and e["message"] for e in starts)
    assert all(e["traceparent"] == BUILD_TRACEPARENT for e in events)


def test_log_tells_what_happened(mlp_v3: DriverRun) -> None:
    log = mlp_v3.stderr
    assert "linux-x86_64-v3" in log and "cpp.march" in log
    assert "ISA check: passed" in log
    assert re.search(r"timing: eager [\d.]+ ms, compiled [\d.]+ ms", log)


def test_manifest_matches_the_contract(mlp_v3: DriverRun) -> None:
    m = mlp_v3.manifest
    Draft202012Validator(MANIFEST_SCHEMA).validate(m)
    assert set(m) == MANIFEST_KEYS
    assert set(MANIFEST_SCHEMA["properties"]) >= MANIFEST_KEYS
    for key, fields in SUB_KEYS.items():
        assert set(m[key]) == fields, key
        assert set(MANIFEST_SCHEMA["properties"][key]["properties"]) >= fields, key
    assert m["manifestVersion"] == 1
    assert m["target"] == "linux-x86_64-v3"
    assert m["format"] == "aoti-package-parts"
    assert (m["recipeHash"], m["modelContentHash"], m["cacheKey"]) == ("ab" * 32, "cd" * 32, "ef" * 32)
    assert m["requires"]["x86Level"] == 3 and m["requires"]["computeCapability"] is None
    assert m["precision"] == "fp32" and m["build"]["gpu"] is None
    assert m["verification"]["referencePrecision"] == "fp32" and "tf32" not in m["verification"]
    assert m["requires"]["torch"] == torch.__version__
    assert m["build"]["host"]["cpuModel"] == "test host"
    assert m["build"]["sandbox"]["network"] is False  # copied verbatim from the job
    assert m["build"]["compileSeconds"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m["build"]["finishedAt"])


def test_compiler_is_pinned_and_recorded(mlp_v3: DriverRun) -> None:
    tc = mlp_v3.manifest["toolchain"]
    # run_driver sets CXX to a broken path: the recipe's compiler must win anyway.
    assert Path(tc["cxx"]["path"]).is_absolute() and tc["cxx"]["path"].endswith("g++")
    assert "g++" in tc["cxx"]["version"] or "GCC" in tc["cxx"]["version"]
    configs = tc["inductorConfigs"]
    assert configs["cpp.cxx"] == [tc["cxx"]["path"]]
    assert configs["cpp.march"] == "x86-64-v3" and configs["cpp.dynamic_threads"] is True
    assert configs["aot_inductor.metadata"] == {
        "kiln_target": "linux-x86_64-v3",
        "kiln_model_content_hash": "cd" * 32,
        "kiln_recipe_hash": "ab" * 32,
    }
    assert tc["cudaRuntime"] is None and tc["torch"] == torch.__version__


def test_parts_on_disk_match_their_hashes(mlp_v3: DriverRun) -> None:
    parts = mlp_v3.manifest["parts"]
    assert [p["role"] for p in parts] == ["code", "weights"]
    on_disk = {p.name for p in (mlp_v3.out / "parts").iterdir()}
    assert on_disk == {p["sha256"] for p in parts}
    for part in parts:
        data = (mlp_v3.out / "parts" / part["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part["sha256"]
        assert len(data) == part["size"]
    assert "entry" not in parts[0]
    assert parts[1]["entry"].endswith("_weights.blob") and "/data/aotinductor/" in parts[1]["entry"]
    with zipfile.ZipFile(mlp_v3.out / "parts" / parts[0]["sha256"]) as code:
        names = code.namelist()
    assert not any(n.endswith("_weights.blob") for n in names)
    assert any(n.endswith(".wrapper.so") for n in names)


def test_isa_check_found_no_avx512(mlp_v3: DriverRun) -> None:
    isa = mlp_v3.manifest["isaCheck"]
    assert isa["passed"] is True and isa["forbidden"] == ["zmm"]
    assert isa["counts"]["zmm"] == 0 and isa["counts"]["k"] == 0 and isa["evidence"]["avx512"] == 0
    assert isa["counts"]["ymm"] > 0  # it really is AVX2 code, not scalar
    assert isa["requiredX86Level"] == 3  # derived from the code: the target's level, not higher


def test_libc_needs_recorded(mlp_v3: DriverRun) -> None:
    req = mlp_v3.manifest["requires"]
    assert re.fullmatch(r"2\.\d+", req["glibc"])
    assert re.fullmatch(r"3\.4\.\d+", req["glibcxx"])


def test_verification_passed_on_several_batch_sizes(mlp_v3: DriverRun) -> None:
    v = mlp_v3.manifest["verification"]
    assert v["passed"] is True and v["freshProcess"] is True and v["device"] == "cpu"
    assert (v["atol"], v["rtol"]) == (1e-4, 1e-3)
    assert 0 <= v["maxAbsError"] < v["atol"]
    assert v["maxRelError"] >= 0
    batches = {shapes[0][0] for shapes in v["inputShapes"]}
    assert len(batches) >= 2 and all(1 <= b <= 256 for b in batches)  # the dynamic dim was exercised
    assert all(shapes[0][1] == 64 for shapes in v["inputShapes"])


def test_timing(mlp_v3: DriverRun) -> None:
    """The distribution is stored: medians with intervals per input size, the noise the guard saw, whether the
    figure is uncertain (no assertion on the values themselves: they depend on the host)."""
    t = mlp_v3.manifest["timing"]
    assert t["method"] == "interleaved-median-ci" and t["confidence"] == 0.95
    assert t["eagerMs"] > 0 and t["compiledMs"] > 0 and t["speedup"] > 0
    assert t["runs"] >= 10 and t["threads"] >= 1
    verified = mlp_v3.manifest["verification"]["inputShapes"]
    assert t["inputShapes"] == verified[0]
    lo, hi = t["speedupCi"]
    assert lo <= t["speedup"] <= hi
    assert [p["inputShapes"] for p in t["perInput"]] == verified[: len(t["perInput"])]
    assert 1 <= len(t["perInput"]) <= 3
    for p in t["perInput"]:
        assert p["samples"] >= 10 and p["warmupPairs"] >= 2
        for key in ("eagerMs", "compiledMs", "speedup"):
            assert p[key]["ci"][0] <= p[key]["median"] <= p[key]["ci"][1]
    assert t["perInput"][0]["speedup"]["median"] == t["speedup"]
    noise = t["noise"]
    assert noise["attempts"] >= len(t["perInput"]) and noise["lockWaitMs"] >= 0
    assert isinstance(t["uncertain"], bool) and (t["uncertain"] == bool(noise["reasons"]))


def test_scratch_space_is_cleaned_up(mlp_v3: DriverRun) -> None:
    leftovers = [p.name for p in mlp_v3.tmpdir.iterdir() if p.name.startswith(("kiln-build-", "aotinductor_"))]
    assert leftovers == []


def test_weights_copies_of_the_compile_go_once_split(mlp_v3: DriverRun) -> None:
    """The compiled package and inductor's cached weights blob are removed once the parts exist: during the
    verification only the parts, the portable graph and the verifier's own copies hold the weights."""
    m = re.search(r"removed the compiled package and inductor's copies of the weights \((\d+) bytes\)", mlp_v3.stderr)
    assert m, mlp_v3.stderr[-2000:]
    weights = sum(p["size"] for p in mlp_v3.manifest["parts"] if p["role"] == "weights")
    # The package holds the weights once, inductor's cache once more.
    assert weights > 0 and int(m.group(1)) >= 2 * weights
    assert mlp_v3.events[-1]["phase"] == "done"


def test_compile_lets_the_programs_weights_go(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the driver drops the program after the compile, its weights are freed: torch's export tracer kept the
    last traced graph (and through it every parameter) in a module-level map until release_compile_state()."""
    import gc
    import weakref

    from conftest import make_job

    from kiln_driver.compile import compile_program, program_on, release_compile_state
    from kiln_driver.inputs import materialize, plan_inputs
    from kiln_driver.neutralize import neutralize_model
    from kiln_driver.toolchain import check_toolchain

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-cache"))
    job = make_job(2)
    neutralize_model(fixtures / "mlp.pt2", tmp_path / "portable.pt2")
    ep = program_on(load_program(tmp_path / "portable.pt2"), "cpu")
    plan = plan_inputs(ep, 0, "cpu")
    weights = [weakref.ref(t) for t in ep.state_dict.values()]
    assert weights
    compile_program(ep, materialize(plan["sets"][0], plan["seed"], "cpu"), job, check_toolchain(job), tmp_path / "out")
    del ep
    release_compile_state()
    gc.collect()
    assert [w for w in weights if w() is not None] == []


def test_assembled_package_loads_and_matches_eager(mlp_v3: DriverRun, fixtures: Path, tmp_path: Path) -> None:
    parts = mlp_v3.manifest["parts"]
    pkg = assemble_package(
        mlp_v3.out / "parts" / parts[0]["sha256"],
        [(p["entry"], mlp_v3.out / "parts" / p["sha256"]) for p in parts[1:]],
        tmp_path / "artifact.pt2",
    )
    compiled = load_compiled(pkg)
    assert compiled.get_metadata()["kiln_target"] == "linux-x86_64-v3"
    from kiln_driver.neutralize import neutralize_model

    neutralize_model(fixtures / "mlp.pt2", tmp_path / "portable.pt2")
    reference = load_program(tmp_path / "portable.pt2").module()
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), atol=1e-4, rtol=1e-3)


def test_cnn_v2_records_the_narrower_batch_range_it_accepts(fixtures: Path, tmp_path: Path) -> None:
    """A second real build: the CNN with the x86-64-v2 recipe (scalar kernels; ymm and zmm forbidden).

    Its code passes the ISA check, but AOTInductor narrows the batch range [1, 32] (the conv fake kernel
    guards on the example size). The build succeeds, is verified only on the sizes the artifact accepts, and
    the manifest records the accepted range, so devices run the portable graph for the other sizes. If the
    range stops being narrowed, torch stopped specialising: good news, revisit input_checks.py.
    """
    from conftest import make_job, run_driver

    run = run_driver(fixtures / "cnn.pt2", make_job(2), tmp_path / "cnn")
    assert "ISA check: passed, register counts" in run.stderr
    assert re.search(r"'ymm': 0, 'zmm': 0", run.stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((run.out / "manifest.json").read_text())
    ranges = manifest["inputRanges"]
    assert ranges["narrowed"] is True
    (dim,) = ranges["dims"]
    assert (dim["input"], dim["dim"], dim["declared"]) == (0, 0, [1, 32])
    lo, hi = dim["accepted"]
    assert lo > 1 or hi < 32
    for shapes in manifest["verification"]["inputShapes"]:
        assert (lo is None or shapes[0][0] >= lo) and (hi is None or shapes[0][0] <= hi)
    assert manifest["verification"]["passed"] is True


def test_derived_dim_model_with_a_guard_builds_and_verifies(fixtures: Path, tmp_path: Path) -> None:
    """The `pair` fixture: y's batch is twice x's (a derived Dim), so the export carries the guard
    `(2*L['x'].size()[0]) == L['y'].size()[0]` (Kiln's reader checks it against its guard grammar). The driver
    plans inputs that satisfy the relation, the portable graph (which runs the guard) and the artifact agree.
    """
    from conftest import make_job, run_driver

    run = run_driver(fixtures / "pair.pt2", make_job(3), tmp_path / "pair")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((run.out / "manifest.json").read_text())
    verification = manifest["verification"]
    assert verification["passed"] is True
    assert len(verification["inputShapes"]) >= 2
    for x_shape, y_shape in verification["inputShapes"]:
        assert y_shape[0] == 2 * x_shape[0] and x_shape[1] == y_shape[1] == 16


def test_model_without_weights_builds_and_loads(tmp_path: Path) -> None:
    """A program with no parameters, buffers or constants: torch 2.13 writes no weights blob for it, and its
    loader then fails ("mmap() failed") if the package was asked for one; the driver packages it without."""
    from conftest import make_job, run_driver

    class Scale(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) * 2 + 1

    ep = torch.export.export(Scale(), (torch.randn(4, 8),), dynamic_shapes={"x": {0: torch.export.Dim("b", max=64)}})
    model = tmp_path / "scale.pt2"
    torch.export.save(ep, str(model))
    run = run_driver(model, make_job(3), tmp_path / "scale")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the program has no weights" in run.stderr
    manifest = json.loads((run.out / "manifest.json").read_text())
    assert [p["role"] for p in manifest["parts"]] == ["code"]
    assert manifest["verification"]["passed"] is True


def test_verifier_crash_is_load_failed(mlp_v3: DriverRun, fixtures: Path, tmp_path: Path) -> None:
    """A `.so` that segfaults when loaded kills the verifier process, never the driver: LOAD_FAILED."""
    import io
    import subprocess

    from kiln_driver.errors import DriverError
    from kiln_driver.inputs import plan_inputs
    from kiln_driver.neutralize import neutralize_model
    from kiln_driver.package_parts import copy_entry
    from kiln_driver.progress import Events
    from kiln_driver.verify import verify_in_fresh_process

    (tmp_path / "boom.c").write_text(
        "#include <signal.h>\n__attribute__((constructor)) static void boom(void) { raise(SIGSEGV); }\n"
    )
    subprocess.run(["gcc", "-shared", "-fPIC", str(tmp_path / "boom.c"), "-o", str(tmp_path / "boom.so")], check=True)
    parts = mlp_v3.manifest["parts"]
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(mlp_v3.out / "parts" / parts[0]["sha256"]) as zin, zipfile.ZipFile(code, "w") as zout:
        for info in zin.infolist():
            if info.filename.endswith(".so"):
                zout.write(tmp_path / "boom.so", info.filename)
            else:
                copy_entry(zin, info, zout)
    neutralize_model(fixtures / "mlp.pt2", tmp_path / "portable.pt2")
    plan = plan_inputs(load_program(tmp_path / "portable.pt2"), 0, "cpu")
    request = {
        "codePart": str(code),
        "weightsParts": [{"entry": p["entry"], "path": str(mlp_v3.out / "parts" / p["sha256"])} for p in parts[1:]],
        "portableModel": str(tmp_path / "portable.pt2"),
        "inputPlan": plan,
        "atol": 1e-4,
        "rtol": 1e-3,
        "warmup": 1,
        "runs": 1,
        "workDir": str(tmp_path / "verify"),
    }
    with pytest.raises(DriverError) as info:
        verify_in_fresh_process(request, tmp_path / "request.json", Events(io.StringIO()))
    assert info.value.code == "LOAD_FAILED" and info.value.exit_code == 3
    assert info.value.details["signal"] == "SIGSEGV"
    assert info.value.details["stage"] == "load_compiled"


def test_v2_build_has_no_avx_and_shares_the_weights_part(mlp_v2: DriverRun, mlp_v3: DriverRun) -> None:
    assert mlp_v2.returncode == 0
    m = mlp_v2.manifest
    assert m["target"] == "linux-x86_64-v2" and m["requires"]["x86Level"] == 2
    assert m["isaCheck"]["forbidden"] == ["ymm", "zmm"]
    assert m["isaCheck"]["counts"]["ymm"] == 0 and m["isaCheck"]["counts"]["zmm"] == 0
    assert m["verification"]["passed"] and m["verification"]["maxAbsError"] < 1e-4
    # One weights blob serves every target's code, so it is stored once across targets.
    weights = {p["sha256"] for p in m["parts"] if p["role"] == "weights"}
    assert weights == {p["sha256"] for p in mlp_v3.manifest["parts"] if p["role"] == "weights"}
    assert m["parts"][0]["sha256"] != mlp_v3.manifest["parts"][0]["sha256"]
