import { ErrorCode, KilnError } from '@kiln/contracts';
import { pt2Error } from './errors.js';
import { parseShapeExpr, type ParsedExpr, type ShapeExprLimits } from './shape-expr.js';

/**
 * Parses each distinct `expr_str` once (a program repeats the same few expressions thousands of times)
 * and puts the entry and JSON path into the error, so the user can find the bad expression.
 */
export class ShapeExprCache {
  private readonly parsed = new Map<string, ParsedExpr>();

  constructor(private readonly limits: ShapeExprLimits) {}

  /** `path` is a string or, to avoid building it for every occurrence, a function that builds it. */
  parse(exprStr: string, entry: string, path: string | (() => string)): ParsedExpr {
    const cached = this.parsed.get(exprStr);
    if (cached) return cached;
    try {
      const result = parseShapeExpr(exprStr, this.limits);
      this.parsed.set(exprStr, result);
      return result;
    } catch (err) {
      if (err instanceof KilnError && err.code === ErrorCode.PT2_BAD_SHAPE_EXPR) {
        const where = typeof path === 'string' ? path : path();
        throw pt2Error(ErrorCode.PT2_BAD_SHAPE_EXPR, `${entry}: ${where}: ${err.message}`, {
          ...err.details,
          entry,
          path: where,
        });
      }
      throw err;
    }
  }
}
