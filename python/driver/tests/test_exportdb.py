"""torch's own export examples (ExportDB) through the real build entry point: the fast subset of the
conformance suite (bench/exportdb.ts runs all of them through the whole stack).

Three examples, one per defect found there, each a real compile (about two minutes together on 2 cores):
- cond_branch_nonlocal_variables: no parameters or buffers, one lifted 0-d constant that inductor folds into
  the code, so a binary_blob package has an empty weights blob torch cannot load ("mmap() failed").
- scalar_output: the portable graph returns an int, the artifact a 0-d tensor; refused, saying so.
- assume_constant_result: inductor generates C++ that does not compile (upstream); the error names no path
  of the worker.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import DriverRun, make_job, run_driver

from kiln_driver.toolchain import host_x86_level

pytestmark = pytest.mark.slow

# Every x86-64 CPU this runs on has v2; the examples are not about the vector width.
LEVEL = 2
# An absolute path where one can start: at the start, after a space, quote, "=", "(", ":" or a -X flag.
ANY_ABSOLUTE_PATH = re.compile(r"(?:^|[\s\"'=(:,]|-[A-Za-z])~?/[\w.+@%-]+/")


def _case(name: str) -> Any:
    from torch._export.db.examples import all_examples

    return all_examples()[name]


def _export(name: str, dest: Path) -> tuple[Path, Any]:
    """As a user would: the example's own inputs and dynamic shapes, torch.export's default options."""
    case = _case(name)
    ep = torch.export.export(
        case.model,
        copy.deepcopy(case.example_args),
        copy.deepcopy(case.example_kwargs),
        dynamic_shapes=case.dynamic_shapes,
    )
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}.pt2"
    torch.export.save(ep, str(path))
    return path, ep


def _build(name: str, tmp_path: Path) -> tuple[DriverRun, Any]:
    level = host_x86_level()
    if level is None or level < LEVEL:
        pytest.skip(f"needs an x86-64-v{LEVEL} CPU to verify a linux-x86_64-v{LEVEL} build (this host: {level})")
    model, ep = _export(name, tmp_path / "export")
    return run_driver(model, make_job(LEVEL), tmp_path / "build"), ep


def test_folded_constant_builds_without_a_weights_blob(tmp_path: Path) -> None:
    from kiln_runtime.loader import load_aoti_package
    from kiln_runtime.package_parts import assemble_package

    run, ep = _build("cond_branch_nonlocal_variables", tmp_path)
    # The program has a constant, so a blob was asked for; the package showed that none was needed.
    assert not ep.state_dict and list(ep.constants) == ["lifted_tensor_0"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "compiling again with the constants in the .so" in run.stderr
    manifest = run.manifest
    assert [p["role"] for p in manifest["parts"]] == ["code"]  # a weights part only when there is a blob
    configs = manifest["toolchain"]["inductorConfigs"]
    assert "aot_inductor.package_constants_on_disk_format" not in configs
    assert configs["aot_inductor.package_constants_in_so"] is True
    assert manifest["verification"]["passed"] is True and manifest["verification"]["maxAbsError"] < 1e-4

    # What a device does with the parts: assemble (no weights parts), load without the ISA probe, run.
    code = run.out / "parts" / manifest["parts"][0]["sha256"]
    with zipfile.ZipFile(code) as z:
        assert not [n for n in z.namelist() if n.endswith("_weights.blob")]
    package = assemble_package(code, [], tmp_path / "device.pt2")
    compiled = load_aoti_package(package)
    case = _case("cond_branch_nonlocal_variables")
    x = copy.deepcopy(case.example_args)
    with torch.no_grad():
        torch.testing.assert_close(compiled(*x), ep.module()(*x))


def test_int_output_is_refused_saying_what_differs(tmp_path: Path) -> None:
    run, _ = _build("scalar_output", tmp_path)
    assert run.returncode == 3, run.stderr[-3000:]
    error = run.error
    assert error["code"] == "NUMERIC_MISMATCH"
    message = error["message"]
    assert "differ from the portable graph's in type" in message
    assert re.search(
        r"output 0 is an int \(\d+\) in the portable graph and a 0-d int64 tensor \(\d+\) in the artifact", message
    )
    assert "beyond" not in message and "atol" not in message
    assert error["details"]["mismatch"] == ["type"]
    assert all("output 0 is an int" in p for p in error["details"]["problems"])
    assert not (run.out / "parts").exists() and not (run.out / "manifest.json").exists()


def test_upstream_compile_failure_names_no_worker_path(tmp_path: Path) -> None:
    run, _ = _build("assume_constant_result", tmp_path)
    assert run.returncode == 3, run.stderr[-3000:]
    error = run.error
    assert error["code"] == "COMPILE_FAILED"
    assert re.fullmatch(
        r"the C\+\+ compiler rejected the generated code: \w+\.wrapper\.cpp:\d+:\d+: error: "
        r".None. was not declared in this scope",
        error["message"],
    ), error["message"]
    text = json.dumps(error, ensure_ascii=False)
    assert not ANY_ABSOLUTE_PATH.search(text.replace("\\n", "\n")), text
    for fragment in (str(tmp_path), str(run.tmpdir), "site-packages", "/tmp/", "torchinductor_"):
        assert fragment not in text, fragment
    assert "None < 0" in error["details"]["compilerErrors"]  # the offending line is still shown
    # The operator's build log keeps the paths.
    assert str(run.tmpdir) in run.stderr
