import { ErrorCode } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';

/**
 * A strict grammar for the entries of a program's `guards_code`: Python source that torch pastes into a
 * function and exec()s when `ExportedProgram.module()` runs (torch/export/_unlift.py,
 * `_convert_guards_code_to_fn`), on a build worker and on every device that runs the portable graph. Export
 * writes them when input sizes are related, e.g. `(2*L['x'].size()[0]) == L['y'].size()[0]` for a derived
 * `Dim`; they are sympy guards printed by torch's `ShapeGuardPythonPrinter`.
 *
 * Accepted, and nothing else (this never evaluates anything):
 *   guard      := or
 *   or         := and ('or' and)*          and := not ('and' not)*          not := 'not' not | comparison
 *   comparison := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)*
 *   sum        := product (('+' | '-') product)*
 *   product    := unary (('*' | '//' | '%') unary)*
 *   unary      := ('-' | '+') unary | power
 *   power      := atom ('**' INT)?            (a literal exponent of at most 64: `2**10**10` would hang a load)
 *   atom       := INT | 'True' | 'False' | input | call | '(' guard ')'
 *   input      := 'L' ('[' NAME_STRING ']' | '[' INT ']')+ ('.size()[' INT ']' | '.stride()[' INT ']' | '.storage_offset()')?
 *   call       := ('max' | 'min' | 'abs' | 'math.floor' | 'math.ceil' | 'math.trunc') '(' guard (',' guard)* ')'
 * where NAME_STRING is a single-quoted identifier (`'x'`, `'kwargs'`) and INT a decimal integer of at most 20
 * digits. No other names, attributes, strings, subscripts or calls: `__import__`, `L['x'].__class__`, lambdas,
 * comprehensions and f-strings are all outside it. Length and nesting are bounded like shape expressions.
 */

const CALLS = new Set(['max', 'min', 'abs', 'math.floor', 'math.ceil', 'math.trunc']);
const INPUT_METHODS = new Set(['size', 'stride', 'storage_offset']);
const MAX_INT_DIGITS = 20;
const MAX_EXPONENT = 64;

type Token =
  | { kind: 'int'; text: string; at: number }
  | { kind: 'name'; text: string; at: number }
  | { kind: 'string'; text: string; at: number }
  | { kind: 'op'; text: string; at: number }
  | { kind: 'end'; text: ''; at: number };

const OPERATORS = ['**', '//', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '%', '(', ')', '[', ']', ',', '.'];

export interface GuardLimits {
  maxExprLength: number;
  maxExprDepth: number;
}

