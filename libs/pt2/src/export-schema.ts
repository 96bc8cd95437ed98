import { excerpt } from './errors.js';
import { EXPORT_SCHEMA } from './export-schema.generated.js';
import { isJsonObject, type Json, type JsonDoc } from './json-doc.js';

/**
 * Structural check of a program JSON (or a payload config) against torch's own export schema, generated from
 * torch/_export/serde/schema.py (scripts/generate-export-schema.py). torch's deserializer ignores fields it does
 * not know and reads the ones it knows with little checking; this check makes sure the validator has seen every
 * field torch will read: an object has only the schema's fields and all required ones, a union exactly one known
 * member, an enum one of its values, a float a number or the strings torch writes for infinities and NaN.
 */

export type SchemaType =
  | { kind: 'int' | 'float' | 'str' | 'bool' }
  | { kind: 'optional' | 'list' | 'dict'; of: SchemaType }
  | { kind: 'ref'; name: string };

export type SchemaDefinition =
  | { kind: 'struct' | 'union'; fields: Record<string, { type: SchemaType; required: boolean }> }
  | { kind: 'enum'; values: number[] };

export type ExportSchema = Record<string, SchemaDefinition>;

/** What torch's JSON encoder writes for non-finite floats (`_dataclass_to_dict`). */
const FLOAT_STRINGS: ReadonlySet<string> = new Set(['Infinity', '-Infinity', 'NaN']);

/**
 * Fields whose declared type is narrower than what torch accepts from older archives: range bounds are
 * `int | None`, but archives of earlier 2.x releases hold infinities as strings (see parseRangeConstraints).
 */
const INT_OR_INFINITY: ReadonlySet<string> = new Set(['RangeConstraint.min_val', 'RangeConstraint.max_val']);
const INFINITY_STRINGS: ReadonlySet<string> = new Set(['inf', '-inf', 'Infinity', '-Infinity']);

/** Checks `value` against the schema type `root` (e.g. `ExportedProgram`); throws PT2_MALFORMED_PROGRAM. */
export function checkExportSchema(doc: JsonDoc, value: Json, root: string): void {
  check(doc, value, { kind: 'ref', name: root }, '', null);
}

function check(doc: JsonDoc, value: Json | undefined, type: SchemaType, path: string, field: string | null): void {
  switch (type.kind) {
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value)) return;
      if (field && INT_OR_INFINITY.has(field) && typeof value === 'string' && INFINITY_STRINGS.has(value)) return;
      return fail(doc, path, 'an integer', value);
    case 'float':
      if (typeof value === 'number' || (typeof value === 'string' && FLOAT_STRINGS.has(value))) return;
      return fail(doc, path, "a number (or 'Infinity', '-Infinity', 'NaN')", value);
    case 'str':
      if (typeof value === 'string') return;
      return fail(doc, path, 'a string', value);
    case 'bool':
      if (typeof value === 'boolean') return;
      return fail(doc, path, 'true or false', value);
    case 'optional':
      if (value === null) return;
      return check(doc, value, type.of, path, field);
    case 'list':
      if (!Array.isArray(value)) return fail(doc, path, 'a list', value);
      value.forEach((item, i) => check(doc, item, type.of, `${path}[${i}]`, null));
      return;
    case 'dict':
      if (!isJsonObject(value)) return fail(doc, path, 'an object', value);
      for (const [key, item] of Object.entries(value)) check(doc, item, type.of, join(path, key), null);
      return;
    case 'ref':
      return checkDefinition(doc, value, type.name, path);
  }
}

function checkDefinition(doc: JsonDoc, value: Json | undefined, name: string, path: string): void {
  const definition = Object.hasOwn(EXPORT_SCHEMA, name) ? EXPORT_SCHEMA[name] : undefined;
  if (!definition) throw new Error(`export schema has no type ${name}`);
  if (definition.kind === 'enum') {
    if (typeof value === 'number' && definition.values.includes(value)) return;
    return fail(doc, path, `one of the ${name} values (${definition.values.join(', ')})`, value);
  }
  if (!isJsonObject(value)) return fail(doc, path, `a ${name} object`, value);
  const keys = Object.keys(value);
  for (const key of keys) {
    if (!Object.hasOwn(definition.fields, key)) {
      doc.fail(join(path, key), `is not a field of ${name} in torch's export schema`);
    }
  }
  if (definition.kind === 'union') {
    if (keys.length !== 1) {
      doc.fail(
        path,
        `must be a ${name} union with exactly one member, got [${keys.map((k) => excerpt(k, 40)).join(', ')}]`,
      );
    }
    const [member] = keys;
    return check(doc, value[member], definition.fields[member].type, join(path, member), `${name}.${member}`);
  }
  for (const [key, spec] of Object.entries(definition.fields)) {
    if (!Object.hasOwn(value, key)) {
      if (spec.required) doc.fail(join(path, key), `is missing (a required field of ${name})`);
      continue;
    }
    check(doc, value[key], spec.type, join(path, key), `${name}.${key}`);
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function fail(doc: JsonDoc, path: string, expected: string, value: Json | undefined): never {
  const got =
    value === undefined
      ? 'nothing'
      : value === null
        ? 'null'
        : Array.isArray(value)
          ? 'a list'
          : typeof value === 'string'
            ? `the string '${excerpt(value, 40)}'`
            : typeof value === 'object'
              ? 'an object'
              : `${typeof value} ${String(value)}`;
  return doc.fail(path, `must be ${expected}, got ${got}`);
}
