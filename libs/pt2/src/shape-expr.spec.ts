import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { EXPR_FUNCTION_NAMES, parseShapeExpr, renderExpr, type ExprFunctionName, type ExprNode } from './shape-expr.js';

const S = (name: string) => `Symbol('${name}', positive=True, integer=True)`;
const U = (name: string) => `Symbol('${name}', integer=True)`;

function assertRejected(expr: string, limits?: { maxLength: number; maxDepth: number }): KilnError {
  let caught: unknown;
  try {
    parseShapeExpr(expr, limits);
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof KilnError,
    `expected a KilnError for ${JSON.stringify(expr)}, got ${caught instanceof Error ? caught.message : 'no error'}`,
  );
  assert.equal(caught.code, ErrorCode.PT2_BAD_SHAPE_EXPR);
  return caught;
}

/** What sympy's srepr prints for a node: the inverse of the parser, used by the round-trip property. */
function srepr(node: ExprNode): string {
  switch (node.type) {
    case 'symbol': {
      const kwargs = Object.entries(node.assumptions).map(([k, v]) => `, ${k}=${v ? 'True' : 'False'}`);
      return `Symbol('${node.name}'${kwargs.join('')})`;
    }
    case 'integer':
      return `Integer(${node.value})`;
    case 'rational':
      return `Rational(${node.numerator}, ${node.denominator})`;
    case 'float':
      return `Float('${node.literal}', precision=${node.precision})`;
    case 'boolean':
      return node.value ? 'true' : 'false';
    case 'call':
      return `${node.fn}(${node.args.map(srepr).join(', ')})`;
  }
}

