"""The shared driver-job vectors of test/fixtures/contracts/driver-jobs.json and their JSON Schema.

apps/worker/src/build-runner/driver-job-schema.spec.ts runs the same vectors under ajv and checks that their bases
are jobs as the worker writes them; here parse_job must give each vector's verdict, and whatever the schema accepts
(under Python's jsonschema) it must accept too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cpu_recipe, make_job
from jsonschema import Draft202012Validator

from kiln_driver.errors import DriverError
from kiln_driver.job import parse_job

REPO = Path(__file__).resolve().parents[3]
JOBS = json.loads((REPO / "test/fixtures/contracts/driver-jobs.json").read_text(encoding="utf-8"))
JOB_SCHEMA = Draft202012Validator(
    json.loads((REPO / "libs/contracts/src/schemas/driver-job.schema.json").read_text(encoding="utf-8"))
)


def _apply_changes(base: Any, changes: dict[str, Any]) -> Any:
    """The base with each change applied: a JSON Pointer to its new value, "$delete" removing it, "" the whole
    document (as test/support/contract-vectors.ts and the runtime's tests/test_contract_vectors.py apply them)."""
    doc = copy.deepcopy(base)
    for pointer, value in changes.items():
        if pointer == "":
            doc = value
            continue
        *keys, last = pointer[1:].split("/")
        parent = doc
        for key in keys:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        if value == "$delete":
            del parent[int(last) if isinstance(parent, list) else last]
        elif isinstance(parent, list) and int(last) == len(parent):
            parent.append(copy.deepcopy(value))
        else:
            parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(value)
    return doc


def _accepted(job: Any) -> bool:
    try:
        parse_job(job)
    except DriverError:
        return False
    return True


@pytest.mark.parametrize("vector", JOBS["vectors"], ids=lambda v: v["name"])
def test_driver_job_vectors(vector: dict[str, Any]) -> None:
    job = _apply_changes(JOBS["bases"][vector["base"]], vector["changes"])
    assert _accepted(job) == vector["valid"]
    assert JOB_SCHEMA.is_valid(job) == vector["schema"]


def test_the_jobs_of_these_tests_are_valid_driver_jobs() -> None:
    for level in (2, 3, 4):
        JOB_SCHEMA.validate(make_job(level))


def test_the_tests_cpu_recipe_is_the_catalogs() -> None:
    """conftest.cpu_recipe copies libs/targets' x86 recipe (with this venv's torch, which the build must use)."""
    base = JOBS["bases"]["cpu-v3"]["recipe"]
    assert {**cpu_recipe(3), "toolchain": base["toolchain"]} == base
