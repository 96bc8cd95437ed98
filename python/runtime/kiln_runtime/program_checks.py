"""The API's rules for the code inside a portable graph, applied again on the device before torch reads the file.

`torch.export.load` (and `ExportedProgram.module()`) evaluates two kinds of text from the archive's program JSON:
- every `expr_str` goes to `sympy.sympify`, which `eval`s it with Python builtins in scope;
- every `guards_code` entry is pasted into a function and `exec`uted.
The API refuses uploads whose expressions leave strict grammars (libs/pt2/src/shape-expr.ts, guard-expr.ts); the
signed portable manifest lists the guards it accepted. The device does not rely on that alone: it parses every
expression of the file it is about to load against the same grammars, here written with Python's own parser
(`ast`, which only parses, never evaluates) and walked against allow-lists of node shapes, and it checks that the
file's guards are exactly the signed ones. Anything else refuses the load (PROGRAM_REFUSED).
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ErrorCode, VerificationError

MAX_EXPR_LENGTH = 16_384
MAX_EXPR_DEPTH = 64
MAX_GUARDS = 1024
MAX_JSON_BYTES = 128 << 20
MAX_INT_DIGITS = 20
MAX_INT_LITERAL = 2**63
MAX_LITERAL_EXPONENT = 64
MAX_FLOAT_PRECISION = 1024

SYMBOL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DERIVED_DIM_KEY = re.compile(r"^[a-z0-9_]+( ?([+\-*]|//) ?[a-z0-9_]+)+$")
FLOAT_LITERAL = re.compile(r"^-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$")
NAME_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_INF = float("inf")

# shape-expr.ts FUNCTION_ARITY: [min, max] arguments.
FUNCTION_ARITY: dict[str, tuple[int, float]] = {
    "Add": (2, _INF),
    "Mul": (2, _INF),
    "Pow": (2, 2),
    "Max": (2, _INF),
    "Min": (2, _INF),
    "Equality": (2, 2),
    "Unequality": (2, 2),
    "StrictLessThan": (2, 2),
    "LessThan": (2, 2),
    "StrictGreaterThan": (2, 2),
    "GreaterThan": (2, 2),
    "And": (2, _INF),
    "Or": (2, _INF),
    "Not": (1, 1),
    "FloorDiv": (2, 2),
    "ModularIndexing": (3, 3),
    "Where": (3, 3),
    "PythonMod": (2, 2),
    "Mod": (2, 2),
    "CleanDiv": (2, 2),
    "CeilToInt": (1, 1),
    "FloorToInt": (1, 1),
    "CeilDiv": (2, 2),
    "LShift": (2, 2),
    "RShift": (2, 2),
    "PowByNatural": (2, 2),
    "FloatPow": (2, 2),
    "FloatTrueDiv": (2, 2),
    "IntTrueDiv": (2, 2),
    "IsNonOverlappingAndDenseIndicator": (2, _INF),
    "TruncToFloat": (1, 1),
    "TruncToInt": (1, 1),
    "RoundToInt": (1, 1),
    "RoundDecimal": (2, 2),
    "ToFloat": (1, 1),
    "Identity": (1, 1),
}
SYMBOL_ASSUMPTIONS = frozenset({"positive", "integer", "nonnegative", "real"})
GUARD_CALLS = frozenset({"max", "min", "abs"})
GUARD_MATH_CALLS = frozenset({"floor", "ceil", "trunc"})
# Characters that can appear in either grammar; anything else is refused before Python parses the text.
_SHAPE_CHARS = re.compile(r"^[A-Za-z0-9_'(),=.+\- ]*$")
_GUARD_CHARS = re.compile(r"^[A-Za-z0-9_'()\[\],.+\-*/%<>=! ]*$")


class _Refused(Exception):
    pass


def _refuse(what: str, text: str, reason: str) -> VerificationError:
    excerpt = text if len(text) <= 120 else text[:117] + "..."
    return VerificationError(
        ErrorCode.PROGRAM_REFUSED,
        f"the portable graph holds a {what} outside Kiln's grammar ({reason}): {excerpt!r}. Nothing was loaded.",
        {"what": what, "reason": reason},
    )


def _parse(text: str, allowed: re.Pattern[str]) -> ast.expr:
    if len(text) == 0 or len(text) > MAX_EXPR_LENGTH:
        raise _Refused(f"length {len(text)} (1 to {MAX_EXPR_LENGTH})")
    if not allowed.match(text):
        raise _Refused("a character no such expression has")
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Refused(f"not parseable: {type(exc).__name__}") from None


def _int_literal(node: ast.expr) -> int:
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    value = node.operand if isinstance(node, ast.UnaryOp) and negative else node
    if not (isinstance(value, ast.Constant) and type(value.value) is int):
        raise _Refused("expected an integer literal")
    if len(str(value.value)) > MAX_INT_DIGITS or value.value > MAX_INT_LITERAL:
        raise _Refused("integer literal out of range")
    return -value.value if negative else value.value


# ----------------------------------------------------------------------------------------- shape expressions


def _shape(node: ast.expr, depth: int) -> tuple[str, Any]:
    """('integer', n) | ('rational', (p, q)) | ('other', None), or raises _Refused."""
    if depth > MAX_EXPR_DEPTH:
        raise _Refused(f"nested deeper than {MAX_EXPR_DEPTH} levels")
    if isinstance(node, ast.Name) and node.id in ("true", "false"):
        return ("other", None)
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise _Refused(f"{type(node).__name__} is not allowed")
    fn, args, keywords = node.func.id, node.args, node.keywords
    if fn == "Symbol":
        if len(args) != 1 or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            raise _Refused("Symbol takes a quoted name")
        if len(args[0].value) > 64 or not SYMBOL_NAME.match(args[0].value):
            raise _Refused("bad symbol name")
        seen: set[str] = set()
        for kw in keywords:
            if kw.arg not in SYMBOL_ASSUMPTIONS or kw.arg in seen:
                raise _Refused(f"Symbol assumption {kw.arg!r}")
            if not (isinstance(kw.value, ast.Constant) and type(kw.value.value) is bool):
                raise _Refused("Symbol assumptions are True or False")
            seen.add(kw.arg)
        return ("other", None)
    if fn == "Integer":
        if len(args) != 1 or keywords:
            raise _Refused("Integer takes one integer")
        return ("integer", _int_literal(args[0]))
    if fn == "Rational":
        if len(args) != 2 or keywords:
            raise _Refused("Rational takes two integers")
        p, q = _int_literal(args[0]), _int_literal(args[1])
        if q < 2:
            raise _Refused("Rational denominator must be 2 or more")
        return ("rational", (p, q))
    if fn == "Float":
        if (
            len(args) != 1
            or not isinstance(args[0], ast.Constant)
            or not isinstance(args[0].value, str)
            or not FLOAT_LITERAL.match(args[0].value)
            or len(keywords) != 1
            or keywords[0].arg != "precision"
        ):
            raise _Refused("Float takes a decimal string and precision=")
        precision = _int_literal(keywords[0].value)
        if not 1 <= precision <= MAX_FLOAT_PRECISION:
            raise _Refused("Float precision out of range")
        return ("other", None)
    arity = FUNCTION_ARITY.get(fn)
    if arity is None:
        raise _Refused(f"{fn!r} is not an allowed function")
    if keywords or not arity[0] <= len(args) <= arity[1]:
        raise _Refused(f"{fn} takes {arity[0]} to {arity[1]} arguments")
    if fn == "IsNonOverlappingAndDenseIndicator" and len(args) % 2:
        raise _Refused(f"{fn} takes sizes and strides in pairs")
    kinds = [_shape(a, depth + 1) for a in args]
    if fn == "Pow" or (fn == "PowByNatural" and kinds[1][0] in ("integer", "rational")):
        kind, value = kinds[1]
        small = (kind == "integer" and abs(value) <= MAX_LITERAL_EXPONENT) or (
            kind == "rational" and all(abs(v) <= MAX_LITERAL_EXPONENT for v in value)
        )
        if not small:
            raise _Refused(f"{fn} exponent must be a literal within ±{MAX_LITERAL_EXPONENT}")
    return ("other", None)


def check_shape_expr(text: str) -> None:
    try:
        _shape(_parse(text, _SHAPE_CHARS), 1)
    except _Refused as why:
        raise _refuse("shape expression", text, str(why)) from None


# ------------------------------------------------------------------------------------------------ guards


def _guard_input(node: ast.expr) -> bool:
    """`L['x']`, `L['x'][0]` ... (the input access of a guard), without the size/stride suffix."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        ok = isinstance(key, ast.Constant) and (
            (isinstance(key.value, str) and NAME_STRING.match(key.value) is not None)
            or (type(key.value) is int and len(str(key.value)) <= MAX_INT_DIGITS)
        )
        return ok and ((isinstance(node.value, ast.Name) and node.value.id == "L") or _guard_input(node.value))
    return False


