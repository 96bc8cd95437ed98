"""The strict grammars for the two kinds of Python-evaluated text in a `.pt2`, checked before torch.export.load.

`torch.export.load` feeds every `expr_str` (shape expressions, sympy `srepr` text) to `sympy.sympify`, which
`eval`s it, and `ExportedProgram.module()` `exec`s the `guards_code` entries. The API refuses uploads outside
these grammars (libs/pt2/src/shape-expr.ts and guard-expr.ts); the driver applies the same rules again to the
file it was handed, so that a model that reached a worker some other way (or a validator bug) still cannot run
code at load time. This module is a port of those two TypeScript files: same grammar, same limits, same
verdict on every input. Both run the shared test vectors of test/fixtures/contracts/*.json, so a change to one
side that the other does not follow fails the tests. It only parses; it never evaluates anything.

Shape expressions (sympy srepr, as torch 2.13 writes them):
    expr := 'true' | 'false' | Symbol('<name>'[, <assumption>=True|False]*) | Integer(<int>)
          | Rational(<int>, <int >= 2>) | Float('<decimal>', precision=<1..1024>) | <function>(expr, ...)
with the functions and arities of FUNCTION_ARITY, literal Pow exponents within +-64, integers within +-2**63.

Guards (Python source printed by torch's ShapeGuardPythonPrinter):
    guard := or;  or := and ('or' and)*;  and := not ('and' not)*;  not := 'not' not | cmp
    cmp := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum)*;  sum := product (('+'|'-') product)*
    product := unary (('*'|'//'|'%') unary)*;  unary := ('-'|'+') unary | atom ('**' INT)?
    atom := INT | True | False | L['name'|INT]+ (.size()[INT] | .stride()[INT] | .storage_offset())?
          | (max|min|abs|math.floor|math.ceil|math.trunc) '(' guard (',' guard)* ')' | '(' guard ')'
"""

from __future__ import annotations

import math
import re
from typing import Final

MAX_EXPR_LENGTH: Final = 16_384
MAX_EXPR_DEPTH: Final = 64

INF = math.inf

# Arity of each accepted shape-expression function: (min, max) argument count. Mirrors FUNCTION_ARITY of
# libs/pt2/src/shape-expr.ts: torch 2.13's GraphModuleDeserializer.sympy_functions plus the sympy classes whose
# srepr appears in exported programs.
FUNCTION_ARITY: Final[dict[str, tuple[float, float]]] = {
    "Add": (2, INF),
    "Mul": (2, INF),
    "Pow": (2, 2),
    "Max": (2, INF),
    "Min": (2, INF),
    "Equality": (2, 2),
    "Unequality": (2, 2),
    "StrictLessThan": (2, 2),
    "LessThan": (2, 2),
    "StrictGreaterThan": (2, 2),
    "GreaterThan": (2, 2),
    "And": (2, INF),
    "Or": (2, INF),
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
    "IsNonOverlappingAndDenseIndicator": (2, INF),
    "TruncToFloat": (1, 1),
    "TruncToInt": (1, 1),
    "RoundToInt": (1, 1),
    "RoundDecimal": (2, 2),
    "ToFloat": (1, 1),
    "Identity": (1, 1),
}

SYMBOL_ASSUMPTIONS: Final = ("positive", "integer", "nonnegative", "real")
SYMBOL_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
_MAX_SYMBOL_NAME = 64
_MAX_INT_LITERAL = 2**63
_MAX_LITERAL_EXPONENT = 64
_MAX_INT_DIGITS = 20
_MAX_FLOAT_PRECISION = 1024
_FLOAT_LITERAL = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?\Z")
_MAX_STRING_LITERAL = 128
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_CHARS = _LETTERS | _DIGITS
_STRING_CHARS = _IDENT_CHARS | frozenset(".+-")


