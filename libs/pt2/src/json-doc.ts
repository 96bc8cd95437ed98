import { ErrorCode } from '@kiln/contracts';
import { excerpt, pt2Error } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Typed access into one parsed JSON entry of the archive. Every failure is PT2_MALFORMED_PROGRAM and
 * names the entry and the JSON path (`models/model.json: graph_module.graph.nodes[3].target ...`), so
 * the user can find what is wrong.
 */
export class JsonDoc {
  constructor(readonly entry: string) {}

  static parse(entry: string, bytes: Buffer): { doc: JsonDoc; root: Json } {
    const doc = new JsonDoc(entry);
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return doc.fail('', 'is not valid UTF-8');
    }
    try {
      return { doc, root: JSON.parse(text) as Json };
    } catch (err) {
      return doc.fail('', `is not valid JSON (${excerpt((err as Error).message)})`);
    }
  }

  fail(path: string, problem: string): never {
    const where = path ? `${this.entry}: ${path}` : this.entry;
    throw pt2Error(ErrorCode.PT2_MALFORMED_PROGRAM, `${where} ${problem}`, { entry: this.entry, path });
  }

  object(value: Json | undefined, path: string): JsonObject {
    if (!isJsonObject(value)) this.fail(path, `must be an object, got ${describe(value)}`);
    return value;
  }

  array(value: Json | undefined, path: string): Json[] {
    if (!Array.isArray(value)) this.fail(path, `must be a list, got ${describe(value)}`);
    return value;
  }

  string(value: Json | undefined, path: string): string {
    if (typeof value !== 'string') this.fail(path, `must be a string, got ${describe(value)}`);
    return value;
  }

  int(value: Json | undefined, path: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      this.fail(path, `must be an integer, got ${describe(value)}`);
    }
    return value;
  }

  bool(value: Json | undefined, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, `must be true or false, got ${describe(value)}`);
    return value;
  }

  /** Torch serializes unions as single-key objects (`{"as_tensor": {...}}`). */
  union(value: Json | undefined, path: string): { kind: string; value: Json } {
    const obj = this.object(value, path);
    const keys = Object.keys(obj);
    if (keys.length !== 1)
      this.fail(path, `must be a single-key union object, got keys [${keys.map((k) => excerpt(k, 40)).join(', ')}]`);
    return { kind: keys[0], value: obj[keys[0]] };
  }
}

export function isJsonObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: Json | undefined): string {
  if (value === undefined) return 'nothing (missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string '${excerpt(value, 40)}'`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Where a visited value sits; the path string is only built when a message needs it. */
export interface JsonLocation {
  readonly key: string | number | null;
  readonly parent: JsonLocation | null;
}

export function jsonPath(location: JsonLocation | null): string {
  const parts: string[] = [];
  for (let at = location; at && at.key !== null; at = at.parent) {
    parts.push(typeof at.key === 'number' ? `[${at.key}]` : `.${at.key}`);
  }
  const path = parts.reverse().join('');
  return path.startsWith('.') ? path.slice(1) : path;
}

/**
 * Visits every object property of a JSON tree, depth first, without recursion (so hostile nesting
 * cannot overflow the stack) and rejecting trees deeper than `maxDepth`.
 */
export function walkJson(
  doc: JsonDoc,
  root: Json,
  maxDepth: number,
  visit: (key: string, value: Json, location: JsonLocation) => void,
): void {
  const stack: { value: Json; location: JsonLocation; depth: number }[] = [
    { value: root, location: { key: null, parent: null }, depth: 0 },
  ];
  while (stack.length > 0) {
    const { value, location, depth } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= maxDepth) doc.fail(jsonPath(location), `is nested more than ${maxDepth} levels deep`);
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        stack.push({ value: value[i], location: { key: i, parent: location }, depth: depth + 1 });
      }
    } else {
      for (const [key, child] of Object.entries(value)) {
        const childLocation = { key, parent: location };
        visit(key, child, childLocation);
        stack.push({ value: child, location: childLocation, depth: depth + 1 });
      }
    }
  }
}
