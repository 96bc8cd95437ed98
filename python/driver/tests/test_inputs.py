from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kiln_driver.compile import load_program
from kiln_driver.inputs import call_args, materialize, pick_sizes, plan_inputs
from kiln_driver.neutralize import neutralize_model


@pytest.fixture(scope="module")
def programs(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("programs")
    loaded = {}
    for name in ("cnn", "transformer"):
        neutralize_model(fixtures / f"{name}.pt2", out / f"{name}.pt2")
        loaded[name] = load_program(out / f"{name}.pt2")
    return loaded


def test_cnn_batch_is_exercised_inside_its_range(programs: dict[str, object]) -> None:
    plan = plan_inputs(programs["cnn"], seed=0, device="cpu")
    (symbol,) = plan["symbols"].values()
    assert (symbol["min"], symbol["max"], symbol["hint"]) == (1, 32, 2)
    batches = [s[0]["shape"][0] for s in plan["sets"]]
    assert batches == [2, 3, 1, 32]  # the export hint first (timing uses it), then +1, the bottom, the top
    assert plan["dimSymbols"] == [["s77", None, None, None]]
    assert all(s[0]["shape"][1:] == [3, 32, 32] and s[0]["dtype"] == "float32" for s in plan["sets"])


def test_transformer_batch_and_sequence_inside_their_ranges(programs: dict[str, object]) -> None:
    ep = programs["transformer"]
    plan = plan_inputs(ep, seed=0, device="cpu")
    assert len(plan["symbols"]) == 2
    shapes = [s[0]["shape"] for s in plan["sets"]]
    assert len({b for b, _, _ in shapes}) >= 2 and len({t for _, t, _ in shapes}) >= 2
    assert all(1 <= b <= 16 and 2 <= t <= 128 and d == 128 for b, t, d in shapes)
    module = ep.module()
    with torch.no_grad():
        for specs in plan["sets"]:  # the portable graph accepts every planned set
            args, kwargs = call_args(ep, materialize(specs, 0, "cpu"))
            assert module(*args, **kwargs).shape == torch.Size(specs[0]["shape"])


def test_materialize_is_deterministic_per_seed(programs: dict[str, object]) -> None:
    specs = plan_inputs(programs["cnn"], seed=0, device="cpu")["sets"][0]
    a, b, c = materialize(specs, 7, "cpu"), materialize(specs, 7, "cpu"), materialize(specs, 8, "cpu")
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_materialize_dtypes_and_strides() -> None:
    specs = [
        {"kind": "tensor", "dtype": "int64", "shape": [50], "stride": [1]},
        {"kind": "tensor", "dtype": "bool", "shape": [50], "stride": [1]},
        {"kind": "tensor", "dtype": "bfloat16", "shape": [2, 3, 4, 5], "stride": [60, 1, 15, 3]},  # channels-last
        {"kind": "value", "value": 3},
    ]
    ints, bools, cl, three = materialize(specs, 0, "cpu")
    assert ints.dtype == torch.int64 and int(ints.min()) >= 0 and int(ints.max()) <= 1
    assert bools.dtype == torch.bool and bools.any() and not bools.all()
    assert cl.dtype == torch.bfloat16 and cl.stride() == (60, 1, 15, 3)
    assert three == 3


@pytest.mark.parametrize(
    ("lo", "hi", "hint", "expected"),
    [
        (1, 256, 8, [8, 9, 1, 256]),
        (2, 128, 16, [16, 17, 2, 128]),
        (1, 8, 8, [8, 7, 1, 8]),  # hint at the top: go down
        (4, 4, 4, [4, 4, 4, 4]),  # a single allowed size
        (2, None, None, [8, 9, 2, 8]),  # unbounded, no hint: no top to test
        (1, 16, 100, [16, 15, 1, 16]),  # hint outside the range is clamped
        (0, 10, 0, [1, 2, 1, 10]),  # no empty tensors unless forced
    ],
)
def test_pick_sizes(lo: int, hi: int | None, hint: int | None, expected: list[int]) -> None:
    assert pick_sizes(lo, hi, hint) == expected


def test_huge_range_ends_are_not_materialized(programs: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln_driver import inputs

    monkeypatch.setattr(inputs, "MAX_SET_BYTES", 0)
    monkeypatch.setattr(inputs, "MAX_GROWTH", 4)
    plan = plan_inputs(programs["cnn"], seed=0, device="cpu")
    assert [s[0]["shape"][0] for s in plan["sets"]] == [2, 3, 1]  # batch 32 would be 16x the first set
