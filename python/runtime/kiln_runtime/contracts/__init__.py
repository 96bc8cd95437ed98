"""Contract data shared with the TypeScript services, read from this package so an installed runtime has it.

Each file here is a byte-for-byte copy of its one definition in the repository (tests/test_contract_data.py
names each source and fails when a copy differs): change the source, then copy it here.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load(name: str) -> Any:
    """The parsed JSON of one contract file of this package ("x86-levels.json")."""
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))
