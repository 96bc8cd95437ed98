"""The contract data this package ships (kiln_runtime/contracts/) is exactly its one definition in the repository.

The Python packages must work when installed, away from the repository, so they read copies shipped inside
kiln_runtime; this test fails as soon as a copy and its source differ, naming the command that fixes it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Each file of kiln_runtime/contracts/ and the file it copies.
SOURCES = {
    "x86-levels.json": "libs/targets/src/x86-levels.json",
}


def _shipped() -> set[str]:
    return {f.name for f in resources.files("kiln_runtime.contracts").iterdir() if f.name.endswith(".json")}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_shipped_copy_equals_its_source(name: str) -> None:
    source = REPO / SOURCES[name]
    copy = resources.files("kiln_runtime.contracts").joinpath(name)
    assert copy.read_bytes() == source.read_bytes(), (
        f"kiln_runtime/contracts/{name} differs from {SOURCES[name]}: "
        f"cp {SOURCES[name]} python/runtime/kiln_runtime/contracts/{name}"
    )


def test_every_shipped_file_names_its_source() -> None:
    assert _shipped() == set(SOURCES)
