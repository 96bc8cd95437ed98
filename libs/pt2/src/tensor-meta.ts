import type { DType } from '@kiln/contracts';
import { scalarTypeInfo } from './dtypes.js';
import { isJsonObject, type Json, type JsonDoc, type JsonObject } from './json-doc.js';

/** A serialized SymInt: a concrete int, or a shape expression with the value seen at export time. */
export type SymIntValue = { kind: 'int'; value: number } | { kind: 'expr'; exprStr: string; hint: number | null };

/** A serialized TensorMeta (schema.py), structurally checked. Expressions are validated separately. */
export interface TensorMetaInfo {
  dtype: DType;
  dtypeCode: number;
  /** Bytes per element; null for ScalarType.UNKNOWN. */
  elementBytes: number | null;
  sizes: SymIntValue[];
  strides: SymIntValue[];
  storageOffset: SymIntValue;
}

/** `obj[key]` for own properties only: keys from the upload must never reach Object.prototype. */
export function own(obj: JsonObject, key: string): Json | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export function parseSymInt(doc: JsonDoc, value: Json | undefined, path: string): SymIntValue {
  const { kind, value: inner } = doc.union(value, path);
  if (kind === 'as_int') return { kind: 'int', value: doc.int(inner, `${path}.as_int`) };
  if (kind === 'as_expr') {
    const expr = doc.object(inner, `${path}.as_expr`);
    const exprStr = doc.string(own(expr, 'expr_str'), `${path}.as_expr.expr_str`);
    const hintValue = own(expr, 'hint');
    let hint: number | null = null;
    if (hintValue !== undefined && hintValue !== null) {
      const h = doc.union(hintValue, `${path}.as_expr.hint`);
      if (h.kind === 'as_int') hint = doc.int(h.value, `${path}.as_expr.hint.as_int`);
    }
    return { kind: 'expr', exprStr, hint };
  }
  return doc.fail(path, `has unknown SymInt kind '${kind}'`);
}

export function parseTensorMeta(doc: JsonDoc, value: Json | undefined, path: string): TensorMetaInfo {
  const meta = doc.object(value, path);
  const dtypeCode = doc.int(own(meta, 'dtype'), `${path}.dtype`);
  const info = scalarTypeInfo(dtypeCode);
  if (!info) doc.fail(`${path}.dtype`, `is ${dtypeCode}, not a ScalarType the export schema defines`);
  const sizes = doc
    .array(own(meta, 'sizes'), `${path}.sizes`)
    .map((s, i) => parseSymInt(doc, s, `${path}.sizes[${i}]`));
  const strides = doc
    .array(own(meta, 'strides'), `${path}.strides`)
    .map((s, i) => parseSymInt(doc, s, `${path}.strides[${i}]`));
  if (strides.length !== sizes.length)
    doc.fail(`${path}.strides`, `has ${strides.length} entries for ${sizes.length} sizes`);
  const storageOffset = parseSymInt(doc, own(meta, 'storage_offset'), `${path}.storage_offset`);
  const device = own(meta, 'device');
  if (!isJsonObject(device)) doc.fail(`${path}.device`, 'must be an object');
  doc.string(own(device, 'type'), `${path}.device.type`);
  doc.int(own(meta, 'layout'), `${path}.layout`);
  doc.bool(own(meta, 'requires_grad'), `${path}.requires_grad`);
  return { dtype: info.dtype, dtypeCode, elementBytes: info.bytes, sizes, strides, storageOffset };
}

/** Sizes of a stored tensor: all concrete (weights have no symbolic dims), else the program is malformed. */
export function concreteSizes(doc: JsonDoc, meta: TensorMetaInfo, path: string): number[] {
  return meta.sizes.map((s, i) => {
    if (s.kind !== 'int')
      return doc.fail(`${path}.sizes[${i}]`, 'is symbolic, but a stored tensor needs concrete sizes');
    if (s.value < 0) return doc.fail(`${path}.sizes[${i}]`, `is negative (${s.value})`);
    return s.value;
  });
}

/** Product of sizes, refusing results that do not fit a double exactly. */
export function elementCount(doc: JsonDoc, sizes: number[], path: string): number {
  let count = 1n;
  for (const size of sizes) count *= BigInt(size);
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) doc.fail(path, `has ${count} elements, too many to be real`);
  return Number(count);
}
