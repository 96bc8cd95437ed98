import { ErrorCode } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';

/**
 * A strict parser for the shape expressions in a `.pt2` (`expr_str`), which torch writes with sympy's
 * `srepr`, e.g. `Add(Mul(Integer(2), Symbol('s77', positive=True, integer=True)), Integer(1))`.
 *
 * Why it exists: torch.export.load hands these strings to `sympy.sympify`, which `eval`s them with
 * Python builtins in scope, so `__import__('os').system(...)` in an upload runs at load time. This
 * parser accepts only the srepr shapes torch itself emits and never evaluates anything: no attribute
 * access, no strings except a Symbol's name and a Float's digits, no calls except the functions below.
 * Input is bounded in length and nesting depth, and parsing is a single linear pass.
 *
 * The function set is torch 2.13's `GraphModuleDeserializer.sympy_functions` (the torch.utils._sympy
 * functions it registers) plus the sympy classes whose srepr appears in exported programs: arithmetic
 * (Add, Mul, Pow, Max, Min), relations and boolean connectives (for SymBool values from runtime
 * asserts). sympy's short aliases (Eq, Lt, ...) are not accepted because srepr never prints them.
 */

/** Arity of each accepted function: [min, max] argument count. */
const FUNCTION_ARITY = {
  // sympy core
  Add: [2, Infinity],
  Mul: [2, Infinity],
  Pow: [2, 2],
  Max: [2, Infinity],
  Min: [2, Infinity],
  Equality: [2, 2],
  Unequality: [2, 2],
  StrictLessThan: [2, 2],
  LessThan: [2, 2],
  StrictGreaterThan: [2, 2],
  GreaterThan: [2, 2],
  And: [2, Infinity],
  Or: [2, Infinity],
  Not: [1, 1],
  // torch.utils._sympy.functions, as registered by the deserializer
  FloorDiv: [2, 2],
  ModularIndexing: [3, 3],
  Where: [3, 3],
  PythonMod: [2, 2],
  Mod: [2, 2],
  CleanDiv: [2, 2],
  CeilToInt: [1, 1],
  FloorToInt: [1, 1],
  CeilDiv: [2, 2],
  LShift: [2, 2],
  RShift: [2, 2],
  PowByNatural: [2, 2],
  FloatPow: [2, 2],
  FloatTrueDiv: [2, 2],
  IntTrueDiv: [2, 2],
  IsNonOverlappingAndDenseIndicator: [2, Infinity],
  TruncToFloat: [1, 1],
  TruncToInt: [1, 1],
  RoundToInt: [1, 1],
  RoundDecimal: [2, 2],
  ToFloat: [1, 1],
  Identity: [1, 1],
} as const satisfies Record<string, readonly [number, number]>;

export type ExprFunctionName = keyof typeof FUNCTION_ARITY;
export const EXPR_FUNCTION_NAMES = Object.freeze(Object.keys(FUNCTION_ARITY) as ExprFunctionName[]);

/** Symbol assumptions export writes (`positive=True, integer=True` for sizes, `integer=True` for unbacked). */
const SYMBOL_ASSUMPTIONS = ['positive', 'integer', 'nonnegative', 'real'] as const;
export type SymbolAssumption = (typeof SYMBOL_ASSUMPTIONS)[number];

/** Export names symbols `s77`, `u0`, `zf0`, ...; user `Dim` names are never stored. */
export const SYMBOL_NAME = /^[a-z][a-z0-9_]*$/;
const MAX_SYMBOL_NAME_LENGTH = 64;

/**
 * Integer literals are bounded to the int64 range (shapes are int64 in torch), and literal exponents
 * to ±64: sympy evaluates `Pow(Integer(10), Integer(10**12))` eagerly when torch parses it, so an
 * unbounded exponent is a memory bomb even though it is not code.
 */
const MAX_INT_LITERAL = 2n ** 63n;
const MAX_LITERAL_EXPONENT = 64n;
const MAX_INT_DIGITS = 20;
const MAX_FLOAT_PRECISION = 1024;
const FLOAT_LITERAL = /^-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$/;
const MAX_STRING_LITERAL = 128;

export type ExprNode =
  | { readonly type: 'symbol'; readonly name: string; readonly assumptions: Partial<Record<SymbolAssumption, boolean>> }
  | { readonly type: 'integer'; readonly value: bigint }
  | { readonly type: 'rational'; readonly numerator: bigint; readonly denominator: bigint }
  | { readonly type: 'float'; readonly literal: string; readonly precision: number }
  | { readonly type: 'boolean'; readonly value: boolean }
  | { readonly type: 'call'; readonly fn: ExprFunctionName; readonly args: readonly ExprNode[] };

