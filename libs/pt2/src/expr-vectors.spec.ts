import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { checkGuard } from './guard-expr.js';
import { EXPR_FUNCTION_NAMES, parseShapeExpr } from './shape-expr.js';

/**
 * The shared test vectors of test/fixtures/contracts/: the same file is run by the compile driver's pytest
 * (python/driver/tests/test_expr_vectors.py) against kiln_driver/expr_grammar.py. A vector one side accepts
 * and the other refuses fails one of the two test commands, so the two grammars cannot drift apart silently.
 */

interface Vector {
  expr: string;
  verdict: 'accept' | 'refuse';
  note?: string;
  limits?: { maxLength: number; maxDepth: number };
}
interface VectorFile {
  limits: { maxLength: number; maxDepth: number };
  vectors: Vector[];
}

const CONTRACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/contracts');
const load = (name: string) => JSON.parse(readFileSync(resolve(CONTRACTS, name), 'utf8')) as VectorFile;

function verdict(run: () => void, code: ErrorCode): 'accept' | 'refuse' {
  try {
    run();
    return 'accept';
  } catch (err) {
    assert.ok(err instanceof KilnError && err.code === code, `unexpected error ${String(err)}`);
    return 'refuse';
  }
}

const label = (v: Vector) => `${v.verdict}s ${JSON.stringify(v.expr.length > 90 ? `${v.expr.slice(0, 90)}…` : v.expr)}`;

describe('shared vectors: shape expressions (test/fixtures/contracts/shape-exprs.json)', () => {
  const file = load('shape-exprs.json');
  for (const v of file.vectors) {
    it(label(v), () => {
      const limits = v.limits ?? file.limits;
      assert.equal(
        verdict(() => parseShapeExpr(v.expr, limits), ErrorCode.PT2_BAD_SHAPE_EXPR),
        v.verdict,
        v.note,
      );
    });
  }

  it('cover every function of the grammar, accepted and refused', () => {
    for (const fn of EXPR_FUNCTION_NAMES) {
      for (const wanted of ['accept', 'refuse'] as const) {
        assert.ok(
          file.vectors.some((v) => v.verdict === wanted && v.expr.startsWith(`${fn}(`)),
          `no vector that ${wanted}s a call of ${fn}: add one to shape-exprs.json`,
        );
      }
    }
  });
});

describe('shared vectors: guards (test/fixtures/contracts/guard-exprs.json)', () => {
  const file = load('guard-exprs.json');
  for (const v of file.vectors) {
    it(label(v), () => {
      const limits = v.limits ?? file.limits;
      const run = () =>
        checkGuard(v.expr, 'guards_code[0]', { maxExprLength: limits.maxLength, maxExprDepth: limits.maxDepth });
      assert.equal(verdict(run, ErrorCode.PT2_GUARDS_CODE), v.verdict, v.note);
    });
  }
});
