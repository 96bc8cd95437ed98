import type { DType } from '@kiln/contracts';

/**
 * torch/_export/serde/schema.py `ScalarType` enum → Kiln dtype name and element size in bytes.
 * FLOAT8E8M0FNU (33) has no DType name in @kiln/contracts yet, so it reports 'unknown' but still has a
 * known size for byte accounting. UNKNOWN (0) has no size: a stored tensor with it is malformed.
 */
const SCALAR_TYPES: ReadonlyMap<number, { dtype: DType; bytes: number }> = new Map([
  [1, { dtype: 'uint8', bytes: 1 }],
  [2, { dtype: 'int8', bytes: 1 }],
  [3, { dtype: 'int16', bytes: 2 }],
  [4, { dtype: 'int32', bytes: 4 }],
  [5, { dtype: 'int64', bytes: 8 }],
  [6, { dtype: 'float16', bytes: 2 }],
  [7, { dtype: 'float32', bytes: 4 }],
  [8, { dtype: 'float64', bytes: 8 }],
  [9, { dtype: 'complex32', bytes: 4 }],
  [10, { dtype: 'complex64', bytes: 8 }],
  [11, { dtype: 'complex128', bytes: 16 }],
  [12, { dtype: 'bool', bytes: 1 }],
  [13, { dtype: 'bfloat16', bytes: 2 }],
  [28, { dtype: 'uint16', bytes: 2 }],
  [29, { dtype: 'float8_e4m3fn', bytes: 1 }],
  [30, { dtype: 'float8_e5m2', bytes: 1 }],
  [31, { dtype: 'float8_e4m3fnuz', bytes: 1 }],
  [32, { dtype: 'float8_e5m2fnuz', bytes: 1 }],
  [33, { dtype: 'unknown', bytes: 1 }],
  [34, { dtype: 'uint32', bytes: 4 }],
  [35, { dtype: 'uint64', bytes: 8 }],
]);

export interface ScalarTypeInfo {
  dtype: DType;
  /** Element size in bytes; null for ScalarType.UNKNOWN. */
  bytes: number | null;
}

/** Returns null for enum values the schema does not define (torch would fail to load them). */
export function scalarTypeInfo(code: number): ScalarTypeInfo | null {
  if (code === 0) return { dtype: 'unknown', bytes: null };
  return SCALAR_TYPES.get(code) ?? null;
}