export interface ParsedExpr {
  readonly node: ExprNode;
  /** Human form, e.g. `2*s77 + 1`; for display only, never fed back to anything. */
  readonly text: string;
  /** Distinct symbol names the expression uses, sorted. */
  readonly symbols: readonly string[];
}

export interface ShapeExprLimits {
  maxLength: number;
  maxDepth: number;
}

const DEFAULT_EXPR_LIMITS: ShapeExprLimits = { maxLength: 16_384, maxDepth: 64 };

/**
 * Parses one `expr_str`. Throws KilnError(PT2_BAD_SHAPE_EXPR) for anything outside the grammar, and
 * nothing else, whatever the input.
 */
export function parseShapeExpr(exprStr: string, limits: ShapeExprLimits = DEFAULT_EXPR_LIMITS): ParsedExpr {
  if (typeof exprStr !== 'string') {
    throw pt2Error(ErrorCode.PT2_BAD_SHAPE_EXPR, `shape expression must be a string, got ${typeof exprStr}`);
  }
  if (exprStr.length > limits.maxLength) {
    throw pt2Error(
      ErrorCode.PT2_BAD_SHAPE_EXPR,
      `shape expression is ${exprStr.length} characters long, more than the limit of ${limits.maxLength}`,
      { expr: excerpt(exprStr) },
    );
  }
  const node = new ExprParser(exprStr, limits.maxDepth).parseAll();
  const symbols = new Set<string>();
  collectSymbols(node, symbols);
  return { node, text: renderExpr(node), symbols: [...symbols].sort() };
}

class ExprParser {
  private pos = 0;

  constructor(
    private readonly src: string,
    private readonly maxDepth: number,
  ) {}

  parseAll(): ExprNode {
    if (this.src.length === 0) this.fail('empty expression');
    const node = this.parseExpr(1);
    this.skipSpaces();
    if (this.pos !== this.src.length) this.fail('unexpected text after the expression');
    return node;
  }

  private parseExpr(depth: number): ExprNode {
    if (depth > this.maxDepth) this.fail(`nested deeper than ${this.maxDepth} levels`);
    this.skipSpaces();
    const start = this.pos;
    const name = this.parseIdentifier();
    switch (name) {
      case 'true':
      case 'false':
        return { type: 'boolean', value: name === 'true' };
      case 'Symbol':
        return this.parseSymbol();
      case 'Integer': {
        this.expect('(');
        const value = this.parseInteger();
        this.expect(')');
        return { type: 'integer', value };
      }
      case 'Rational': {
        this.expect('(');
        const numerator = this.parseInteger();
        this.expect(',');
        const denominator = this.parseInteger();
        this.expect(')');
        // srepr prints Integer for whole numbers, so a canonical Rational has a denominator of 2 or more.
        if (denominator < 2n) this.fail('Rational denominator must be 2 or more', start);
        return { type: 'rational', numerator, denominator };
      }
      case 'Float':
        return this.parseFloat();
      default:
        if (!Object.hasOwn(FUNCTION_ARITY, name)) {
          this.fail(`'${excerpt(name, 40)}' is not an allowed function`, start);
        }
        return this.parseCall(name as ExprFunctionName, depth, start);
    }
  }

  private parseCall(fn: ExprFunctionName, depth: number, start: number): ExprNode {
    this.expect('(');
    const args: ExprNode[] = [this.parseExpr(depth + 1)];
    while (this.tryConsume(',')) args.push(this.parseExpr(depth + 1));
    this.expect(')');
    const [min, max] = FUNCTION_ARITY[fn];
    if (args.length < min || args.length > max) {
      const wanted = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      this.fail(`${fn} takes ${wanted} arguments, got ${args.length}`, start);
    }
    if (fn === 'IsNonOverlappingAndDenseIndicator' && args.length % 2 !== 0) {
      this.fail(`${fn} takes sizes and strides in pairs`, start);
    }
    if (fn === 'Pow') {
      // Export's polynomial terms and square roots have literal exponents; anything else is refused.
      if (!isSmallLiteral(args[1])) this.fail('Pow exponent must be an Integer or Rational within ±64', start);
    }
    if (fn === 'PowByNatural' && (args[1].type === 'integer' || args[1].type === 'rational')) {
      if (!isSmallLiteral(args[1])) this.fail('PowByNatural literal exponent must be within ±64', start);
    }
    return { type: 'call', fn, args };
  }