describe('parseShapeExpr: what torch.export writes', () => {
  // Every form below was seen in expr_str of programs exported with torch 2.13 (or printed by
  // sympy.srepr for the torch.utils._sympy functions the deserializer registers).
  const cases: [string, string, string[]][] = [
    [S('s77'), 's77', ['s77']],
    [U('u0'), 'u0', ['u0']],
    [`Mul(Integer(4), ${S('s77')})`, '4*s77', ['s77']],
    [`Mul(Integer(128), ${S('s27')}, ${S('s77')})`, '128*s27*s77', ['s27', 's77']],
    [`Add(Mul(Integer(2), ${U('u0')}), Integer(1))`, '2*u0 + 1', ['u0']],
    [`Add(${S('s17')}, ${S('s77')})`, 's17 + s77', ['s17', 's77']],
    [`Add(${S('s77')}, Integer(3))`, 's77 + 3', ['s77']],
    [`Add(${S('s0')}, Integer(-1))`, 's0 - 1', ['s0']],
    [`Add(${S('s0')}, Mul(Integer(-2), ${S('s1')}))`, 's0 - 2*s1', ['s0', 's1']],
    [`Mul(Integer(-1), ${S('s0')})`, '-s0', ['s0']],
    [`Mul(Rational(1, 2), ${S('s0')})`, 's0/2', ['s0']],
    [`Pow(${S('s0')}, Integer(2))`, 's0**2', ['s0']],
    [`Pow(${S('s0')}, Integer(-1))`, '1/s0', ['s0']],
    [`FloorDiv(${S('s77')}, Integer(2))`, 's77//2', ['s77']],
    [`FloorDiv(Add(${S('s77')}, Integer(1)), Integer(2))`, '(s77 + 1)//2', ['s77']],
    [`Mod(${S('s77')}, Integer(3))`, 's77%3', ['s77']],
    [`PythonMod(${S('s0')}, Integer(4))`, 's0%4', ['s0']],
    [`CeilDiv(${S('s0')}, Integer(3))`, 'CeilDiv(s0, 3)', ['s0']],
    [`Min(Integer(128), Mul(Integer(128), ${S('s77')}))`, 'Min(128, 128*s77)', ['s77']],
    [`Max(${S('s0')}, ${U('u0')})`, 'Max(s0, u0)', ['s0', 'u0']],
    [`GreaterThan(${U('u0')}, Integer(0))`, 'u0 >= 0', ['u0']],
    [`LessThan(${U('u0')}, ${S('s77')})`, 'u0 <= s77', ['s77', 'u0']],
    [`Unequality(${S('s0')}, ${U('u0')})`, 's0 != u0', ['s0', 'u0']],
    [
      `And(StrictGreaterThan(${U('u0')}, Integer(2)), StrictLessThan(${S('s0')}, Integer(3)))`,
      'u0 > 2 and s0 < 3',
      ['s0', 'u0'],
    ],
    [
      `Or(Equality(${S('s0')}, Integer(1)), Not(Equality(${U('u0')}, Integer(2))))`,
      's0 == 1 or not u0 == 2',
      ['s0', 'u0'],
    ],
    ["Mul(Float('2.5', precision=53), Symbol('zf0', real=True))", '2.5*zf0', ['zf0']],
    [`ToFloat(${S('s0')})`, 'ToFloat(s0)', ['s0']],
    [`Where(StrictLessThan(${S('s0')}, Integer(3)), ${S('s0')}, ${U('u0')})`, 'Where(s0 < 3, s0, u0)', ['s0', 'u0']],
    [
      `IsNonOverlappingAndDenseIndicator(${S('s0')}, Integer(1), Integer(3), Integer(1))`,
      'IsNonOverlappingAndDenseIndicator(s0, 1, 3, 1)',
      ['s0'],
    ],
    ['true', 'True', []],
    ['Integer(-5)', '-5', []],
    ['Rational(-3, 4)', '-3/4', []],
    [`Symbol('u1', integer=True, nonnegative=True)`, 'u1', ['u1']],
  ];
  for (const [expr, text, symbols] of cases) {
    it(`parses ${text}`, () => {
      const parsed = parseShapeExpr(expr);
      assert.equal(parsed.text, text);
      assert.deepEqual(parsed.symbols, symbols);
    });
  }

  it('builds the tree with symbol assumptions', () => {
    const parsed = parseShapeExpr(`Add(Mul(Integer(2), ${S('s77')}), Integer(1))`);
    assert.deepEqual(parsed.node, {
      type: 'call',
      fn: 'Add',
      args: [
        {
          type: 'call',
          fn: 'Mul',
          args: [
            { type: 'integer', value: 2n },
            { type: 'symbol', name: 's77', assumptions: { positive: true, integer: true } },
          ],
        },
        { type: 'integer', value: 1n },
      ],
    });
  });

  it('keeps int64-sized literals exact', () => {
    const parsed = parseShapeExpr('Integer(9223372036854775807)');
    assert.deepEqual(parsed.node, { type: 'integer', value: 9223372036854775807n });
  });
});

