"""Weights-only updates (issue 17, item 2; kiln_driver/reuse.py): real builds with the real compiler.

A fine-tune (mlp-retrained: the MLP with other weights) built with the MLP's code part as its donor reuses that
code part byte for byte and brings only a new weights part, verified against its own portable graph. A program
whose fine-tune changes a value inductor writes into the code (a 0-d constant) falls back to a full build and says
why; a donor file that does not hash to the job's sha256 is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import DriverRun, make_job, run_driver
from jsonschema import Draft202012Validator
from torch import nn
from torch.export import Dim

from kiln_driver.compile import load_program
from kiln_driver.package_parts import assemble_package
from kiln_driver.reuse import NotReusable, load_donor
from kiln_driver.verify import load_compiled

pytestmark = pytest.mark.slow

SCHEMAS = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "src" / "schemas"
MANIFEST_SCHEMA = Draft202012Validator(
    json.loads((SCHEMAS / "artifact-manifest.schema.json").read_text(encoding="utf-8"))
)
DONOR_FILE = "donor/code.zip"


def _code_part(run: DriverRun) -> dict[str, Any]:
    return next(p for p in run.manifest["parts"] if p["role"] == "code")


def _weights_part(run: DriverRun) -> dict[str, Any]:
    return next(p for p in run.manifest["parts"] if p["role"] == "weights")


def _donor_job(donor: DriverRun, base: Path, *, level: int = 3, sha256: str | None = None) -> dict[str, Any]:
    """A job with `donor`'s code part as its code donor, the file placed in the job folder as the worker would."""
    code = _code_part(donor)
    (base / "donor").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(donor.out / "parts" / code["sha256"], base / DONOR_FILE)
    return make_job(
        level,
        modelContentHash="12" * 32,
        cacheKey="34" * 32,
        codeDonor={"codePart": DONOR_FILE, "sha256": sha256 or code["sha256"], "cacheKey": donor.manifest["cacheKey"]},
    )


@pytest.fixture(scope="module")
def mlp_update(fixtures: Path, mlp_v3: DriverRun, tmp_path_factory: pytest.TempPathFactory) -> DriverRun:
    assert mlp_v3.returncode == 0
    base = tmp_path_factory.mktemp("mlp-update")
    return run_driver(fixtures / "mlp-retrained.pt2", _donor_job(mlp_v3, base), base)


def test_a_fine_tune_reuses_the_donors_code_part(mlp_v3: DriverRun, mlp_update: DriverRun) -> None:
    assert mlp_update.returncode == 0
    m = mlp_update.manifest
    MANIFEST_SCHEMA.validate(m)
    donor_code, code = _code_part(mlp_v3), _code_part(mlp_update)
    assert code == donor_code  # the same bytes: a device holding the donor downloads only the weights
    assert (mlp_update.out / "parts" / code["sha256"]).read_bytes() == (
        mlp_v3.out / "parts" / donor_code["sha256"]
    ).read_bytes()
    weights, donor_weights = _weights_part(mlp_update), _weights_part(mlp_v3)
    assert weights["sha256"] != donor_weights["sha256"]
    assert weights["entry"] == donor_weights["entry"] and weights["size"] == donor_weights["size"]
    assert m["reuse"] == {
        "codeFrom": donor_code["sha256"],
        "donorCacheKey": mlp_v3.manifest["cacheKey"],
        "reused": True,
        "fallback": None,
        "codegenSeconds": m["reuse"]["codegenSeconds"],
    }
    assert m["build"]["compileSeconds"] == m["reuse"]["codegenSeconds"]
    assert m["modelContentHash"] == "12" * 32 and m["cacheKey"] == "34" * 32
    # Never skipped: the ISA check, the fresh-process verification and the timing ran on the reused code.
    assert m["isaCheck"]["passed"] and m["requires"] == mlp_v3.manifest["requires"]
    assert m["verification"]["passed"] and m["verification"]["freshProcess"]
    assert m["timing"]["compiledMs"] > 0
    phases = [e["phase"] for e in mlp_update.events if e["event"] == "phase"]
    assert phases == ["loading", "compiling", "isa_check", "packaging", "verifying", "timing", "done"]
    assert "weights-only update: the generated code equals code part" in mlp_update.stderr


def test_the_updated_weights_part_is_indexed_with_the_same_layout(
    mlp_v3: DriverRun, mlp_update: DriverRun, fixtures: Path
) -> None:
    """The reuse path (donor code part + new blob) indexes its blob too (issue 17 item 1): same names and ranges,
    the new bytes, each the portable graph's own weight file."""
    old, new = _weights_part(mlp_v3)["tensors"], _weights_part(mlp_update)["tensors"]
    assert [(t["name"], t["offset"], t["size"]) for t in new] == [(t["name"], t["offset"], t["size"]) for t in old]
    assert not {t["sha256"] for t in new} & {t["sha256"] for t in old}, "mlp-retrained changed every tensor"
    with zipfile.ZipFile(fixtures / "mlp-retrained.pt2") as z:
        portable = {hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if "/data/weights/weight_" in n}
    assert {t["sha256"] for t in new} <= portable


