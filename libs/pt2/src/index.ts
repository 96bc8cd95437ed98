export { BufferByteSource, FileByteSource, type ByteSource } from './byte-source.js';
export { CONTENT_HASH_DOMAIN } from './content-hash.js';
export { DEFAULT_PT2_LIMITS, type Pt2Limits } from './limits.js';
export { SUPPORTED_SCHEMA_MAJOR } from './program.js';
export { readPt2, readPt2File, validatePt2, type ValidatedPt2 } from './read-pt2.js';
export { writePortablePt2 } from './portable-archive.js';
export {
  EXPR_FUNCTION_NAMES,
  parseShapeExpr,
  renderExpr,
  type ExprFunctionName,
  type ExprNode,
  type ParsedExpr,
  type ShapeExprLimits,
  type SymbolAssumption,
} from './shape-expr.js';
