"""Reduced-precision variants: converting the program (fast, no compile) and one real bf16 build (slow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import DriverRun, make_job, run_driver
from torch import nn

from kiln_driver.compare import compare_outputs
from kiln_driver.compile import load_program
from kiln_driver.errors import DriverError
from kiln_driver.inputs import call_args, materialize, plan_inputs
from kiln_driver.precision import convert_program

BF16_TOLERANCE = {"atol": 1e-1, "rtol": 5e-2}  # linux-x86_64-cuda-sm90-bf16 in libs/targets


def _convert(ep: Any) -> tuple[Any, Any]:
    plan = plan_inputs(ep, 0, "cpu")
    return plan, convert_program(ep, "bf16", plan, materialize(plan["sets"][0], 0, "cpu"))


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_fixtures_convert_and_keep_their_interface(fixtures: Path, name: str) -> None:
    ep = load_program(fixtures / f"{name}.pt2")
    weights_before = {k: v.clone() for k, v in ep.state_dict.items()}
    plan, bf16 = _convert(ep)
    # Same dynamic dims and ranges; fp32 in, fp32 out; bf16 inside.
    assert sorted((str(v.lower), str(v.upper)) for v in bf16.range_constraints.values()) == sorted(
        (str(v.lower), str(v.upper)) for v in ep.range_constraints.values()
    )
    assert {v.dtype for v in bf16.state_dict.values() if v.is_floating_point()} == {torch.bfloat16}
    # The original program is untouched (ep.module() shares its tensors with ep).
    assert all(torch.equal(weights_before[k], v) for k, v in ep.state_dict.items())
    for i, specs in enumerate(plan["sets"]):
        args, kwargs = call_args(ep, materialize(specs, i, "cpu"))
        with torch.no_grad():
            expected, actual = ep.module()(*args, **kwargs), bf16.module()(*args, **kwargs)
        assert actual.dtype == expected.dtype == torch.float32
        cmp = compare_outputs(expected, actual, **BF16_TOLERANCE)
        assert cmp["passed"], cmp
        assert cmp["maxAbsError"] > 1e-5  # it really computes in bf16


def _export(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    model.eval()
    return torch.export.export(model, example)


class _KeywordInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(5, 5))

    def forward(self, x: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
        return (x @ y) @ self.w


def test_keyword_inputs_and_dynamic_dims_carry_over() -> None:
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(
        _KeywordInput(), (torch.randn(4, 3),), {"y": torch.randn(3, 5)}, dynamic_shapes={"x": {0: batch}, "y": None}
    )
    plan, bf16 = _convert(ep)
    assert bf16.call_spec.in_spec == ep.call_spec.in_spec  # same positional/keyword layout
    assert [(int(v.lower), int(v.upper)) for v in bf16.range_constraints.values()] == [(1, 64)]
    args, kwargs = call_args(ep, materialize(plan["sets"][-1], 1, "cpu"))
    assert bf16.module()(*args, **kwargs).dtype == torch.float32


class _Embedding(nn.Module):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids * 2 + 1


class _FixedFp32Matmul(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A tensor the program creates itself, in an explicit fp32: mm(bf16, fp32) has no kernel.
        return x @ torch.ones(4, 4, dtype=torch.float32)


def test_integer_only_program_is_precision_unsupported() -> None:
    ep = _export(_Embedding(), (torch.arange(8),))
    with pytest.raises(DriverError) as info:
        _convert(ep)
    assert info.value.code == "PRECISION_UNSUPPORTED" and info.value.exit_code == 3
    assert info.value.details["precision"] == "bf16"
    assert "nothing to convert" in info.value.message


class _Inverse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.eye(4) * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.inv(self.w)


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (_FixedFp32Matmul(), "the program converted to bf16 does not run"),  # fake tensors let it through export
        (_Inverse(), "Low precision dtypes not supported"),  # caught while re-exporting
    ],
)
def test_program_that_does_not_run_in_bf16_is_precision_unsupported(model: nn.Module, why: str) -> None:
    ep = _export(model, (torch.randn(2, 4),))
    with pytest.raises(DriverError) as info:
        _convert(ep)
    assert info.value.code == "PRECISION_UNSUPPORTED"
    assert info.value.message.startswith("this model cannot be built in bf16: ")
    assert why in info.value.message


@pytest.mark.slow
def test_bf16_build_end_to_end(fixtures: Path, tmp_path: Path) -> None:
    """The whole driver with a bf16 recipe (on the CPU here; the sm90 bf16 target ran on an H100)."""
    job = make_job(3)
    job["recipe"]["precision"] = "bf16"
    job["recipe"]["tolerance"] = dict(BF16_TOLERANCE)
    run: DriverRun = run_driver(fixtures / "mlp.pt2", job, tmp_path / "run")
    assert run.returncode == 0, run.stderr[-3000:]
    m = run.manifest
    assert m["precision"] == "bf16"
    v = m["verification"]
    assert v["passed"] and v["referencePrecision"] == "fp32" and v["atol"] == BF16_TOLERANCE["atol"]
    assert 1e-5 < v["maxAbsError"] < BF16_TOLERANCE["atol"]
    # The converted program is reloaded before compiling, so the artifact accepts every declared batch size
    # (compiled straight from export's own shape environment it accepted [2, 256] of the declared [1, 256]).
    assert m["inputRanges"] == {"narrowed": False, "dims": []}
    assert [1, 64] in [shape[0] for shape in v["inputShapes"]]
    assert "converting to bf16" in run.stderr
    assert next(e["message"] for e in run.events if e["phase"] == "compiling").startswith("converting to bf16")