def _guard(node: ast.expr, depth: int) -> None:
    if depth > MAX_EXPR_DEPTH:
        raise _Refused(f"nested deeper than {MAX_EXPR_DEPTH} levels")
    d = depth + 1
    if isinstance(node, ast.BoolOp) and isinstance(node.op, (ast.And, ast.Or)):
        for v in node.values:
            _guard(v, d)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
        _guard(node.operand, d)
    elif isinstance(node, ast.Compare) and all(
        isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in node.ops
    ):
        _guard(node.left, d)
        for c in node.comparators:
            _guard(c, d)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)):
        _guard(node.left, d)
        _guard(node.right, d)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = node.right
        if not (isinstance(exponent, ast.Constant) and type(exponent.value) is int and exponent.value <= 64):
            raise _Refused(f"** takes a literal exponent of at most {MAX_LITERAL_EXPONENT}")
        _guard(node.left, d)
    elif isinstance(node, ast.Constant):
        if type(node.value) is bool:
            return
        if type(node.value) is not int or len(str(node.value)) > MAX_INT_DIGITS:
            raise _Refused("only integers and True/False are allowed as literals")
    elif _guard_input(node) or (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr in ("size", "stride")
        and not node.value.args
        and not node.value.keywords
        and _guard_input(node.value.func.value)
        and isinstance(node.slice, ast.Constant)
        and type(node.slice.value) is int
    ):
        return
    elif isinstance(node, ast.Call) and not node.keywords and node.args:
        f = node.func
        plain = isinstance(f, ast.Name) and f.id in GUARD_CALLS
        math = (
            isinstance(f, ast.Attribute)
            and f.attr in GUARD_MATH_CALLS
            and isinstance(f.value, ast.Name)
            and f.value.id == "math"
        )
        if not (plain or math):
            raise _Refused("call of a function outside max/min/abs/math.floor/math.ceil/math.trunc")
        for a in node.args:
            _guard(a, d)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "storage_offset"
        and not node.args
        and not node.keywords
        and _guard_input(node.func.value)
    ):
        return
    else:
        raise _Refused(f"{type(node).__name__} is not allowed")