class ExprGrammarError(ValueError):
    """The text is outside the grammar; `position` is the character where it leaves it."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at position {position}")
        self.reason = reason
        self.position = position


# (kind, payload): ("symbol", name) | ("integer", value) | ("rational", (p, q)) | ("float", literal)
# | ("boolean", value) | ("call", (fn, args))
_Node = tuple[str, object]


class _ShapeParser:
    def __init__(self, src: str, max_depth: int) -> None:
        self.src = src
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, reason: str, at: int | None = None) -> ExprGrammarError:
        return ExprGrammarError(reason, self.pos if at is None else at)

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def parse_all(self) -> None:
        if not self.src:
            raise self.fail("empty expression")
        self.parse_expr(1)
        self.skip_spaces()
        if self.pos != len(self.src):
            raise self.fail("unexpected text after the expression")

    def parse_expr(self, depth: int) -> _Node:
        if depth > self.max_depth:
            raise self.fail(f"nested deeper than {self.max_depth} levels")
        self.skip_spaces()
        start = self.pos
        name = self.parse_identifier()
        if name in ("true", "false"):
            return ("boolean", name == "true")
        if name == "Symbol":
            return self.parse_symbol()
        if name == "Integer":
            self.expect("(")
            value = self.parse_integer()
            self.expect(")")
            return ("integer", value)
        if name == "Rational":
            self.expect("(")
            numerator = self.parse_integer()
            self.expect(",")
            denominator = self.parse_integer()
            self.expect(")")
            if denominator < 2:
                raise self.fail("Rational denominator must be 2 or more", start)
            return ("rational", (numerator, denominator))
        if name == "Float":
            return self.parse_float()
        if name not in FUNCTION_ARITY:
            raise self.fail(f"{name!r} is not an allowed function", start)
        return self.parse_call(name, depth, start)

    def parse_call(self, fn: str, depth: int, start: int) -> _Node:
        self.expect("(")
        args = [self.parse_expr(depth + 1)]
        while self.try_consume(","):
            args.append(self.parse_expr(depth + 1))
        self.expect(")")
        lo, hi = FUNCTION_ARITY[fn]
        if len(args) < lo or len(args) > hi:
            raise self.fail(f"{fn} takes {lo}..{hi} arguments, got {len(args)}", start)
        if fn == "IsNonOverlappingAndDenseIndicator" and len(args) % 2 != 0:
            raise self.fail(f"{fn} takes sizes and strides in pairs", start)
        if fn == "Pow" and not _is_small_literal(args[1]):
            raise self.fail("Pow exponent must be an Integer or Rational within +-64", start)
        if fn == "PowByNatural" and args[1][0] in ("integer", "rational") and not _is_small_literal(args[1]):
            raise self.fail("PowByNatural literal exponent must be within +-64", start)
        return ("call", (fn, args))

    def parse_symbol(self) -> _Node:
        self.expect("(")
        name_start = self.pos
        name = self.parse_string()
        if len(name) > _MAX_SYMBOL_NAME or not SYMBOL_NAME.match(name):
            raise self.fail(f"symbol name {name!r} is not allowed", name_start)
        seen: set[str] = set()
        while self.try_consume(","):
            self.skip_spaces()
            key_start = self.pos
            key = self.parse_identifier()
            if key not in SYMBOL_ASSUMPTIONS:
                raise self.fail(f"{key!r} is not an allowed Symbol assumption", key_start)
            if key in seen:
                raise self.fail(f"Symbol assumption {key!r} given twice", key_start)
            seen.add(key)
            self.expect("=")
            self.skip_spaces()
            value_start = self.pos
            if self.parse_identifier() not in ("True", "False"):
                raise self.fail("Symbol assumptions must be True or False", value_start)
        self.expect(")")
        return ("symbol", name)

    def parse_float(self) -> _Node:
        self.expect("(")
        literal_start = self.pos
        literal = self.parse_string()
        if not _FLOAT_LITERAL.match(literal):
            raise self.fail("Float literal must be a decimal number", literal_start)
        self.expect(",")
        self.skip_spaces()
        key_start = self.pos
        if self.parse_identifier() != "precision":
            raise self.fail("expected 'precision='", key_start)
        self.expect("=")
        precision_start = self.pos
        precision = self.parse_integer()
        if precision < 1 or precision > _MAX_FLOAT_PRECISION:
            raise self.fail(f"Float precision must be 1 to {_MAX_FLOAT_PRECISION}", precision_start)
        self.expect(")")
        return ("float", literal)

    def parse_identifier(self) -> str:
        start = self.pos
        while self.pos < len(self.src) and (
            self.src[self.pos] in _LETTERS or (self.pos != start and self.src[self.pos] in _DIGITS)
        ):
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a name")
        return self.src[start : self.pos]

    def parse_integer(self) -> int:
        self.skip_spaces()
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits_start = self.pos
        while self.pos < len(self.src) and self.src[self.pos] in _DIGITS:
            self.pos += 1
        digits = self.pos - digits_start
        if digits == 0:
            raise self.fail("expected an integer", start)
        if digits > _MAX_INT_DIGITS:
            raise self.fail("integer literal is too long", start)
        if digits > 1 and self.src[digits_start] == "0":
            raise self.fail("integer literal has leading zeros", start)
        value = int(self.src[start : self.pos])
        if abs(value) > _MAX_INT_LITERAL:
            raise self.fail("integer literal is outside +-2^63", start)
        return value

    def parse_string(self) -> str:
        self.skip_spaces()
        start = self.pos
        if self.peek() != "'":
            raise self.fail("expected a quoted string")
        self.pos += 1
        content_start = self.pos
        while self.pos < len(self.src) and self.src[self.pos] != "'":
            if self.src[self.pos] not in _STRING_CHARS:
                raise self.fail("character not allowed in a string")
            if self.pos - content_start >= _MAX_STRING_LITERAL:
                raise self.fail("string literal is too long", start)
            self.pos += 1
        if self.pos >= len(self.src):
            raise self.fail("unterminated string", start)
        content = self.src[content_start : self.pos]
        self.pos += 1
        return content

    def skip_spaces(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos] == " ":
            self.pos += 1

    def try_consume(self, char: str) -> bool:
        self.skip_spaces()
        if self.peek() != char:
            return False
        self.pos += 1
        return True

    def expect(self, char: str) -> None:
        if not self.try_consume(char):
            raise self.fail(f"expected {char!r}")


def _is_small_literal(node: _Node) -> bool:
    kind, value = node
    if kind == "integer":
        return abs(value) <= _MAX_LITERAL_EXPONENT  # type: ignore[arg-type]
    if kind == "rational":
        p, q = value  # type: ignore[misc]
        return abs(p) <= _MAX_LITERAL_EXPONENT and abs(q) <= _MAX_LITERAL_EXPONENT
    return False


def _js_length(text: str) -> int:
    """Length in UTF-16 code units, as the TypeScript side counts it (astral characters count twice)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def check_shape_expr(text: str, max_length: int = MAX_EXPR_LENGTH, max_depth: int = MAX_EXPR_DEPTH) -> None:
    """Raises ExprGrammarError unless `text` is a shape expression of the grammar."""
    if not isinstance(text, str):
        raise ExprGrammarError(f"shape expression must be a string, got {type(text).__name__}", 0)
    if _js_length(text) > max_length:
        raise ExprGrammarError(f"expression longer than {max_length} characters", 0)
    _ShapeParser(text, max_depth).parse_all()