class GuardSyntaxError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ' ') {
      i++;
      continue;
    }
    if (c >= '0' && c <= '9') {
      let j = i;
      while (j < src.length && src[j] >= '0' && src[j] <= '9') j++;
      if (j - i > MAX_INT_DIGITS) throw new GuardSyntaxError(`an integer of more than ${MAX_INT_DIGITS} digits`, i);
      // `01` is a syntax error in Python 3: not what torch prints, and exec() would fail on it.
      if (j - i > 1 && src[i] === '0') throw new GuardSyntaxError('an integer with a leading zero', i);
      tokens.push({ kind: 'int', text: src.slice(i, j), at: i });
      i = j;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j])) j++;
      tokens.push({ kind: 'name', text: src.slice(i, j), at: i });
      i = j;
      continue;
    }
    if (c === "'") {
      const m = /^'([A-Za-z_][A-Za-z0-9_]{0,127})'/.exec(src.slice(i, i + 131));
      if (!m) throw new GuardSyntaxError('a string that is not a plain identifier in single quotes', i);
      tokens.push({ kind: 'string', text: m[1], at: i });
      i += m[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) throw new GuardSyntaxError(`the character ${JSON.stringify(c)}`, i);
    tokens.push({ kind: 'op', text: op, at: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', text: '', at: src.length });
  return tokens;
}

/** Recursive descent over the tokens; returns nothing, throws GuardSyntaxError at the first token outside the grammar. */
class GuardParser {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly maxDepth: number,
  ) {}

  parseAll(): void {
    this.guard();
    if (this.peek().kind !== 'end') this.fail('after a complete expression');
  }

  private peek(): Token {
    return this.tokens[this.pos];
  }

  private isOp(text: string): boolean {
    const t = this.peek();
    return t.kind === 'op' && t.text === text;
  }

  private isName(text: string): boolean {
    const t = this.peek();
    return t.kind === 'name' && t.text === text;
  }

  private next(): Token {
    return this.tokens[this.pos++];
  }

  private expectOp(text: string): void {
    if (!this.isOp(text)) this.fail(`where '${text}' was expected`);
    this.pos++;
  }

  private expectInt(): string {
    const t = this.peek();
    if (t.kind !== 'int') this.fail('where an integer was expected');
    this.pos++;
    return t.text;
  }

  private fail(where: string): never {
    const t = this.peek();
    const what = t.kind === 'end' ? 'the end' : `'${t.text}'`;
    throw new GuardSyntaxError(`${what} ${where}`, t.at);
  }

  private nested<T>(fn: () => T): T {
    if (++this.depth > this.maxDepth) this.fail(`nested more than ${this.maxDepth} deep`);
    try {
      return fn();
    } finally {
      this.depth--;
    }
  }

  private guard(): void {
    this.nested(() => {
      this.and();
      while (this.isName('or')) {
        this.pos++;
        this.and();
      }
    });
  }

  private and(): void {
    this.not();
    while (this.isName('and')) {
      this.pos++;
      this.not();
    }
  }

  private not(): void {
    if (this.isName('not')) {
      this.pos++;
      this.nested(() => this.not());
      return;
    }
    this.sum();
    while (['==', '!=', '<', '<=', '>', '>='].some((o) => this.isOp(o))) {
      this.pos++;
      this.sum();
    }
  }

  private sum(): void {
    this.product();
    while (this.isOp('+') || this.isOp('-')) {
      this.pos++;
      this.product();
    }
  }

  private product(): void {
    this.unary();
    while (this.isOp('*') || this.isOp('//') || this.isOp('%')) {
      this.pos++;
      this.unary();
    }
  }

  private unary(): void {
    if (this.isOp('-') || this.isOp('+')) {
      this.pos++;
      this.nested(() => this.unary());
      return;
    }
    this.atom();
    if (this.isOp('**')) {
      this.pos++;
      const at = this.peek().at;
      if (Number(this.expectInt()) > MAX_EXPONENT) {
        throw new GuardSyntaxError(`an exponent above ${MAX_EXPONENT}`, at);
      }
    }
  }

  private atom(): void {
    const t = this.peek();
    if (t.kind === 'int') {
      this.pos++;
      return;
    }
    if (this.isOp('(')) {
      this.pos++;
      this.guard();
      this.expectOp(')');
      return;
    }
    if (t.kind !== 'name') this.fail('where a value was expected');
    if (t.text === 'True' || t.text === 'False') {
      this.pos++;
      return;
    }
    if (t.text === 'L') {
      this.input();
      return;
    }
    this.call();
  }

  /** `L['x']`, `L['kwargs']['y'][0]`, then at most one of `.size()[i]`, `.stride()[i]`, `.storage_offset()`. */
  private input(): void {
    this.pos++; // L
    let keys = 0;
    while (this.isOp('[')) {
      this.pos++;
      const key = this.next();
      if (key.kind !== 'string' && key.kind !== 'int') {
        this.pos--;
        this.fail("where an input key ('name' or an index) was expected");
      }
      this.expectOp(']');
      keys++;
    }
    if (keys === 0) this.fail("after L, where ['<input name>'] was expected");
    if (!this.isOp('.')) return;
    this.pos++;
    const method = this.peek();
    if (method.kind !== 'name' || !INPUT_METHODS.has(method.text)) {
      this.fail('after an input, where size, stride or storage_offset was expected');
    }
    this.pos++;
    this.expectOp('(');
    this.expectOp(')');
    if (method.text !== 'storage_offset') {
      this.expectOp('[');
      this.expectInt();
      this.expectOp(']');
    }
  }

  /** `max(a, b)`, `math.floor(x)`, ... */
  private call(): void {
    const start = this.pos;
    let name = this.next().text;
    if (name === 'math' && this.isOp('.')) {
      this.pos++;
      const member = this.peek();
      if (member.kind !== 'name') this.fail("after 'math.'");
      this.pos++;
      name = `math.${member.text}`;
    }
    if (!CALLS.has(name)) {
      this.pos = start;
      this.fail(`is not a name a guard may use (L, True, False, ${[...CALLS].join(', ')})`);
    }
    this.expectOp('(');
    this.guard();
    while (this.isOp(',')) {
      this.pos++;
      this.guard();
    }
    this.expectOp(')');
  }
}

/**
 * Checks one guards_code entry against the grammar above; throws PT2_GUARDS_CODE, naming the position and the
 * token, for anything outside it.
 */
export function checkGuard(code: string, where: string, limits: GuardLimits): void {
  if (code.length > limits.maxExprLength) {
    throw pt2Error(
      ErrorCode.PT2_GUARDS_CODE,
      `${where}: a guard of ${code.length} characters (limit ${limits.maxExprLength})`,
      { guard: excerpt(code, 200) },
    );
  }
  try {
    new GuardParser(tokenize(code), limits.maxExprDepth).parseAll();
  } catch (err) {
    if (!(err instanceof GuardSyntaxError)) throw err;
    throw pt2Error(
      ErrorCode.PT2_GUARDS_CODE,
      `${where}: ${excerpt(code, 120)} is outside the guard grammar Kiln accepts (torch exec()s guards as Python): ${err.message} at character ${err.at}`,
      { guard: excerpt(code, 200), position: err.at },
    );
  }
}