describe('parseShapeExpr: rejections', () => {
  const hostile: [string, string][] = [
    ["__import__('os').system('x')", 'code execution through sympify'],
    ["Symbol('s0').__class__", 'attribute access'],
    [`${S('s0')}.__class__.__mro__`, 'attribute chains'],
    ["eval('1')", 'eval'],
    ["exec('import os')", 'exec'],
    ['lambda: 0', 'lambda'],
    ["Function('f')(Symbol('s0'))", 'undefined functions'],
    ['Matrix([[1]])', 'other sympy classes'],
    ["Symbol('__import__')", 'dunder symbol names'],
    ["Symbol('S0')", 'symbol names outside export pattern'],
    ["Symbol('s0', evaluate=False)", 'unknown keyword'],
    ["Symbol('s0', positive=1)", 'non-boolean assumption'],
    ["Symbol('s0', positive=True, positive=True)", 'duplicate assumption'],
    ['Symbol("s0")', 'double quotes'],
    ["Symbol('s0' 'x')", 'implicit string concatenation'],
    ["Symbol('s\\x00')", 'escapes in strings'],
    ["Symbol('s0')[0]", 'subscripts'],
    ['Integer(1.5)', 'non-integer Integer'],
    ['Integer(0x10)', 'hex literal'],
    ['Integer(007)', 'leading zeros'],
    ['Integer(99999999999999999999)', 'beyond int64'],
    ['Rational(1, 0)', 'zero denominator'],
    ['Rational(1, 1)', 'non-canonical Rational'],
    ['Pow(Integer(10), Integer(100000))', 'huge exponent (memory bomb at sympify)'],
    [`Pow(${S('s0')}, ${S('s1')})`, 'symbolic Pow exponent'],
    [`PowByNatural(${S('s0')}, Integer(1000))`, 'huge literal PowByNatural exponent'],
    ["Float('nan', precision=53)", 'non-numeric Float'],
    ["Float('1.0', precision=100000)", 'absurd Float precision'],
    ['Add(Integer(1))', 'Add with one argument'],
    ['Not(true, false)', 'Not with two arguments'],
    [`IsNonOverlappingAndDenseIndicator(${S('s0')}, Integer(1), Integer(3))`, 'odd indicator arguments'],
    ['Add(Integer(1), Integer(2)', 'unbalanced parentheses'],
    ['Add(Integer(1), Integer(2)))', 'trailing parenthesis'],
    ['Mul(Integer(2),)', 'trailing comma'],
    ['Integer(1) + Integer(2)', 'infix operators'],
    ['Integer(1);Integer(2)', 'statement separators'],
    ['Integer(1)\n', 'newlines'],
    ['Integer(\t1)', 'tabs'],
    ['', 'empty string'],
    ['   ', 'only spaces'],
    ['s77', 'bare names'],
    ['Add', 'function without call'],
  ];
  for (const [expr, why] of hostile) {
    it(`rejects ${why}: ${JSON.stringify(expr)}`, () => {
      assertRejected(expr);
    });
  }

  it('says where the problem is', () => {
    const err = assertRejected("Symbol('s0').__class__");
    assert.equal(err.details?.position, 12);
    assert.match(err.message, /position 12/);
  });

  it('bounds the length before scanning', () => {
    const err = assertRejected('A'.repeat(20_000));
    assert.match(err.message, /limit of 16384/);
  });

  it('bounds nesting depth, and stops reading at the first level too deep', () => {
    const deep = `${'Add(Integer(1), '.repeat(100_000)}Integer(1)${')'.repeat(100_000)}`;
    const err = assertRejected(deep, { maxLength: 10_000_000, maxDepth: 64 });
    assert.match(err.message, /nested deeper than 64/);
    // Where it stopped, not how long it took: near the 64th `Add(` (16 characters each) of 1.7 million characters.
    const position = err.details?.position as number;
    assert.ok(position > 60 * 16 && position < 70 * 16, `stopped at ${position}`);
  });

  it('rejects non-strings', () => {
    assertRejected(42 as unknown as string);
  });
});