def check_guard(text: str) -> None:
    try:
        _guard(_parse(text, _GUARD_CHARS), 1)
    except _Refused as why:
        raise _refuse("guard", text, str(why)) from None


# ----------------------------------------------------------------------------------------------- archive


def _expr_strings(value: Any) -> Iterator[str]:
    """Every `expr_str` anywhere in the program JSON, iteratively (no recursion on hostile nesting)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for key, item in v.items():
                if key == "expr_str":
                    if not isinstance(item, str):
                        raise _refuse("shape expression", repr(item), "not a string")
                    yield item
                else:
                    stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)


def check_portable_program(path: Path, signed_guards: list[str]) -> int:
    """Checks every program of the archive; returns how many expressions were checked. Raises VerificationError."""
    checked = 0
    with zipfile.ZipFile(path) as z:
        programs = [
            i
            for i in z.infolist()
            if not i.is_dir()
            and i.filename.count("/") == 2
            and i.filename.split("/")[1] == "models"
            and i.filename.endswith(".json")
        ]
        if not programs:
            raise VerificationError(
                ErrorCode.PROGRAM_REFUSED, "the portable graph holds no program. Nothing was loaded."
            )
        for info in programs:
            if info.file_size > MAX_JSON_BYTES:
                raise VerificationError(
                    ErrorCode.PROGRAM_REFUSED, f"{info.filename} is larger than {MAX_JSON_BYTES} bytes"
                )
            try:
                program = json.loads(z.read(info))
            except (ValueError, RecursionError) as exc:
                raise VerificationError(
                    ErrorCode.PROGRAM_REFUSED, f"{info.filename} is not a JSON program ({type(exc).__name__})"
                ) from None
            if not isinstance(program, dict):
                raise VerificationError(ErrorCode.PROGRAM_REFUSED, f"{info.filename} is not a program")
            guards = program.get("guards_code") or []
            if not isinstance(guards, list) or len(guards) > MAX_GUARDS or not all(isinstance(g, str) for g in guards):
                raise _refuse("guard list", repr(guards)[:120], f"not a list of at most {MAX_GUARDS} strings")
            if guards != list(signed_guards):
                raise VerificationError(
                    ErrorCode.PROGRAM_REFUSED,
                    "the portable graph's guards are not the ones its signed manifest lists: the file is not the "
                    "upload Kiln validated. Nothing was loaded.",
                    {"signed": list(signed_guards)[:20], "found": guards[:20]},
                )
            for g in guards:
                check_guard(g)
                checked += 1
            ranges = program.get("range_constraints") or {}
            if not isinstance(ranges, dict):
                raise _refuse("range constraint", repr(ranges)[:120], "not an object")
            for key in ranges:
                if len(key) > 256 or not (SYMBOL_NAME.match(key) or DERIVED_DIM_KEY.match(key)):
                    raise _refuse("range constraint", key, "neither a symbol nor a derived dim's expression")
            seen: set[str] = set()
            for expr in _expr_strings(program):
                if expr not in seen:
                    seen.add(expr)
                    check_shape_expr(expr)
                    checked += 1
    return checked
