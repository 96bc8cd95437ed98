"""The device runtime's codes are those of the shared definition, libs/contracts/src/error-codes.json (whose
`artifactsFault` tells the API which telemetry failures count against an artifact)."""

from __future__ import annotations

import json
from pathlib import Path

from kiln_runtime.errors import ErrorCode

SHARED = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "src" / "error-codes.json"


def test_error_codes_are_the_shared_device_codes() -> None:
    shared = json.loads(SHARED.read_text(encoding="utf-8"))
    codes = {name: value for name, value in vars(ErrorCode).items() if name.isupper()}
    assert all(name == value for name, value in codes.items())
    assert set(codes.values()) == {c["code"] for c in shared["device"]}