describe('parseShapeExpr: properties', () => {
  const isBadExpr = (err: unknown) => err instanceof KilnError && err.code === ErrorCode.PT2_BAD_SHAPE_EXPR;
  // (A parser that hung would show as the test runner's timeout, not as a time measured here: no wall-clock checks.)
  const parseOrBadExpr = (input: string): boolean => {
    try {
      parseShapeExpr(input);
      return true;
    } catch (err) {
      return isBadExpr(err);
    }
  };

  it('random strings only ever fail with PT2_BAD_SHAPE_EXPR', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), parseOrBadExpr), { numRuns: 3000 });
  });

  it('random token soup (deeper parser states) only ever fails with PT2_BAD_SHAPE_EXPR', () => {
    const token = fc.constantFrom(
      ...EXPR_FUNCTION_NAMES,
      'Symbol',
      'Integer',
      'Rational',
      'Float',
      'true',
      'false',
      '(',
      ')',
      ',',
      ' ',
      '=',
      "'",
      '.',
      '__class__',
      "'s0'",
      'positive=True',
      'integer',
      'True',
      'precision=53',
      "'1.5'",
      '-',
      '1',
      '64',
      '9223372036854775808',
      S('s0'),
      'Integer(2)',
    );
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 60 }).map((tokens) => tokens.join('')),
        parseOrBadExpr,
      ),
      { numRuns: 5000 },
    );
  });

  const symbolName = fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/);
  const leaf: fc.Arbitrary<ExprNode> = fc.oneof(
    fc
      .record({ name: symbolName, assumptions: fc.subarray(['positive', 'integer', 'nonnegative', 'real'] as const) })
      .chain(({ name, assumptions }) =>
        fc.tuple(...assumptions.map(() => fc.boolean())).map((values): ExprNode => ({
          type: 'symbol',
          name,
          assumptions: Object.fromEntries(assumptions.map((a, i) => [a, values[i]])),
        })),
      ),
    fc.bigInt(-(2n ** 63n), 2n ** 63n).map((value): ExprNode => ({ type: 'integer', value })),
    fc
      .tuple(fc.bigInt(-1000n, 1000n), fc.bigInt(2n, 1000n))
      .map(([numerator, denominator]): ExprNode => ({ type: 'rational', numerator, denominator })),
    fc
      .double({ noNaN: true, noDefaultInfinity: true, min: -1e20, max: 1e20 })
      .map((x) => String(x))
      .filter((s) => /^-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$/.test(s))
      .map((literal): ExprNode => ({ type: 'float', literal, precision: 53 })),
    fc.boolean().map((value): ExprNode => ({ type: 'boolean', value })),
  );
  const callable = EXPR_FUNCTION_NAMES.filter(
    (fn) => fn !== 'Pow' && fn !== 'PowByNatural' && fn !== 'IsNonOverlappingAndDenseIndicator',
  );
  const arity: Record<string, [number, number]> = {
    Add: [2, 4],
    Mul: [2, 4],
    Max: [2, 3],
    Min: [2, 3],
    And: [2, 3],
    Or: [2, 3],
    Not: [1, 1],
    ModularIndexing: [3, 3],
    Where: [3, 3],
  };
  const unary = new Set(['CeilToInt', 'FloorToInt', 'TruncToFloat', 'TruncToInt', 'RoundToInt', 'ToFloat', 'Identity']);
  const tree = fc.letrec<{ node: ExprNode }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', maxDepth: 6 },
      leaf,
      fc.constantFrom(...callable).chain((fn) => {
        const [min, max] = arity[fn] ?? (unary.has(fn) ? [1, 1] : [2, 2]);
        return fc
          .array(tie('node'), { minLength: min, maxLength: max })
          .map((args): ExprNode => ({ type: 'call', fn: fn as ExprFunctionName, args }));
      }),
      fc.tuple(tie('node'), fc.bigInt(-64n, 64n)).map(([base, exponent]): ExprNode => ({
        type: 'call',
        fn: 'Pow',
        args: [base, { type: 'integer', value: exponent }],
      })),
    ),
  })).node;

  it('round-trips every tree srepr can print, and renders it', () => {
    fc.assert(
      fc.property(tree, (node) => {
        const parsed = parseShapeExpr(srepr(node), { maxLength: 1_000_000, maxDepth: 64 });
        assert.deepEqual(parsed.node, node);
        assert.equal(typeof renderExpr(parsed.node), 'string');
      }),
      { numRuns: 1000 },
    );
  });

  it('single-character mutations of valid expressions parse or fail cleanly', () => {
    fc.assert(
      fc.property(
        tree,
        fc.nat(),
        fc.string({ unit: 'binary-ascii', minLength: 0, maxLength: 2 }),
        (node, at, insert) => {
          const text = srepr(node);
          const i = at % (text.length + 1);
          return parseOrBadExpr(text.slice(0, i) + insert + text.slice(i + 1));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