  private parseSymbol(): ExprNode {
    this.expect('(');
    const nameStart = this.pos;
    const name = this.parseString();
    if (name.length > MAX_SYMBOL_NAME_LENGTH || !SYMBOL_NAME.test(name)) {
      this.fail(`symbol name '${excerpt(name, 40)}' must match ${SYMBOL_NAME.source}`, nameStart);
    }
    const assumptions: Partial<Record<SymbolAssumption, boolean>> = {};
    while (this.tryConsume(',')) {
      this.skipSpaces();
      const keyStart = this.pos;
      const key = this.parseIdentifier();
      if (!(SYMBOL_ASSUMPTIONS as readonly string[]).includes(key)) {
        this.fail(`'${excerpt(key, 40)}' is not an allowed Symbol assumption`, keyStart);
      }
      if (Object.hasOwn(assumptions, key)) this.fail(`Symbol assumption '${key}' given twice`, keyStart);
      this.expect('=');
      this.skipSpaces();
      const valueStart = this.pos;
      const value = this.parseIdentifier();
      if (value !== 'True' && value !== 'False') this.fail('Symbol assumptions must be True or False', valueStart);
      assumptions[key as SymbolAssumption] = value === 'True';
    }
    this.expect(')');
    return { type: 'symbol', name, assumptions };
  }

  private parseFloat(): ExprNode {
    this.expect('(');
    const literalStart = this.pos;
    const literal = this.parseString();
    if (!FLOAT_LITERAL.test(literal)) this.fail('Float literal must be a decimal number', literalStart);
    this.expect(',');
    this.skipSpaces();
    const keyStart = this.pos;
    if (this.parseIdentifier() !== 'precision') this.fail("expected 'precision='", keyStart);
    this.expect('=');
    const precisionStart = this.pos;
    const precision = this.parseInteger();
    // mpmath allocates by precision, so an absurd precision is a memory bomb at load time.
    if (precision < 1n || precision > BigInt(MAX_FLOAT_PRECISION)) {
      this.fail(`Float precision must be 1 to ${MAX_FLOAT_PRECISION}`, precisionStart);
    }
    this.expect(')');
    return { type: 'float', literal, precision: Number(precision) };
  }

  private parseIdentifier(): string {
    const start = this.pos;
    while (this.pos < this.src.length && isIdentChar(this.src.charCodeAt(this.pos), this.pos === start)) this.pos++;
    if (this.pos === start) this.fail('expected a name');
    return this.src.slice(start, this.pos);
  }

  private parseInteger(): bigint {
    this.skipSpaces();
    const start = this.pos;
    if (this.src[this.pos] === '-') this.pos++;
    const digitsStart = this.pos;
    while (this.pos < this.src.length && isDigit(this.src.charCodeAt(this.pos))) this.pos++;
    const digits = this.pos - digitsStart;
    if (digits === 0) this.fail('expected an integer', start);
    if (digits > MAX_INT_DIGITS) this.fail('integer literal is too long', start);
    if (digits > 1 && this.src[digitsStart] === '0') this.fail('integer literal has leading zeros', start);
    const value = BigInt(this.src.slice(start, this.pos));
    if (value > MAX_INT_LITERAL || value < -MAX_INT_LITERAL) this.fail('integer literal is outside ±2^63', start);
    return value;
  }

  /** A single-quoted string without escapes, limited to the characters symbol names and numbers use. */
  private parseString(): string {
    this.skipSpaces();
    const start = this.pos;
    if (this.src[this.pos] !== "'") this.fail('expected a quoted string');
    this.pos++;
    const contentStart = this.pos;
    while (this.pos < this.src.length && this.src[this.pos] !== "'") {
      if (!isStringChar(this.src.charCodeAt(this.pos))) this.fail('character not allowed in a string');
      if (this.pos - contentStart >= MAX_STRING_LITERAL) this.fail('string literal is too long', start);
      this.pos++;
    }
    if (this.pos >= this.src.length) this.fail('unterminated string', start);
    const content = this.src.slice(contentStart, this.pos);
    this.pos++;
    return content;
  }

  private skipSpaces(): void {
    while (this.src[this.pos] === ' ') this.pos++;
  }

  private tryConsume(char: string): boolean {
    this.skipSpaces();
    if (this.src[this.pos] !== char) return false;
    this.pos++;
    return true;
  }

  private expect(char: string): void {
    if (!this.tryConsume(char)) this.fail(`expected '${char}'`);
  }

