// The shared test vectors of test/fixtures/contracts/ and the JSON Schemas of libs/contracts/src/schemas/, for the
// node:test specs that run them. pytest runs the same files (python/*/tests/test_contract_vectors.py), so a rule one
// language applies differently fails one of the two test commands.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A path of the repository, from the root. */
export function repoPath(relativePath: string): string {
  return path.join(ROOT, relativePath);
}

/** A JSON file of the repository, by its path from the root. */
export function readRepoJson<T>(relativePath: string): T {
  return JSON.parse(readFileSync(repoPath(relativePath), 'utf8')) as T;
}

/** test/fixtures/contracts/<name>. */
export function loadContractVectors<T>(name: string): T {
  return readRepoJson<T>(`test/fixtures/contracts/${name}`);
}

/** libs/contracts/src/schemas/<name>.schema.json, compiled (draft 2020-12, strict: a schema typo fails loudly). */
export function compileSchema(name: string): ValidateFunction {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  return ajv.compile(readRepoJson(`libs/contracts/src/schemas/${name}.schema.json`));
}

/**
 * A file of schema vectors: named base documents, and vectors that change one base and record the verdicts of the
 * schema and of each consumer (`Verdicts`: `valid`, or `worker` and `device` ...). `beyondSchema` says why a
 * consumer refuses what the schema accepts (a binding to the job or to the resolver's answer).
 */
export interface SchemaVectors<Base, Verdicts> {
  bases: Record<string, Base>;
  vectors: ({
    name: string;
    base: string;
    changes: Record<string, unknown>;
    schema: boolean;
    beyondSchema?: string;
  } & Verdicts)[];
}

/**
 * A vector's document: its base with each change applied, a JSON Pointer to the new value, "$delete" removing the
 * member, the pointer "" replacing the whole document (pytest's _apply_changes does the same).
 */
export function applyChanges(base: unknown, changes: Record<string, unknown>): unknown {
  let doc = structuredClone(base);
  for (const [pointer, value] of Object.entries(changes)) {
    if (pointer === '') {
      doc = value;
      continue;
    }
    const keys = pointer.slice(1).split('/');
    const last = keys.pop()!;
    const parent = keys.reduce((o, k) => (o as Record<string, unknown>)[k], doc) as Record<string, unknown>;
    if (value === '$delete') delete parent[last];
    else parent[last] = structuredClone(value);
  }
  return doc;
}
