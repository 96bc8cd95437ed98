from __future__ import annotations

import zipfile
from pathlib import Path

from kiln_driver.input_checks import (
    accepted_dims,
    is_input_range_error,
    narrowed_dims,
    narrowed_range_error,
    parse_wrapper_checks,
)

# Verbatim shape of what cpp_wrapper_cpu.py generates (from the CNN fixture's v3 build).
WRAPPER = """
    auto arg38_1_size = arg38_1.sizes();

    if (arg38_1_size[0] < 2) {
        std::stringstream ss;
        ss << "input_handles[0]: dim value is too small at 0, "
           << "expected it to be >= 2, " << "but got: "
           << arg38_1_size[0] << "\\n";
        throw std::runtime_error(std::move(ss).str());
    }

    if (arg38_1_size[0] > 15) {
        std::stringstream ss;
        ss << "input_handles[0]: dim value is too large at 0, "
           << "expected to be <= 15, " << "but got: "
           << arg38_1_size[0] << "\\n";
        throw std::runtime_error(std::move(ss).str());
    }

    if (3 != arg38_1_size[1]) {
        std::stringstream ss;
        ss << "input_handles[0]: unmatched dim value at 1, "
           << "expected: 3, " << "but got: " << arg38_1_size[1]
"""


def test_parse_wrapper_checks() -> None:
    assert parse_wrapper_checks(WRAPPER) == [{"tensorInput": 0, "dim": 0, "min": 2, "max": 15}]


def test_is_input_range_error() -> None:
    assert is_input_range_error("input_handles[0]: dim value is too small at 0, expected it to be >= 2, but got: 1")
    assert is_input_range_error("input_handles[1]: dim value is too large at 2, expected to be <= 15, but got: 32")
    assert not is_input_range_error("input_handles[0]: unmatched dtype, expected: 6, but got: 7")
    assert not is_input_range_error("Segmentation fault")


def test_narrowed_range_error_names_the_dim(tmp_path: Path) -> None:
    package = tmp_path / "p.pt2"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("p/data/aotinductor/model/x.wrapper.cpp", WRAPPER)
    assert accepted_dims(package) == [{"tensorInput": 0, "dim": 0, "min": 2, "max": 15}]
    plan = {
        "seed": 0,
        "device": "cpu",
        "symbols": {"s77": {"min": 1, "max": 32, "hint": 2, "values": [2, 3, 1, 32]}},
        "dimSymbols": [["s77", None, None, None]],
        "sets": [[{"kind": "tensor", "dtype": "float32", "shape": [2, 3, 32, 32], "stride": [3072, 1024, 32, 1]}]],
    }
    err = narrowed_range_error(narrowed_dims(accepted_dims(package), plan), [])
    assert err.code == "INPUT_RANGE_NARROWED" and err.exit_code == 3
    assert "accepts [2, 15], the program declares [1, 32]" in err.message
    assert err.details["narrowedDims"][0]["symbol"] == "s77"


def _plan(lo: int, hi: int | None) -> dict:
    return {
        "symbols": {"s0": {"min": lo, "max": hi, "hint": 8, "values": [8]}},
        "dimSymbols": [[], ["s0", None]],
        "sets": [
            [{"kind": "value", "value": 3}, {"kind": "tensor", "dtype": "float32", "shape": [8, 4], "stride": [4, 1]}]
        ],
    }


def _acc(lo: int | None, hi: int | None) -> list[dict]:
    return [{"tensorInput": 0, "dim": 0, "min": lo, "max": hi}]


def test_narrowed_dims_rules() -> None:
    # The tensor is user input 1 (input 0 is a scalar the artifact never sees).
    assert narrowed_dims(_acc(1, 64), _plan(1, 64)) == []
    assert narrowed_dims(_acc(1, 64), _plan(0, 64)) == []  # size 0 does not count
    assert narrowed_dims(_acc(2, 64), _plan(1, 64))[0]["input"] == 1
    assert narrowed_dims(_acc(1, 15), _plan(1, 64))[0]["accepted"] == [1, 15]
    assert narrowed_dims(_acc(2, 9223372036854775807), _plan(2, None)) == []  # clamped "unbounded"
    assert narrowed_dims(_acc(2, 4096), _plan(2, None))[0]["declared"] == [2, None]
    assert narrowed_dims([{"tensorInput": 0, "dim": 1, "min": 5, "max": 5}], _plan(1, 64)) == []  # static dim