  private fail(reason: string, at = this.pos): never {
    throw pt2Error(
      ErrorCode.PT2_BAD_SHAPE_EXPR,
      `invalid shape expression (${reason} at position ${at}): ${excerpt(this.src)}`,
      {
        expr: excerpt(this.src, 400),
        position: at,
        reason,
      },
    );
  }
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isIdentChar(code: number, first: boolean): boolean {
  const letter = (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95;
  return letter || (!first && isDigit(code));
}

function isStringChar(code: number): boolean {
  // [A-Za-z0-9_.+-]: enough for symbol names and decimal literals, nothing that can escape or nest.
  return isIdentChar(code, false) || code === 46 || code === 43 || code === 45;
}

function isSmallLiteral(node: ExprNode): boolean {
  const within = (n: bigint) => n <= MAX_LITERAL_EXPONENT && n >= -MAX_LITERAL_EXPONENT;
  if (node.type === 'integer') return within(node.value);
  if (node.type === 'rational') return within(node.numerator) && within(node.denominator);
  return false;
}

function collectSymbols(node: ExprNode, into: Set<string>): void {
  if (node.type === 'symbol') into.add(node.name);
  else if (node.type === 'call') for (const arg of node.args) collectSymbols(arg, into);
}

// ---------------------------------------------------------------------------------------------------
// Rendering: a readable, Python-like form for people (`2*s77 + 1`, `(s77 + 1)//2`, `Max(1, s27)`).

const Prec = { Or: 1, And: 2, Not: 3, Rel: 4, Add: 5, Mul: 6, Neg: 7, Pow: 8, Atom: 9 } as const;
type Prec = number;

interface Rendered {
  text: string;
  prec: Prec;
}

/** Renders a parsed expression; exported for tests and for callers that keep ExprNode trees. */
export function renderExpr(node: ExprNode): string {
  return render(node).text;
}

function render(node: ExprNode): Rendered {
  switch (node.type) {
    case 'symbol':
      return { text: node.name, prec: Prec.Atom };
    case 'integer':
      return { text: node.value.toString(), prec: node.value < 0n ? Prec.Neg : Prec.Atom };
    case 'rational':
      return { text: `${node.numerator}/${node.denominator}`, prec: node.numerator < 0n ? Prec.Neg : Prec.Mul };
    case 'float':
      return { text: node.literal, prec: node.literal.startsWith('-') ? Prec.Neg : Prec.Atom };
    case 'boolean':
      return { text: node.value ? 'True' : 'False', prec: Prec.Atom };
    case 'call':
      return CALL_RENDERERS[node.fn](node.args, node.fn);
  }
}

function wrap(r: Rendered, minPrec: Prec): string {
  return r.prec < minPrec ? `(${r.text})` : r.text;
}

type CallRenderer = (args: readonly ExprNode[], fn: ExprFunctionName) => Rendered;

const asFunction: CallRenderer = (args, fn) => ({
  text: `${fn}(${args.map((a) => render(a).text).join(', ')})`,
  prec: Prec.Atom,
});
const relation =
  (op: string): CallRenderer =>
  (args) => ({ text: `${wrap(render(args[0]), Prec.Add)} ${op} ${wrap(render(args[1]), Prec.Add)}`, prec: Prec.Rel });
const connective =
  (word: string, prec: Prec): CallRenderer =>
  (args) => ({ text: args.map((a) => wrap(render(a), prec + 1)).join(` ${word} `), prec });
const infix =
  (op: string): CallRenderer =>
  (args) =>
    binary(args, op, Prec.Mul);
const power: CallRenderer = (args) => renderPow(args[0], args[1]);

/** One entry per allowed function, so adding a function to the grammar forces a decision here. */
const CALL_RENDERERS: Record<ExprFunctionName, CallRenderer> = {
  Add: (args) => renderAdd(args),
  Mul: (args) => renderMul(args),
  Pow: power,
  PowByNatural: power,
  FloatPow: power,
  Max: asFunction,
  Min: asFunction,
  Equality: relation('=='),
  Unequality: relation('!='),
  StrictLessThan: relation('<'),
  LessThan: relation('<='),
  StrictGreaterThan: relation('>'),
  GreaterThan: relation('>='),
  And: connective('and', Prec.And),
  Or: connective('or', Prec.Or),
  Not: (args) => ({ text: `not ${wrap(render(args[0]), Prec.Not)}`, prec: Prec.Not }),
  FloorDiv: infix('//'),
  CleanDiv: infix('/'),
  IntTrueDiv: infix('/'),
  FloatTrueDiv: infix('/'),
  Mod: infix('%'),
  PythonMod: infix('%'),
  ModularIndexing: asFunction,
  Where: asFunction,
  CeilToInt: asFunction,
  FloorToInt: asFunction,
  CeilDiv: asFunction,
  LShift: asFunction,
  RShift: asFunction,
  IsNonOverlappingAndDenseIndicator: asFunction,
  TruncToFloat: asFunction,
  TruncToInt: asFunction,
  RoundToInt: asFunction,
  RoundDecimal: asFunction,
  ToFloat: asFunction,
  Identity: asFunction,
};

function binary(args: readonly ExprNode[], op: string, prec: Prec): Rendered {
  // Left-associative: the right operand needs parentheses at equal precedence.
  return { text: `${wrap(render(args[0]), prec)}${op}${wrap(render(args[1]), prec + 1)}`, prec };
}

/** A term of a sum, split into sign and magnitude so `Add(s, Integer(-1))` reads `s - 1`. */
function splitSign(node: ExprNode): { negative: boolean; magnitude: ExprNode } {
  if (node.type === 'integer' && node.value < 0n)
    return { negative: true, magnitude: { type: 'integer', value: -node.value } };
  if (node.type === 'rational' && node.numerator < 0n) {
    return { negative: true, magnitude: { ...node, numerator: -node.numerator } };
  }
  if (node.type === 'float' && node.literal.startsWith('-')) {
    return { negative: true, magnitude: { ...node, literal: node.literal.slice(1) } };
  }
  if (node.type === 'call' && node.fn === 'Mul') {
    const first = splitSign(node.args[0]);
    if (first.negative && (node.args[0].type !== 'call' || node.args[0].fn !== 'Mul')) {
      const rest = node.args.slice(1);
      const isOne = first.magnitude.type === 'integer' && first.magnitude.value === 1n;
      const factors = isOne ? rest : [first.magnitude, ...rest];
      return {
        negative: true,
        magnitude: factors.length === 1 ? factors[0] : { type: 'call', fn: 'Mul', args: factors },
      };
    }
  }
  return { negative: false, magnitude: node };
}

function renderAdd(args: readonly ExprNode[]): Rendered {
  let text = '';
  args.forEach((arg, i) => {
    if (i === 0) {
      text = wrap(render(arg), Prec.Add);
      return;
    }
    const { negative, magnitude } = splitSign(arg);
    text += negative ? ` - ${wrap(render(magnitude), Prec.Mul)}` : ` + ${wrap(render(arg), Prec.Add)}`;
  });
  return { text, prec: Prec.Add };
}

function renderMul(args: readonly ExprNode[]): Rendered {
  let negative = false;
  const numerator: string[] = [];
  const denominator: Rendered[] = [];
  for (const arg of args) {
    if (arg.type === 'integer' && arg.value < 0n) {
      negative = !negative;
      if (arg.value !== -1n) numerator.push((-arg.value).toString());
    } else if (arg.type === 'rational') {
      if (arg.numerator < 0n) negative = !negative;
      const p = arg.numerator < 0n ? -arg.numerator : arg.numerator;
      if (p !== 1n) numerator.push(p.toString());
      denominator.push({ text: arg.denominator.toString(), prec: Prec.Atom });
    } else if (arg.type === 'call' && arg.fn === 'Pow' && arg.args[1].type === 'integer' && arg.args[1].value < 0n) {
      const exponent = -arg.args[1].value;
      denominator.push(
        exponent === 1n ? render(arg.args[0]) : renderPow(arg.args[0], { type: 'integer', value: exponent }),
      );
    } else {
      numerator.push(wrap(render(arg), Prec.Mul));
    }
  }
  let text = numerator.length > 0 ? numerator.join('*') : '1';
  if (denominator.length === 1) text += `/${wrap(denominator[0], Prec.Pow)}`;
  else if (denominator.length > 1) text += `/(${denominator.map((d) => wrap(d, Prec.Mul)).join('*')})`;
  return negative ? { text: `-${text}`, prec: Prec.Neg } : { text, prec: Prec.Mul };
}

function renderPow(base: ExprNode, exponent: ExprNode): Rendered {
  if (exponent.type === 'integer' && exponent.value === -1n) {
    return { text: `1/${wrap(render(base), Prec.Pow)}`, prec: Prec.Mul };
  }
  return { text: `${wrap(render(base), Prec.Atom)}**${wrap(render(exponent), Prec.Atom)}`, prec: Prec.Pow };
}