# --------------------------------------------------------------------------------------------------------------
# Guards

GUARD_CALLS: Final = frozenset({"max", "min", "abs", "math.floor", "math.ceil", "math.trunc"})
_INPUT_METHODS: Final = frozenset({"size", "stride", "storage_offset"})
_MAX_EXPONENT = 64
_OPERATORS: Final = ("**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "%", "(", ")", "[", "]", ",", ".")
_GUARD_STRING: Final = re.compile(r"'([A-Za-z_][A-Za-z0-9_]{0,127})'")

# (kind, text, position)
_Token = tuple[str, str, int]


def _tokenize(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(src):
        c = src[i]
        if c == " ":
            i += 1
            continue
        if c in _DIGITS:
            j = i
            while j < len(src) and src[j] in _DIGITS:
                j += 1
            if j - i > _MAX_INT_DIGITS:
                raise ExprGrammarError(f"an integer of more than {_MAX_INT_DIGITS} digits", i)
            if j - i > 1 and c == "0":
                # `01` is a syntax error in Python 3: not what torch prints, and exec() would fail on it.
                raise ExprGrammarError("an integer with a leading zero", i)
            tokens.append(("int", src[i:j], i))
            i = j
            continue
        if c in _LETTERS:
            j = i
            while j < len(src) and src[j] in _IDENT_CHARS:
                j += 1
            tokens.append(("name", src[i:j], i))
            i = j
            continue
        if c == "'":
            m = _GUARD_STRING.match(src[i : i + 131])
            if not m:
                raise ExprGrammarError("a string that is not a plain identifier in single quotes", i)
            tokens.append(("string", m.group(1), i))
            i += len(m.group(0))
            continue
        op = next((o for o in _OPERATORS if src.startswith(o, i)), None)
        if op is None:
            raise ExprGrammarError(f"the character {c!r}", i)
        tokens.append(("op", op, i))
        i += len(op)
    tokens.append(("end", "", len(src)))
    return tokens


class _GuardParser:
    def __init__(self, tokens: list[_Token], max_depth: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def is_op(self, text: str) -> bool:
        kind, value, _ = self.peek()
        return kind == "op" and value == text

    def is_name(self, text: str) -> bool:
        kind, value, _ = self.peek()
        return kind == "name" and value == text

    def fail(self, where: str) -> ExprGrammarError:
        kind, value, at = self.peek()
        what = "the end" if kind == "end" else repr(value)
        return ExprGrammarError(f"{what} {where}", at)

    def expect_op(self, text: str) -> None:
        if not self.is_op(text):
            raise self.fail(f"where {text!r} was expected")
        self.pos += 1

    def expect_int(self) -> str:
        kind, value, _ = self.peek()
        if kind != "int":
            raise self.fail("where an integer was expected")
        self.pos += 1
        return value

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.fail(f"nested more than {self.max_depth} deep")

    def parse_all(self) -> None:
        self.guard()
        if self.peek()[0] != "end":
            raise self.fail("after a complete expression")

    def guard(self) -> None:
        self.enter()
        try:
            self.and_()
            while self.is_name("or"):
                self.pos += 1
                self.and_()
        finally:
            self.depth -= 1

    def and_(self) -> None:
        self.not_()
        while self.is_name("and"):
            self.pos += 1
            self.not_()

    def not_(self) -> None:
        if self.is_name("not"):
            self.pos += 1
            self.enter()
            try:
                self.not_()
            finally:
                self.depth -= 1
            return
        self.sum()
        while any(self.is_op(o) for o in ("==", "!=", "<", "<=", ">", ">=")):
            self.pos += 1
            self.sum()

    def sum(self) -> None:
        self.product()
        while self.is_op("+") or self.is_op("-"):
            self.pos += 1
            self.product()

    def product(self) -> None:
        self.unary()
        while self.is_op("*") or self.is_op("//") or self.is_op("%"):
            self.pos += 1
            self.unary()

    def unary(self) -> None:
        if self.is_op("-") or self.is_op("+"):
            self.pos += 1
            self.enter()
            try:
                self.unary()
            finally:
                self.depth -= 1
            return
        self.atom()
        if self.is_op("**"):
            self.pos += 1
            at = self.peek()[2]
            if int(self.expect_int()) > _MAX_EXPONENT:
                raise ExprGrammarError(f"an exponent above {_MAX_EXPONENT}", at)

    def atom(self) -> None:
        kind, value, _ = self.peek()
        if kind == "int":
            self.pos += 1
            return
        if self.is_op("("):
            self.pos += 1
            self.guard()
            self.expect_op(")")
            return
        if kind != "name":
            raise self.fail("where a value was expected")
        if value in ("True", "False"):
            self.pos += 1
            return
        if value == "L":
            self.input()
            return
        self.call()

    def input(self) -> None:
        self.pos += 1  # L
        keys = 0
        while self.is_op("["):
            self.pos += 1
            kind = self.peek()[0]
            if kind not in ("string", "int"):
                raise self.fail("where an input key ('name' or an index) was expected")
            self.pos += 1
            self.expect_op("]")
            keys += 1
        if keys == 0:
            raise self.fail("after L, where ['<input name>'] was expected")
        if not self.is_op("."):
            return
        self.pos += 1
        kind, method, _ = self.peek()
        if kind != "name" or method not in _INPUT_METHODS:
            raise self.fail("after an input, where size, stride or storage_offset was expected")
        self.pos += 1
        self.expect_op("(")
        self.expect_op(")")
        if method != "storage_offset":
            self.expect_op("[")
            self.expect_int()
            self.expect_op("]")

    def call(self) -> None:
        start = self.pos
        name = self.peek()[1]
        self.pos += 1
        if name == "math" and self.is_op("."):
            self.pos += 1
            kind, member, _ = self.peek()
            if kind != "name":
                raise self.fail("after 'math.'")
            self.pos += 1
            name = f"math.{member}"
        if name not in GUARD_CALLS:
            self.pos = start
            raise self.fail(f"is not a name a guard may use (L, True, False, {', '.join(sorted(GUARD_CALLS))})")
        self.expect_op("(")
        self.guard()
        while self.is_op(","):
            self.pos += 1
            self.guard()
        self.expect_op(")")


def check_guard(code: str, max_length: int = MAX_EXPR_LENGTH, max_depth: int = MAX_EXPR_DEPTH) -> None:
    """Raises ExprGrammarError unless `code` is a guard of the grammar."""
    if not isinstance(code, str):
        raise ExprGrammarError(f"a guard must be a string, got {type(code).__name__}", 0)
    if _js_length(code) > max_length:
        raise ExprGrammarError(f"a guard longer than {max_length} characters", 0)
    _GuardParser(_tokenize(code), max_depth).parse_all()


# --------------------------------------------------------------------------------------------------------------
# Applied to a program, as the TypeScript validator does (libs/pt2/src/program.ts, payload-config.ts).

MAX_GUARDS: Final = 1024
# A derived Dim's key in range_constraints, as str() prints it: symbols, integers, + - * and //.
_DERIVED_DIM_KEY: Final = re.compile(r"[a-z0-9_]+( ?([+\-*]|//) ?[a-z0-9_]+)+\Z")


def program_expression_problems(document: object, *, is_program: bool) -> list[str]:
    """Every place in a parsed program JSON (or payload config) where text torch evaluates leaves the grammars.

    Walks the whole tree without recursion: every `expr_str` (torch sympifies them wherever they sit), and for
    a program also `guards_code` and the keys of `range_constraints`. Returns human-readable problems (empty
    when all is well); the caller decides how to fail.
    """
    problems: list[str] = []
    stack: list[tuple[object, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else str(key)
                if key == "expr_str":
                    try:
                        check_shape_expr(child)  # type: ignore[arg-type]
                    except ExprGrammarError as exc:
                        problems.append(f"{child_path}: shape expression outside the grammar ({exc})")
                stack.append((child, child_path))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(value))
    if is_program and isinstance(document, dict):
        guards = document.get("guards_code") or []
        if not isinstance(guards, list) or len(guards) > MAX_GUARDS:
            problems.append(f"guards_code: must be a list of at most {MAX_GUARDS} guards")
        else:
            for i, guard in enumerate(guards):
                try:
                    check_guard(guard)
                except ExprGrammarError as exc:
                    problems.append(f"guards_code[{i}]: guard outside the grammar ({exc})")
        ranges = document.get("range_constraints") or {}
        for key in ranges if isinstance(ranges, dict) else []:
            if len(key) > 256 or not (SYMBOL_NAME.match(key) or _DERIVED_DIM_KEY.match(key)):
                problems.append(f"range_constraints: key {key[:60]!r} is neither a symbol nor a derived dim")
    return problems
