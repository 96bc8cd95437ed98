"""The shared test vectors of test/fixtures/contracts/, run against kiln_driver/expr_grammar.py.

libs/pt2/src/expr-vectors.spec.ts runs the same files against the TypeScript validator: a vector one side
accepts and the other refuses fails one of the two test commands, so the grammars cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiln_driver.expr_grammar import FUNCTION_ARITY, GUARD_CALLS, ExprGrammarError, check_guard, check_shape_expr

CONTRACTS = Path(__file__).resolve().parents[3] / "test" / "fixtures" / "contracts"


def _load(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / name).read_text(encoding="utf-8"))


SHAPES = _load("shape-exprs.json")
GUARDS = _load("guard-exprs.json")


def _verdict(run: Any) -> str:
    try:
        run()
    except ExprGrammarError:
        return "refuse"
    return "accept"


def _id(v: dict[str, Any]) -> str:
    text = v["expr"] if len(v["expr"]) <= 60 else v["expr"][:60] + "…"
    return f"{v['verdict']}:{text!r}"


@pytest.mark.parametrize("vector", SHAPES["vectors"], ids=_id)
def test_shape_expression_vectors(vector: dict[str, Any]) -> None:
    limits = vector.get("limits", SHAPES["limits"])
    verdict = _verdict(lambda: check_shape_expr(vector["expr"], limits["maxLength"], limits["maxDepth"]))
    assert verdict == vector["verdict"], vector.get("note")


@pytest.mark.parametrize("vector", GUARDS["vectors"], ids=_id)
def test_guard_vectors(vector: dict[str, Any]) -> None:
    limits = vector.get("limits", GUARDS["limits"])
    verdict = _verdict(lambda: check_guard(vector["expr"], limits["maxLength"], limits["maxDepth"]))
    assert verdict == vector["verdict"], vector.get("note")


def test_vectors_cover_every_function_of_the_python_grammar() -> None:
    for fn in FUNCTION_ARITY:
        for wanted in ("accept", "refuse"):
            assert any(v["verdict"] == wanted and v["expr"].startswith(f"{fn}(") for v in SHAPES["vectors"]), (
                f"no vector that {wanted}s a call of {fn}: add one to shape-exprs.json"
            )
    for call in GUARD_CALLS:
        assert any(v["verdict"] == "accept" and f"{call}(" in v["expr"] for v in GUARDS["vectors"]), call
