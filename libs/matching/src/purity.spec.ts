import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

// The library runs in the API, in the dashboard's browser bundle and is mirrored in Python: no I/O, no
// Node built-ins, no framework. Only relative files, the target catalog's x86 flag lists and
// contract types may be imported by the library code (specs and testing/ helpers may use anything).
const ALLOWED_VALUE_IMPORTS = new Set(['@kiln/targets/x86-levels']);
const ALLOWED_TYPE_IMPORTS = new Set(['@kiln/contracts', '@kiln/targets/x86-levels']);

const dir = new URL('./', import.meta.url);
const libraryFiles = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'));

describe('@kiln/matching stays pure', () => {
  it('imports nothing but relative files, @kiln/targets/x86-levels and contract types', () => {
    assert.ok(libraryFiles.length >= 5, libraryFiles.join(', '));
    for (const file of libraryFiles) {
      const source = readFileSync(new URL(file, dir), 'utf8');
      for (const m of source.matchAll(/^(?:import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'/gm)) {
        const [, typeOnly, specifier] = m;
        if (specifier.startsWith('./')) continue;
        const allowed = typeOnly ? ALLOWED_TYPE_IMPORTS : ALLOWED_VALUE_IMPORTS;
        assert.ok(allowed.has(specifier), `${file} imports ${typeOnly ? 'type ' : ''}${specifier}`);
      }
      assert.doesNotMatch(source, /\bprocess\.|\brequire\(|\bimport\(/, `${file} reaches outside the library`);
    }
  });
});
