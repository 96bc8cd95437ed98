"""The CLI contract on failures: error.json, exit codes, and nothing half-written. No compiles here."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from conftest import make_job, run_driver


def _rewrite(src: Path, dst: Path, edit: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            zout.writestr(info, edit.get(rel, zin.read(info)))
    return dst


def test_garbage_model_is_invalid_model(tmp_path: Path) -> None:
    model = tmp_path / "garbage.pt2"
    model.write_bytes(b"this is not a zip file at all\x00\xff" * 100)
    run = run_driver(model, make_job(3), tmp_path / "run")
    assert run.returncode == 3
    assert run.error["code"] == "INVALID_MODEL"
    assert "zip" in run.error["message"]
    assert isinstance(run.error["details"], dict)
    # The phase it failed in starts, then ends as failed, with the code (the worker's phase span says so).
    assert [(e["event"], e["phase"]) for e in run.events] == [("phase", "loading"), ("phase_end", "loading")]
    assert run.events[1]["ok"] is False and run.events[1]["errorCode"] == "INVALID_MODEL"
    assert not (run.out / "manifest.json").exists() and not (run.out / "parts").exists()


def test_unknown_operator_is_unsupported_op(fixtures: Path, tmp_path: Path) -> None:
    # A program using an operator this torch does not have (e.g. exported with a newer torch).
    with zipfile.ZipFile(fixtures / "mlp.pt2") as z:
        program = z.read("mlp/models/model.json")
    assert b"torch.ops.aten.gelu.default" in program
    bad = program.replace(b"torch.ops.aten.gelu.default", b"torch.ops.aten.kiln_no_such_op.default")
    model = _rewrite(fixtures / "mlp.pt2", tmp_path / "unknown-op.pt2", {"models/model.json": bad})
    run = run_driver(model, make_job(3), tmp_path / "run")
    assert run.returncode == 3
    assert run.error["code"] == "UNSUPPORTED_OP"
    assert run.error["details"]["op"] == "torch.ops.aten.kiln_no_such_op.default"


def test_pickled_weights_are_refused(fixtures: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(fixtures / "mlp.pt2") as z:
        config = json.loads(z.read("mlp/data/weights/model_weights_config.json"))
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    model = _rewrite(
        fixtures / "mlp.pt2",
        tmp_path / "pickled.pt2",
        {"data/weights/model_weights_config.json": json.dumps(config).encode()},
    )
    run = run_driver(model, make_job(3), tmp_path / "run")
    assert run.returncode == 3
    assert run.error["code"] == "INVALID_MODEL"
    assert "pickle" in run.error["message"]


def test_wrong_torch_is_a_retryable_toolchain_mismatch(fixtures: Path, tmp_path: Path) -> None:
    job = make_job(3)
    job["recipe"]["toolchain"]["torch"] = "9.9.9+cpu"
    run = run_driver(fixtures / "mlp.pt2", job, tmp_path / "run")
    assert run.returncode == 1
    assert run.error["code"] == "TOOLCHAIN_MISMATCH"
    assert run.error["details"]["want"] == "9.9.9+cpu"


def test_missing_compiler_is_a_retryable_toolchain_mismatch(fixtures: Path, tmp_path: Path) -> None:
    job = make_job(3)
    job["recipe"]["toolchain"]["cxx"] = "kiln-no-such-g++"
    run = run_driver(fixtures / "mlp.pt2", job, tmp_path / "run")
    assert run.returncode == 1
    assert run.error["code"] == "TOOLCHAIN_MISMATCH"


def test_malformed_job_is_deterministic(fixtures: Path, tmp_path: Path) -> None:
    job = make_job(3)
    del job["recipe"]["tolerance"]
    run = run_driver(fixtures / "mlp.pt2", job, tmp_path / "run")
    assert run.returncode == 3
    assert run.error["code"] == "INTERNAL"
    assert "tolerance" in run.error["message"]


def test_unknown_inductor_option_is_deterministic(fixtures: Path, tmp_path: Path) -> None:
    job = make_job(3)
    job["recipe"]["inductorConfigs"]["cpp.no_such_option"] = 1
    run = run_driver(fixtures / "mlp.pt2", job, tmp_path / "run")
    assert run.returncode == 3
    assert run.error["code"] == "INTERNAL"
    assert run.error["details"]["keys"] == ["cpp.no_such_option"]