def test_the_reused_artifact_computes_the_fine_tune(
    fixtures: Path, mlp_v3: DriverRun, mlp_update: DriverRun, tmp_path: Path
) -> None:
    """Assembled from the donor's code and the new weights, it returns the fine-tune's outputs, not the donor's."""
    parts = mlp_update.out / "parts"
    weights = _weights_part(mlp_update)
    package = assemble_package(
        parts / _code_part(mlp_update)["sha256"], [(weights["entry"], parts / weights["sha256"])], tmp_path / "a.pt2"
    )
    runner = load_compiled(package)
    # The code's own metadata is the donor's: it names the program the code was compiled from.
    assert runner.get_metadata()["kiln_model_content_hash"] == mlp_v3.manifest["modelContentHash"]
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = runner(x)
        tuned = load_program(fixtures / "mlp-retrained.pt2").module()(x)
        original = load_program(fixtures / "mlp.pt2").module()(x)
    assert torch.allclose(got, tuned, atol=1e-4, rtol=1e-3)
    assert not torch.allclose(got, original, atol=1e-2, rtol=1e-2)


class Scaled(nn.Module):
    """A linear layer times a 0-d buffer: freezing writes the buffer's value into the kernel as a literal."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 8)
        self.register_buffer("scale", torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.scale


def _export_scaled(scale: float, path: Path) -> Path:
    torch.manual_seed(0)
    model = Scaled(scale).eval()
    with torch.no_grad():
        ep = torch.export.export(model, (torch.randn(4, 16),), dynamic_shapes={"x": {0: Dim("batch", min=1, max=64)}})
    torch.export.save(ep, str(path))
    return path


def test_a_value_written_into_the_code_falls_back_to_a_full_build(tmp_path: Path) -> None:
    donor = run_driver(_export_scaled(0.5, tmp_path / "a.pt2"), make_job(3), tmp_path / "a")
    assert donor.returncode == 0
    base = tmp_path / "b"
    update = run_driver(_export_scaled(0.25, tmp_path / "b.pt2"), _donor_job(donor, base), base)
    assert update.returncode == 0
    m = update.manifest
    MANIFEST_SCHEMA.validate(m)
    assert m["reuse"]["reused"] is False
    assert m["reuse"]["fallback"]["code"] == "SOURCES_DIFFER"
    # The first differing line is the inlined constant.
    assert "static_cast<float>(0.5)" in m["reuse"]["fallback"]["message"]
    assert "static_cast<float>(0.25)" in m["reuse"]["fallback"]["message"]
    assert _code_part(update)["sha256"] != _code_part(donor)["sha256"]
    assert m["verification"]["passed"]
    assert m["build"]["compileSeconds"] > m["reuse"]["codegenSeconds"] > 0
    assert "weights-only update turned down (SOURCES_DIFFER)" in update.stderr


def test_a_donor_file_with_another_hash_is_refused(mlp_v3: DriverRun, fixtures: Path, tmp_path: Path) -> None:
    job = _donor_job(mlp_v3, tmp_path, sha256="0" * 64)
    run = run_driver(fixtures / "mlp-retrained.pt2", job, tmp_path)
    assert run.returncode == 3
    assert run.error["code"] == "INTERNAL"
    assert "refusing to reuse it" in run.error["message"]
    assert not (run.out / "parts").exists() and not (run.out / "manifest.json").exists()


def test_a_donor_for_another_target_is_turned_down(mlp_v3: DriverRun, tmp_path: Path) -> None:
    job = _donor_job(mlp_v3, tmp_path, level=2)
    with pytest.raises(NotReusable) as caught:
        load_donor(job["codeDonor"], tmp_path, job)
    assert caught.value.code == "DONOR_OTHER_RECIPE"
    assert "linux-x86_64-v3" in caught.value.message


def test_a_donor_without_sources_is_turned_down(mlp_v3: DriverRun, tmp_path: Path) -> None:
    """A code part without the generated sources cannot be checked, so it is never reused."""
    source = mlp_v3.out / "parts" / _code_part(mlp_v3)["sha256"]
    stripped = tmp_path / "code.zip"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(stripped, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith(".kernel.cpp"):
                zout.writestr(info, zin.read(info))
    job = make_job(3, codeDonor={"codePart": "code.zip", "sha256": "", "cacheKey": "ef" * 32})
    job["codeDonor"]["sha256"] = hashlib.sha256(stripped.read_bytes()).hexdigest()
    with pytest.raises(NotReusable) as caught:
        load_donor(job["codeDonor"], tmp_path, job)
    assert caught.value.code == "DONOR_NOT_REUSABLE"
